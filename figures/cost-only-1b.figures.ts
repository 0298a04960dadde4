// Section `cost-only-1b` (README "Tokenizers and real Llama 3 shapes", the cost-only table's Llama-3.2-1B
// row): the 1B skeleton (weights declared in a sparse external data file that is never written) priced
// for one decode token after 16 at N=16384, as `node dist/bench/write-llama-skeleton.js 1b DIR` then
// `fhec compile DIR/llama-1b.onnx --cost-only --decode 16 --ring-degree 16384 --cores 64` do.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { it } from 'vitest';
import { buildLlamaGraph, LLAMA32_1B } from '../bench/llama-synth.js';
import { estimateModelCost, scaledMs } from '../compiler/cost-estimate.js';
import { exportOnnx } from '../compiler/onnx/export.js';
import { writeSection } from './record.js';

it('cost-only-1b: Llama-3.2-1B shape, decode after 16, cost only', () => {
  const t0 = performance.now();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-figures-1b-'));
  const file = path.join(dir, 'llama-1b.onnx');
  exportOnnx(buildLlamaGraph({ ...LLAMA32_1B, kvCache: true }), file, { externalData: { location: 'llama-1b.onnx.data', sparse: true } });
  const e = estimateModelCost(file, { decode: 16, ringDegree: 16384, cores: 64 });
  fs.rmSync(dir, { recursive: true, force: true });
  writeSection('cost-only-1b', t0, [
    'npm run build && node dist/bench/write-llama-skeleton.js 1b DIR',
    'fhec compile DIR/llama-1b.onnx --cost-only --decode 16 --ring-degree 16384 --cores 64 (estimateModelCost)',
  ], {
    ringDegree: e.params.ringDegree,
    millionOps: Object.values(e.ops).reduce((s, n) => s + n, 0) / 1e6,
    rotations: e.rotations,
    refreshes: e.refreshes,
    keyGiB: e.keyBytes / 2 ** 30,
    plaintextGiB: e.plaintextBytes / 2 ** 30,
    minutesPerToken1Core: e.predictedMs / 1000 / 60 / e.tokens,
    minutesPerToken64Cores: scaledMs(e, 64) / 1000 / 60 / e.tokens,
    minutesPerTokenCriticalPath: e.criticalPathMs / 1000 / 60 / e.tokens,
    minutesPerToken64CoresOpsOverCores: ((e.predictedMs - e.refreshMs) / 64 + e.refreshMs) / 1000 / 60 / e.tokens,
    peakRssGiB: e.peakRss / 2 ** 30,
  }, { ops: e.ops });
});
