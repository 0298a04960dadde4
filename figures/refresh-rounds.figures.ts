// Section `refresh-rounds` (README "Benchmarks", table "model A, decode after 8": the chain, refreshes,
// rounds and predicted seconds per token the parameter search chooses with the shipped cost table's
// in-process link and with a 50 ms / 100 Mbit link), as `fhec compile models/llama-byte-a/model.onnx
// --calibration models/llama-byte-a/calibration.txt --decode 8 --max-windows 8 [--link ...]`.
import * as path from 'node:path';
import { it } from 'vitest';
import { compileModel } from '../compiler/model-plan.js';
import { tableWithLink } from '../compiler/model-commands.js';
import { refreshRounds } from '../ir/fhe/refresh-rounds.js';
import { ROOT } from '../test/helpers/shared.js';
import { writeSection } from './record.js';

it('refresh-rounds: model A decode after 8, in-process link and 50 ms / 100 Mbit', () => {
  const t0 = performance.now();
  const model = path.join(ROOT, 'models', 'llama-byte-a', 'model.onnx');
  const calibration = path.join(ROOT, 'models', 'llama-byte-a', 'calibration.txt');
  const figures: Record<string, number> = {};
  const ran: string[] = [];
  for (const [key, link] of [['inProcess', undefined], ['link50ms', 'rtt=50ms,bandwidth=100Mbit']] as const) {
    const costs = tableWithLink(undefined, link);
    const c = compileModel(model, { calibration, decode: 8, maxWindows: 8, ...(costs ? { costs } : {}) });
    Object.assign(figures, {
      [`${key}.ringDegree`]: c.params.ringDegree,
      [`${key}.levels`]: c.params.bitSizes.length - 2,
      [`${key}.refreshes`]: c.refreshes,
      [`${key}.rounds`]: refreshRounds(c.managed).count,
      [`${key}.predictedSeconds`]: (c.predictedMs ?? NaN) / 1000,
    });
    ran.push(`fhec compile models/llama-byte-a/model.onnx -o d8.json --calibration models/llama-byte-a/calibration.txt --decode 8 --max-windows 8${link ? ` --link ${link}` : ''} (compileModel)`);
  }
  writeSection('refresh-rounds', t0, ran, figures);
});
