// Section `generate-bench` (README "Benchmarks", "Encrypted generation vs plaintext": prefill of 8 and
// three decode steps on SEAL, against onnxruntime fp32 and the reference interpreter): bench/generate.ts
// with the table's prompt, what `node dist/bench/index.js generate --prompt 'The cat ' --decode-steps 3
// --workers 1 --mask-thread on` runs (fhec generate's defaults: one worker, the mask thread). Ops and rotations per step are exact;
// times are timings.
import { it } from 'vitest';
import { runGenerateBench } from '../bench/generate.js';
import { writeSection } from './record.js';

it('generate-bench: model A on SEAL, prefill of 8 and 3 decode steps, vs onnxruntime and the reference', async () => {
  const t0 = performance.now();
  const r = await runGenerateBench({ prompt: 'The cat ', decodeSteps: 3, workers: [1], maskThread: 'on' });
  const figures: Record<string, number | boolean> = { promptTokens: r.promptTokens, setupSeconds: r.setupMs / 1000, sealEqualsOrt: r.generated.sealEqualsOrt };
  for (const [i, s] of r.steps.entries()) {
    const key = i === 0 ? 'prefill' : `decodeP${r.promptTokens + i - 1}`;
    Object.assign(figures, {
      [`${key}.sealSeconds`]: s.seal.ms / 1000,
      [`${key}.ops`]: s.seal.ops,
      [`${key}.rotations`]: s.seal.rotations,
      [`${key}.ortMs`]: s.ortMs,
      [`${key}.referenceMs`]: s.referenceMs,
      [`${key}.slowdownVsOrt`]: s.slowdownVsOrt,
      [`${key}.slowdownVsReference`]: s.slowdownVsReference,
    });
  }
  if (r.decode) {
    Object.assign(figures, {
      'decodeMean.sealSeconds': r.decode.sealMs / 1000,
      'decodeMean.ortMs': r.decode.ortMs,
      'decodeMean.referenceMs': r.decode.referenceMs,
      'decodeMean.slowdownVsOrt': r.decode.slowdownVsOrt,
      'decodeMean.slowdownVsReference': r.decode.slowdownVsReference,
    });
  }
  writeSection('generate-bench', t0, ["npm run build && node dist/bench/index.js generate --prompt 'The cat ' --decode-steps 3 --workers 1 --mask-thread on (runGenerateBench)"], figures, {
    parameters: r.parameters,
    contention: r.contention,
    totals: r.totals,
    generated: r.generated.text,
  });
});
