// The float64 reference interpreter reproduces onnxruntime's outputs on every shared model, every
// case and every decode step (KV-cache presents included), through the same path as `fhec eval`.
import { describe, expect, it } from 'vitest';
import { evalModel } from '../compiler/commands/eval.js';
import { tensorsFromJson } from '../ir/tensor-json.js';
import { Tensor } from '../ir/tensor.js';
import { argmaxRows, maxAbsDiff } from './helpers/compare.js';
import { ORTGENAI, REF_MODELS, readJson } from './helpers/shared.js';

describe('reference interpreter vs onnxruntime', () => {
  for (const m of REF_MODELS) {
    const ref = readJson(m.ref);
    for (const c of ref.cases) {
      it(`${m.name} ${c.name}`, () => {
        c.steps.forEach((step: unknown, k: number) => {
          const inputs = tensorsFromJson(step, 'inputs');
          const expected = tensorsFromJson(step, 'outputs');
          const outputs = evalModel(m.model, inputs);
          for (const [name, e] of Object.entries(expected)) {
            const got = outputs[name];
            expect(got, `${name} missing at step ${k}`).toBeDefined();
            expect(got!.dims).toEqual(e.dims);
            const err = maxAbsDiff(got!.data, e.data);
            expect(err, `${m.name} ${c.name} step ${k} ${name}`).toBeLessThanOrEqual(1e-4);
          }
          const logits = expected['logits']!;
          const V = logits.dims[logits.dims.length - 1]!;
          expect(argmaxRows(outputs['logits']!, V)).toEqual(argmaxRows(logits, V));
        });
      });
    }
  }

  it('ortgenai tiny llama fp16 (external data, com.microsoft ops, unsorted nodes)', () => {
    const ref = readJson(ORTGENAI.ref);
    const inputs = tensorsFromJson(ref, 'inputs');
    const expected = tensorsFromJson(ref, 'outputs');
    const outputs = evalModel(ORTGENAI.model, inputs);
    const logits = outputs['logits']!;
    const [b, s, v] = logits.dims as [number, number, number];
    expect(b).toBe(1);
    const last = new Tensor(logits.dtype, [1, 1, v], logits.data.slice((s - 1) * v, s * v));
    expect(maxAbsDiff(last.data, expected['logits_last']!.data)).toBeLessThanOrEqual(2e-2);
    expect(argmaxRows(last, v)).toEqual([ref.argmax_last]);
    for (const [name, e] of Object.entries(expected)) {
      if (name === 'logits_last') continue;
      expect(outputs[name]!.dims).toEqual(e.dims);
      expect(maxAbsDiff(outputs[name]!.data, e.data), name).toBeLessThanOrEqual(2e-2);
    }
  });
});
