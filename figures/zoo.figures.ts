// Section `zoo` (README "Model zoo" table; issue 12's acceptance): for every zoo model, `fhec compile MODEL --calibration
// calibration.txt --prefill 64` on its no-cache export and `--max-context 64` on its KV-cache export, the
// parameter search choosing N each time (N, chain, refreshes, compile time), then the prefill-64 plan run
// on the CKKS simulator teacher-forced over consecutive 64-byte windows of eval-dev.txt (never calibrated
// on): greedy next-byte agreement with the plaintext model, max/mean logit error and range warnings, as
// `fhec accuracy MODEL PLAN --text eval-dev.txt --windows W --backend sim` measures them.
// One test per model, all written to figures/zoo.json under `<model>.<figure>` keys. FHEC_ZOO_WINDOWS
// (default 8 = 512 positions) sets W; FHEC_ZOO_MODELS=Z2,Z4 runs only those models and keeps the other
// models' figures from the previous zoo.json (a 64-token window of a 3-4 layer model takes minutes on
// sim on a loaded 2-core machine).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { it } from 'vitest';
import { measureAccuracy } from '../compiler/accuracy.js';
import { compileGenerationPlan } from '../compiler/generation-plan.js';
import { compileModel, writeModelPlan } from '../compiler/model-plan.js';
import { loadModelPlan } from '../runtime/model-session.js';
import { makeSimBackend } from '../runtime/sim/backend.js';
import { MODELS, ROOT } from '../test/helpers/shared.js';
import { accuracyFigures, previousModels, writeSection } from './record.js';

const ZOO = path.join(ROOT, 'models', 'zoo');
const CAL = path.join(MODELS, 'calibration.txt');
const DEV = path.join(MODELS, 'eval-dev.txt');
const S = 64;
const C = 64;
const WINDOWS = Number(process.env.FHEC_ZOO_WINDOWS ?? 8);
const ONLY = process.env.FHEC_ZOO_MODELS?.split(',');

/** Per model name, its plain export of the given kind at the lowest opset (`<name>_<kind>_opset<k>.onnx`). */
function exportsOf(kind: string): Map<string, string> {
  const re = new RegExp(`^([^_]+)_${kind}_opset(\\d+)\\.onnx$`);
  const byModel = new Map<string, string>();
  for (const m of fs.readdirSync(ZOO).map((f) => re.exec(f)).filter((m): m is RegExpExecArray => m !== null).sort((a, b) => Number(a[2]) - Number(b[2]))) {
    if (!byModel.has(m[1]!)) byModel.set(m[1]!, m[0]);
  }
  return byModel;
}

const nocache = exportsOf('nocache');
const kvcache = exportsOf('kvcache');
const models = [...nocache.keys()].sort().filter((m) => !ONLY || ONLY.includes(m));

const t0 = performance.now();
const { previous, figures, details } = previousModels('zoo', ONLY);

// Written after every model, so a run that dies part way (a 2-core machine shared with other jobs once
// had this worker killed by the kernel's OOM killer after three models) keeps the models it finished.
const save = () =>
  writeSection('zoo', t0, [
    'fhec compile models/zoo/<model>_nocache_opset17.onnx -o prefill.json --calibration ../shared/models/calibration.txt --prefill 64 (compileModel)',
    'fhec compile models/zoo/<model>_kvcache_opset14.onnx -o gen.json --calibration ../shared/models/calibration.txt --max-context 64 (compileGenerationPlan)',
    `fhec accuracy models/zoo/<model>_nocache_opset17.onnx prefill.json --text ../shared/models/eval-dev.txt --windows ${WINDOWS} --backend sim (measureAccuracy, sim seed 1); models ${models.join(', ')}${previous ? ' (the others from the previous run)' : ''}`,
  ], figures, details);

for (const name of models) {
  const TEST = `${name}: prefill ${S} and max-context ${C} compile, sim agreement over ${S * WINDOWS} positions of eval-dev.txt`;
  it(TEST, async () => {
    const t0 = performance.now();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `fhec-zoo-${name}-`));
    const model = path.join(ZOO, nocache.get(name)!);
    const c = compileModel(model, { calibration: CAL, prefill: S });
    const planFile = path.join(dir, 'prefill.json');
    writeModelPlan(planFile, c);
    const prefill = {
      file: nocache.get(name),
      ringDegree: c.params.ringDegree,
      chain: c.params.bitSizes,
      refreshes: c.refreshes,
      predictedSeconds: (c.predictedMs ?? NaN) / 1000,
      compileSeconds: (performance.now() - t0) / 1000,
    };
    let generation: unknown = { error: 'no KV-cache export' };
    if (kvcache.has(name)) {
      const t1 = performance.now();
      const g = compileGenerationPlan(path.join(ZOO, kvcache.get(name)!), path.join(dir, 'gen.json'), { calibration: CAL, maxContext: C });
      generation = { file: kvcache.get(name), ringDegree: g.manifest.params.ringDegree, chain: g.manifest.params.bitSizes, lines: g.lines, compileSeconds: (performance.now() - t1) / 1000 };
    }
    const f = await measureAccuracy(model, loadModelPlan(planFile), makeSimBackend(1), DEV, { windows: WINDOWS });
    const sim = { positions: f.positions, agree: f.agree, agreement: f.agreement, maxAbsError: f.maxAbsError, meanAbsError: f.meanAbsError, rangeWarnings: f.warnings.map((w) => w.message), seconds: f.ms / 1000 };
    Object.assign(figures, { [`${name}.ringDegree`]: prefill.ringDegree, [`${name}.refreshes`]: prefill.refreshes }, accuracyFigures(name, f));
    details[name] = { prefill, generation, sim };
    save();
  });
}
