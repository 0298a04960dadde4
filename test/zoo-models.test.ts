// Every zoo model (models/zoo: byte-level Llama-3 models of shapes fhec was not developed on) compiled
// to a short prefill plan and run on the CKKS simulator, teacher-forced on a window of held-out text
// (eval-dev.txt, never calibrated on): greedy next bytes agree with the plaintext model, logit errors stay
// small, and the range monitor reports no approximation input outside its fitted interval.
// Models are discovered from the folder: for each model name, its plain no-cache export of the lowest
// opset (`<name>_nocache_opset<k>.onnx`; the fused and opset-23 variants are covered by
// test/zoo-reference.test.ts), so a new zoo model needs no edit here.
// The plans are prefills of S = 8 tokens at a fixed ring degree (no parameter search) to keep the file
// within a few minutes on 2 cores (S = 16 took 7.4 min of the suite's 32 on a slow 2-core machine);
// `figures/zoo.figures.ts` measures the full prefill-64 plans.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatAccuracy, measureAccuracy } from '../compiler/accuracy.js';
import { compileModel, writeModelPlan } from '../compiler/model-plan.js';
import { loadModelPlan } from '../runtime/model-session.js';
import { simBackend } from '../runtime/sim/backend.js';
import { MODELS, ROOT } from './helpers/shared.js';

const ZOO = path.join(ROOT, 'models', 'zoo');
const CAL = path.join(MODELS, 'calibration.txt');
const DEV = path.join(MODELS, 'eval-dev.txt');
const S = 8;
// N=16384: 40-bit refresh masks need a refresh level with about 100 bits of modulus, which N=8192 (128-bit) lacks.
const RING = 16384;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-zoo-'));

const FILES = [
  ...fs
    .readdirSync(ZOO)
    .map((f) => /^([^_]+)_nocache_opset(\d+)\.onnx$/.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .sort((a, b) => Number(a[2]) - Number(b[2]))
    .reduce((byModel, m) => (byModel.has(m[1]!) ? byModel : byModel.set(m[1]!, m[0])), new Map<string, string>())
    .values(),
].sort();

describe(`model zoo on sim: prefill of ${S} tokens at N=${RING}, one window of eval-dev.txt`, () => {
  it('finds the zoo', () => {
    expect(FILES.length).toBeGreaterThanOrEqual(5);
  });

  for (const f of FILES) {
    it(`${f}: greedy agreement >= 0.99, no range warnings`, async () => {
      const model = path.join(ZOO, f);
      const c = compileModel(model, { calibration: CAL, prefill: S, ringDegree: RING });
      const file = path.join(dir, f.replace(/\.onnx$/, '.json'));
      writeModelPlan(file, c);
      const plan = loadModelPlan(file);
      const fig = await measureAccuracy(model, plan, simBackend, DEV, { windows: 1 });
      console.log(`${f}: ${c.refreshes} refreshes, compile ${JSON.stringify(c.ms)} ms; ${formatAccuracy(fig)}`);
      expect(fig.positions).toBe(S);
      expect(fig.agreement).toBeGreaterThanOrEqual(0.99);
      expect(fig.maxAbsError).toBeLessThan(0.25);
      expect(fig.warnings.map((w) => w.message)).toEqual([]);
    }, 420_000); // Z4 (4 layers) takes ~3 min with another test file on the second core
  }
});
