// Section `sim-genai` (README "Conformance and accuracy", row "the onnxruntime-genai fp16 model compiled
// from its reference inputs, on sim"): the model
// compiled with --calibration ref.json (its reference inputs) and run on the CKKS simulator on those
// inputs; the last position's logits against onnxruntime's (ref.json) and the reference interpreter's.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect, it } from 'vitest';
import { evalModel } from '../compiler/commands/eval.js';
import { compileModel, writeModelPlan } from '../compiler/model-plan.js';
import { tensorsFromJson } from '../ir/tensor-json.js';
import { loadModelPlan, ModelSession } from '../runtime/model-session.js';
import { makeSimBackend } from '../runtime/sim/backend.js';
import { maxAbsDiff } from '../test/helpers/compare.js';
import { ORTGENAI, readJson } from '../test/helpers/shared.js';
import { writeSection } from './record.js';


const argmax = (v: ArrayLike<number>): number => {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i;
  return best;
};

it('sim-genai: the onnxruntime-genai fp16 model on sim', async () => {
  const t0 = performance.now();
  const c = compileModel(ORTGENAI.model, { calibration: ORTGENAI.ref });
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-figures-')), 'genai.json');
  writeModelPlan(file, c);
  const plan = loadModelPlan(file);
  const compileSeconds = (performance.now() - t0) / 1000;
  const ref = readJson(ORTGENAI.ref);
  const inputs = tensorsFromJson(ref, 'inputs');
  const res = await new ModelSession(plan, makeSimBackend(1)).run(inputs);
  expect(res.run.label).toMatch(/SIMULATION/);
  const lastOf = (t: { dims: readonly number[]; data: ArrayLike<number> }) => {
    const v = t.dims.at(-1)!;
    return Array.from(t.data).slice(t.data.length - v);
  };
  const got = lastOf(res.outputs['logits']!);
  const ort = Array.from(tensorsFromJson(ref, 'outputs')['logits_last']!.data);
  const reference = lastOf(evalModel(ORTGENAI.model, inputs)['logits']!);
  const vsOrt = maxAbsDiff(got, ort);
  const vsReference = maxAbsDiff(got, reference);
  writeSection('sim-genai', t0, [
    'fhec compile ../shared/models/ortgenai-tiny-llama-fp16/model.onnx -o genai.json --calibration ../shared/models/ortgenai-tiny-llama-fp16/ref.json (compileModel)',
    'fhec run genai.json --inputs ref.json --backend sim (ModelSession, sim seed 1)',
  ], {
    argmax: argmax(got),
    ortArgmax: ref.argmax_last as number,
    vsOrt,
    vsReference,
    refreshes: c.refreshes,
    ringDegree: plan.plan.params.ringDegree,
    compileSeconds,
  }, { label: res.run.label });
});
