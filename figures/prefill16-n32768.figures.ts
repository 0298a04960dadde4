// Section `prefill16-n32768` (README "Conformance and accuracy", row "model A, fhec compile --calibration
// calibration.txt --prefill 16 --ring-degree 32768 --report", and the N=32768 figures of the refresh
// placement row): per-layer depth and rotations, whole-model depth, ops before and after scale
// management, refreshes vs greedy, and the --report sim run over one calibration window.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { it } from 'vitest';
import { measureAccuracy } from '../compiler/accuracy.js';
import { modelReport } from '../compiler/model-report.js';
import { compileModel, writeModelPlan } from '../compiler/model-plan.js';
import { loadModelPlan } from '../runtime/model-session.js';
import { makeSimBackend } from '../runtime/sim/backend.js';
import { MODELS } from '../test/helpers/shared.js';
import { writeSection } from './record.js';

it('prefill16-n32768: model A prefill 16 at N=32768 with --report', async () => {
  const t0 = performance.now();
  const model = path.join(MODELS, 'A_nocache_opset14.onnx');
  const calibration = path.join(MODELS, 'calibration.txt');
  const c = compileModel(model, { calibration, prefill: 16, ringDegree: 32768 });
  const report = modelReport(c);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-figures-')), 'p16.json');
  writeModelPlan(file, c, report);
  const compileSeconds = (performance.now() - t0) / 1000;
  const fig = await measureAccuracy(model, loadModelPlan(file), makeSimBackend(1), calibration, { windows: 1 });
  const figures: Record<string, number> = {
    levels: c.params.bitSizes.length - 2,
    depth: Math.max(...c.lowered.ops.map((o) => o.depth)),
    opsUnmanaged: report.opsUnmanaged,
    opsManaged: report.opsManaged,
    refreshes: c.refreshes,
    greedyRefreshes: c.greedyRefreshes,
    positions: fig.positions,
    agree: fig.agree,
    maxAbsError: fig.maxAbsError,
    compileSeconds,
  };
  for (const [i, l] of report.layers.entries()) Object.assign(figures, { [`layer${i}.depth`]: l.depth, [`layer${i}.rotations`]: l.rotations });
  writeSection('prefill16-n32768', t0, [
    'fhec compile ../shared/models/A_nocache_opset14.onnx -o p16.json --calibration ../shared/models/calibration.txt --prefill 16 --ring-degree 32768 --report (compileModel, modelReport, measureAccuracy on 1 calibration window, sim seed 1)',
  ], figures, { parameters: report.parameters, probes: report.probes });
});
