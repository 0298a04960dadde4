// Held-out robustness of decode plans: polynomial approximations diverge right past their fitted
// interval, and a decode step sees one new row of scores per step, so a single excursion overflows the
// whole generation (it did: a softmax score 0.3 past exp's interval at past length 22 ended in 3.7e25).
// For decode plans compiled from calibration.txt, windows of eval-dev.txt (never seen in calibration)
// are prefilled by the float64 reference, and every approximation input of the plan, evaluated on the
// true cache and token without CKKS error, must stay inside the interval its polynomial was fitted on.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { inputsForTokens } from '../compiler/calibration-data.js';
import { loadModel } from '../compiler/driver.js';
import { compileModel, writeModelPlan } from '../compiler/model-plan.js';
import { importOnnx } from '../compiler/onnx/import.js';
import { evaluatePlain } from '../ir/fhe/plain-eval.js';
import { generatorBindings } from '../passes/canonical/specialize.js';
import { embedTokens, expandCache, loadModelPlan, monitorProgram } from '../runtime/model-session.js';
import { runGraph } from '../runtime/reference/interpreter.js';
import { MODELS } from './helpers/shared.js';

const MODEL = path.join(MODELS, 'A_kvcache_opset14.onnx');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-decode-intervals-'));

describe('decode plans on held-out text', () => {
  for (const P of [11, 22]) {
    it(`past length ${P}: every approximation input stays inside its fitted interval on 16 eval-dev windows`, () => {
      const c = compileModel(MODEL, { calibration: path.join(MODELS, 'calibration.txt'), decode: P, ringDegree: 16384 });
      const file = path.join(dir, `decode-${P}.json`);
      writeModelPlan(file, c);
      const mp = loadModelPlan(file);
      const program = monitorProgram(mp);
      const imported = importOnnx(MODEL).graph;
      const prefill = loadModel(MODEL, { bindings: generatorBindings(imported, { kind: 'prefill', sequence: P }), verifyEach: false }).graph;
      const text = fs.readFileSync(path.join(MODELS, 'eval-dev.txt'));
      const windows = 16;
      const stride = Math.floor((text.length - P - 1) / windows);
      const outside: string[] = [];
      let checked = 0;
      for (let w = 0; w < windows; w++) {
        const tokens = Array.from(text.subarray(w * stride, w * stride + P + 1));
        const cache = runGraph(prefill, inputsForTokens(prefill, tokens.slice(0, P), 'eval-dev.txt'));
        const inputs: Record<string, Float64Array> = {
          [mp.meta.embedding.fhe]: embedTokens(mp.table, mp.meta.embedding.vocab, mp.meta.embedding.dim, [tokens[P]!]),
        };
        for (const ci of mp.meta.cacheInputs) inputs[ci.fhe] = expandCache(ci, cache[ci.name.replace(/past_key_values/, 'present')]!.data);
        const values = evaluatePlain(program, inputs).values;
        for (const p of mp.meta.probes) {
          const v = values.get(p.input)!;
          for (let i = 0; i < p.slots.length; i += 2) {
            for (let j = 0; j < p.slots[i + 1]!; j++) {
              const x = v[p.slots[i]! + j]!;
              checked++;
              if (!(x >= p.interval[0] && x <= p.interval[1])) outside.push(`window ${w}: ${p.op} ${p.role} input ${x} outside [${p.interval.join(', ')}]`);
            }
          }
        }
      }
      // 2 layers x (rms_norm x 2, exp, 1/x per softmax round, silu) and the final rms_norm, each over its data slots.
      const count = (fn: string) => mp.meta.probes.filter((p) => p.fn === fn).length;
      expect([count('invsqrt'), count('exp'), count('silu')]).toEqual([5, 2, 2]);
      expect(count('reciprocal')).toBeGreaterThanOrEqual(2);
      expect(mp.meta.probes.length).toBe(9 + count('reciprocal'));
      expect(checked).toBeGreaterThan(windows * 10);
      expect(outside.slice(0, 5)).toEqual([]);
    }, 180000);
  }
});
