// Greedy decoding of an fp32 model by onnxruntime (the oracle encrypted generation must equal),
// re-running the whole sequence each step so no KV-cache handling can hide a mistake.
import * as ort from 'onnxruntime-node';

export async function ortGreedy(model: string, prompt: string, n: number, vocab = 256): Promise<number[]> {
  const session = await ort.InferenceSession.create(model);
  const ids = Array.from(Buffer.from(prompt, 'utf8'));
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const input = new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, ids.length]);
    const logits = (await session.run({ input_ids: input }))['logits']!.data as Float32Array;
    const last = logits.subarray((ids.length - 1) * vocab, ids.length * vocab);
    let best = 0;
    for (let j = 1; j < vocab; j++) if (last[j]! > last[best]!) best = j;
    out.push(best);
    ids.push(best);
  }
  await session.release();
  return out;
}
