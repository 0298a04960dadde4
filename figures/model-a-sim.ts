// Model A compiled with --calibration calibration.txt to a prefill plan at a fixed ring degree and run on
// the CKKS simulator teacher-forced over consecutive windows of eval-dev.txt (never calibrated on) and of
// calibration.txt: greedy next-byte agreement with the plaintext model and logit errors, what
// `fhec compile ... --prefill S --ring-degree N` then `fhec accuracy ... --backend sim` measure.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { measureAccuracy } from '../compiler/accuracy.js';
import { compileModel, writeModelPlan } from '../compiler/model-plan.js';
import { loadModelPlan } from '../runtime/model-session.js';
import { makeSimBackend } from '../runtime/sim/backend.js';
import { MODELS } from '../test/helpers/shared.js';
import { accuracyFigures, writeSection } from './record.js';

export async function modelASimAccuracy(section: string, S: number, N: number, windows: number): Promise<void> {
  const t0 = performance.now();
  const model = path.join(MODELS, 'A_nocache_opset14.onnx');
  const calibration = path.join(MODELS, 'calibration.txt');
  const c = compileModel(model, { calibration, prefill: S, ringDegree: N });
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-figures-')), 'a.json');
  writeModelPlan(file, c);
  const plan = loadModelPlan(file);
  const compileSeconds = (performance.now() - t0) / 1000;
  const figures: Record<string, number> = { prefill: S, ringDegree: plan.plan.params.ringDegree, refreshes: c.refreshes, greedyRefreshes: c.greedyRefreshes, compileSeconds };
  for (const [name, text] of [['dev', 'eval-dev.txt'], ['cal', 'calibration.txt']] as const) {
    // A simulator of its own per text, seeded: the noise drawn does not depend on what ran before.
    const f = await measureAccuracy(model, plan, makeSimBackend(1), path.join(MODELS, text), { windows });
    Object.assign(figures, accuracyFigures(name, f));
  }
  const rel = (f: string) => path.relative(process.cwd(), f);
  writeSection(section, t0, [
    `fhec compile ${rel(model)} -o a.json --calibration ${rel(calibration)} --prefill ${S} --ring-degree ${N} (compileModel)`,
    `fhec accuracy ${rel(model)} a.json --text ../shared/models/{eval-dev,calibration}.txt --windows ${windows} --backend sim (measureAccuracy, sim seed 1)`,
  ], figures);
}
