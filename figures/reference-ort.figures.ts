// README rows "fhec eval vs onnxruntime" and "the same for the onnxruntime-genai fp16 model": the
// largest differences between the float64 reference interpreter (the `fhec eval` path) and the
// onnxruntime outputs stored in the shared *.ref.json files, over every case and decode step.
import { expect, it } from 'vitest';
import { evalModel } from '../compiler/commands/eval.js';
import { tensorsFromJson } from '../ir/tensor-json.js';
import { Tensor } from '../ir/tensor.js';
import { argmaxRows, maxAbsDiff } from '../test/helpers/compare.js';
import { ORTGENAI, REF_MODELS, readJson } from '../test/helpers/shared.js';
import { within, writeFigures } from './record.js';

const MODEL_A = 'model A files vs onnxruntime';
const GENAI = 'onnxruntime-genai fp16 model vs onnxruntime';

it(MODEL_A, () => {
  const t0 = performance.now();
  const perModel = REF_MODELS.map((m) => {
    const ref = readJson(m.ref);
    let logits = 0;
    let presents = 0;
    let steps = 0;
    let argmaxEqual = true;
    for (const c of ref.cases) {
      for (const step of c.steps as unknown[]) {
        const expected = tensorsFromJson(step, 'outputs');
        const outputs = evalModel(m.model, tensorsFromJson(step, 'inputs'));
        for (const [name, e] of Object.entries(expected)) {
          const d = maxAbsDiff(outputs[name]!.data, e.data);
          if (name === 'logits') logits = Math.max(logits, d);
          else if (/present/.test(name)) presents = Math.max(presents, d);
        }
        const V = expected['logits']!.dims.at(-1)!;
        argmaxEqual &&= JSON.stringify(argmaxRows(outputs['logits']!, V)) === JSON.stringify(argmaxRows(expected['logits']!, V));
        steps++;
      }
    }
    return { model: m.name, cases: ref.cases.length, steps, logits, presents, argmaxEqual };
  });
  const logits = Math.max(...perModel.map((r) => r.logits));
  const presents = Math.max(...perModel.map((r) => r.presents));
  const figures = [
    { what: 'model-A files', readme: '5 model-A files (opset 14, 17, 23; with and without KV cache)', measured: perModel.length, holds: perModel.length === 5 },
    { what: 'max logit error', readme: 'within 1.9e-5', measured: logits, holds: within(logits, 1.9e-5) },
    { what: 'max present error', readme: 'within 4.8e-6', measured: presents, holds: within(presents, 4.8e-6) },
    { what: 'argmax', readme: 'every argmax equal', measured: perModel.every((r) => r.argmaxEqual), holds: perModel.every((r) => r.argmaxEqual) },
  ];
  writeFigures({ name: 'reference-ort', script: 'reference-ort', test: MODEL_A, readmeRow: '`fhec eval` vs onnxruntime on every `*.ref.json` case and decode step (`test/reference-models.test.ts`)', seconds: (performance.now() - t0) / 1000, figures, details: { perModel } });
  for (const f of figures) expect(f.holds, f.what).toBe(true);
});

it(GENAI, () => {
  const t0 = performance.now();
  const ref = readJson(ORTGENAI.ref);
  const expected = tensorsFromJson(ref, 'outputs');
  const outputs = evalModel(ORTGENAI.model, tensorsFromJson(ref, 'inputs'));
  const all = outputs['logits']!;
  const [, s, v] = all.dims as [number, number, number];
  const last = new Tensor(all.dtype, [1, 1, v], all.data.slice((s - 1) * v, s * v));
  const logits = maxAbsDiff(last.data, expected['logits_last']!.data);
  let presents = 0;
  for (const [name, e] of Object.entries(expected)) if (name !== 'logits_last') presents = Math.max(presents, maxAbsDiff(outputs[name]!.data, e.data));
  const argmax = argmaxRows(last, v)[0]!;
  const figures = [
    { what: 'max last-position logit error', readme: 'within 2.6e-4', measured: logits, holds: within(logits, 2.6e-4) },
    // The README said 8.5e-5 until this figure was reproduced: the presents are fp16, and 1.2e-4 = 2^-13
    // is one fp16 step at their magnitude.
    { what: 'max present error', readme: 'within 1.2e-4 (one fp16 step)', measured: presents, holds: within(presents, 1.2e-4) },
    { what: 'argmax', readme: '25190 as ORT', measured: argmax, holds: argmax === 25190 && argmax === ref.argmax_last },
  ];
  writeFigures({ name: 'reference-ort-genai', script: 'reference-ort', test: GENAI, readmeRow: 'the same for the onnxruntime-genai fp16 model (external data, `com.microsoft` ops, unsorted nodes)', seconds: (performance.now() - t0) / 1000, figures, details: { positions: s, vocabulary: v } });
  for (const f of figures) expect(f.holds, f.what).toBe(true);
});
