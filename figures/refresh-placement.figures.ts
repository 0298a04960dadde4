// Section `refresh-placement` (README "Conformance and accuracy", row "refresh placement on model A"):
// decode plans of model A after P = 8 and P = 20 cached tokens at N=16384 (the longest chain it holds,
// 7 levels), optimal placement vs the greedy "refresh when out of levels" baseline on the same lowered
// program, as `fhec compile models/llama-byte-a/model.onnx --calibration ... --decode P --ring-degree 16384`.
// The row's prefill figures come from sections sim-accuracy-s8 (prefill of 8) and prefill16-n32768.
import * as path from 'node:path';
import { it } from 'vitest';
import { compileModel } from '../compiler/model-plan.js';
import { ROOT } from '../test/helpers/shared.js';
import { writeSection } from './record.js';

it('refresh-placement: model A decode after 8 and 20 at N=16384, optimal vs greedy', () => {
  const t0 = performance.now();
  const model = path.join(ROOT, 'models', 'llama-byte-a', 'model.onnx');
  const calibration = path.join(ROOT, 'models', 'llama-byte-a', 'calibration.txt');
  const figures: Record<string, number> = {};
  const ran: string[] = [];
  for (const P of [8, 20]) {
    const t1 = performance.now();
    const c = compileModel(model, { calibration, decode: P, ringDegree: 16384 });
    Object.assign(figures, {
      [`decode${P}.levels`]: c.params.bitSizes.length - 2,
      [`decode${P}.refreshes`]: c.refreshes,
      [`decode${P}.greedyRefreshes`]: c.greedyRefreshes,
      [`decode${P}.seconds`]: (performance.now() - t1) / 1000,
    });
    ran.push(`fhec compile models/llama-byte-a/model.onnx -o d${P}.json --calibration models/llama-byte-a/calibration.txt --decode ${P} --ring-degree 16384 (compileModel)`);
  }
  writeSection('refresh-placement', t0, ran, figures);
});
