// Section `inspect-8b` (README "Benchmarks", "fhec inspect on a Llama-3-8B-shaped model"): bench/llama8b-inspect.ts,
// what `node dist/bench/index.js inspect` runs (the graph written with a sparse external data file, then
// `fhec inspect --json` timed in its own process).
import { it } from 'vitest';
import { runInspectBench } from '../bench/llama8b-inspect.js';
import { writeSection } from './record.js';

it('inspect-8b: fhec inspect on a Llama-3-8B-shaped model', () => {
  const t0 = performance.now();
  const r = runInspectBench();
  writeSection('inspect-8b', t0, ['npm run build && node dist/bench/index.js inspect (runInspectBench)'], {
    parameters: r.parameters,
    externalGiB: r.externalBytes / 2 ** 30,
    modelKiB: r.modelBytes / 1024,
    inspectSeconds: r.inspectSeconds,
    inspectPeakRssMB: r.inspectMaxRssMB,
  });
});
