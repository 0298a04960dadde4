// Section `reference-ort` (README "Conformance and accuracy", rows "fhec eval vs onnxruntime" and "the
// same for the onnxruntime-genai fp16 model"): the
// largest differences between the float64 reference interpreter (the `fhec eval` path) and the
// onnxruntime outputs stored in the shared *.ref.json files, over every case and decode step.
import { it } from 'vitest';
import { evalModel } from '../compiler/commands/eval.js';
import { tensorsFromJson } from '../ir/tensor-json.js';
import { Tensor } from '../ir/tensor.js';
import { argmaxRows, maxAbsDiff } from '../test/helpers/compare.js';
import { ORTGENAI, REF_MODELS, readJson } from '../test/helpers/shared.js';
import { writeSection } from './record.js';

it('reference-ort: model A files and the onnxruntime-genai fp16 model vs onnxruntime', () => {
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
  const genai = genaiVsOrt();
  writeSection('reference-ort', t0, ['evalModel (fhec eval) on every case and decode step of the *.ref.json files in ../shared/models'], {
    modelAFiles: perModel.length,
    modelALogits: Math.max(...perModel.map((r) => r.logits)),
    modelAPresents: Math.max(...perModel.map((r) => r.presents)),
    modelAArgmaxEqual: perModel.every((r) => r.argmaxEqual),
    genaiLogits: genai.logits,
    genaiPresents: genai.presents,
    genaiArgmax: genai.argmax,
    genaiOrtArgmax: genai.ortArgmax,
  }, { perModel, genai: { positions: genai.positions, vocabulary: genai.vocabulary } });
});

/** The genai fp16 model: last-position logits and presents against onnxruntime's. */
function genaiVsOrt() {
  const ref = readJson(ORTGENAI.ref);
  const expected = tensorsFromJson(ref, 'outputs');
  const outputs = evalModel(ORTGENAI.model, tensorsFromJson(ref, 'inputs'));
  const all = outputs['logits']!;
  const [, s, v] = all.dims as [number, number, number];
  const last = new Tensor(all.dtype, [1, 1, v], all.data.slice((s - 1) * v, s * v));
  const logits = maxAbsDiff(last.data, expected['logits_last']!.data);
  let presents = 0;
  for (const [name, e] of Object.entries(expected)) if (name !== 'logits_last') presents = Math.max(presents, maxAbsDiff(outputs[name]!.data, e.data));
  return { logits, presents, argmax: argmaxRows(last, v)[0]!, ortArgmax: ref.argmax_last as number, positions: s, vocabulary: v };
}
