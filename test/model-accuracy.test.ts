// Model A compiled to a plan and run on the CKKS simulator, teacher-forced over windows of the
// calibration text and of held-out text: greedy next-byte agreement with the plaintext model, logit
// errors, and the run-time range monitor. The plaintext reference is the reference interpreter; its
// agreement with onnxruntime's fp32 logits is checked here on one window.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { formatAccuracy, measureAccuracy, measureDecodeAccuracy, referenceLogits } from '../compiler/accuracy.js';
import { compileModel, writeModelPlan } from '../compiler/model-plan.js';
import { Tensor } from '../ir/tensor.js';
import { checkRanges, embeddingInputs, embedTokens, loadModelPlan, ModelSession, monitorProgram, type ModelPlan, type RangeWarning } from '../runtime/model-session.js';
import { evaluatePlain } from '../ir/fhe/plain-eval.js';
import { simBackend } from '../runtime/sim/backend.js';
import { MODELS } from './helpers/shared.js';
import { inputsForTokens } from '../compiler/calibration-data.js';
import { loadModel } from '../compiler/driver.js';
import { importOnnx } from '../compiler/onnx/import.js';
import { generatorBindings } from '../passes/canonical/specialize.js';
import { runGraph } from '../runtime/reference/interpreter.js';

const MODEL = path.join(MODELS, 'A_nocache_opset14.onnx');
const CAL = path.join(MODELS, 'calibration.txt');
const DEV = path.join(MODELS, 'eval-dev.txt');
const S = 8;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-model-'));

describe('reference logits', () => {
  it('match onnxruntime fp32 to 1e-4', async () => {
    const tokens = Array.from(fs.readFileSync(DEV).subarray(0, 16));
    const ours = referenceLogits(MODEL, tokens);
    const session = await ort.InferenceSession.create(MODEL);
    const ids = new ort.Tensor('int64', BigInt64Array.from(tokens.map(BigInt)), [1, 16]);
    const out = await session.run({ input_ids: ids });
    const theirs = out['logits']!.data as Float32Array;
    let m = 0;
    for (let i = 0; i < theirs.length; i++) m = Math.max(m, Math.abs(theirs[i]! - ours.data[i]!));
    expect(m).toBeLessThan(1e-4);
  });
});

describe(`model A, prefill of ${S} tokens, on sim`, () => {
  let plan: ModelPlan;
  beforeAll(() => {
    // Calibrated on calibration.txt only.
    const c = compileModel(MODEL, { calibration: CAL, prefill: S, ringDegree: 16384 });
    const file = path.join(dir, 'a.json');
    writeModelPlan(file, c);
    plan = loadModelPlan(file);
  }, 120000);

  for (const [name, file] of [['calibration.txt', CAL], ['eval-dev.txt (never calibrated on)', DEV]] as const) {
    it(`agrees with the plaintext model on greedy next bytes over a window of ${name}`, async () => {
      const fig = await measureAccuracy(MODEL, plan, simBackend, file, { windows: 1, skip: 3 });
      console.log(formatAccuracy(fig));
      expect(fig.positions).toBe(S);
      expect(fig.agreement).toBeGreaterThanOrEqual(0.99);
      expect(fig.maxAbsError).toBeLessThan(0.25);
      expect(fig.meanAbsError).toBeLessThan(0.05);
      expect(fig.warnings).toEqual([]);
    }, 120000);
  }

  it('records the client-side embedding and the model names in the plan', () => {
    expect(plan.meta.embedding.ids).toBe('input_ids');
    expect(plan.meta.embedding.privacy).toMatch(/evaluator receives encrypted embeddings/);
    expect(plan.meta.outputs.map((o) => o.name)).toEqual(['logits']);
    expect(plan.meta.outputs[0]!.dims).toEqual([1, S, 256]);
    expect(plan.meta.refreshes).toBeGreaterThan(0);
  });
});

describe('range monitor (sim)', () => {
  it('warns, naming the op, when an approximated input leaves its calibrated interval', async () => {
    // Calibrated on 16 windows only: the final norm of "the cat " exceeds its interval.
    const c = compileModel(MODEL, { calibration: CAL, prefill: S, maxWindows: 16, ringDegree: 16384 });
    const file = path.join(dir, 'narrow.json');
    writeModelPlan(file, c);
    const mp = loadModelPlan(file);
    const emb = (text: string) => embedTokens(mp.table, 256, 64, Array.from(Buffer.from(text)));
    const program = monitorProgram(mp);
    expect(checkRanges(mp, program, emb(fs.readFileSync(CAL).subarray(0, S).toString('latin1')))).toEqual([]);
    const seen: RangeWarning[] = [];
    const r = await new ModelSession(mp, simBackend, { onWarning: (w) => seen.push(w) }).run({ input_ids: Tensor.from('int64', [1, S], Array.from(Buffer.from('the cat '))) });
    expect(seen.length).toBeGreaterThan(0);
    expect(r.warnings).toEqual(seen);
    expect(seen.map((w) => w.op)).toContain('/model/norm/ReduceMean:rms_norm');
    expect(seen[0]!.message).toMatch(/outside the calibrated interval/);

    // exp's input holds t = alpha x + beta (its map onto [-1, 1] went into the score masks): the monitor
    // reads x back. Narrowed to the top of exp's interval, it reports the lowest x, not the lowest t.
    const probe = mp.meta.probes.find((p) => p.inputMap)!;
    expect(probe.role).toMatch(/^exp/);
    const [alpha, beta] = probe.inputMap!;
    const inputs = emb('the cat ');
    const t = evaluatePlain(program, embeddingInputs(mp.meta.embedding, inputs)).values.get(probe.input)!;
    let tMin = Infinity;
    for (let i = 0; i < probe.slots.length; i += 2) for (let j = 0; j < probe.slots[i + 1]!; j++) tMin = Math.min(tMin, t[probe.slots[i]! + j]!);
    const top = probe.interval[1];
    const narrow: ModelPlan = { ...mp, meta: { ...mp.meta, probes: [{ ...probe, observed: [top, top], margin: 0 }] } };
    const w = checkRanges(narrow, program, inputs);
    expect(w).toHaveLength(1);
    expect(w[0]!.value).toBeCloseTo((tMin - beta) / alpha, 9);
    expect(w[0]!.value).toBeGreaterThanOrEqual(probe.interval[0]);
    expect(w[0]!.value).toBeLessThan(top);
  }, 120000);
});

describe('model A decode step with an encrypted KV cache, on sim', () => {
  it('gives the plaintext model\'s logits and updated cache after a prefill of held-out text', async () => {
    const model = path.join(MODELS, 'A_kvcache_opset14.onnx');
    const P = 7;
    const c = compileModel(model, { calibration: CAL, decode: P, ringDegree: 16384, maxWindows: 128 });
    const file = path.join(dir, 'decode.json');
    writeModelPlan(file, c);
    const mp = loadModelPlan(file);
    const tokens = Array.from(fs.readFileSync(DEV).subarray(40, 40 + P + 1));
    const imported = importOnnx(model).graph;
    const pre = loadModel(model, { bindings: generatorBindings(imported, { kind: 'prefill', sequence: P }), verifyEach: false }).graph;
    const cache = runGraph(pre, inputsForTokens(pre, tokens.slice(0, P), DEV));
    const dec = loadModel(model, { bindings: generatorBindings(imported, { kind: 'decode', past: P }), verifyEach: false }).graph;
    const inputs: Record<string, Tensor> = {};
    for (const v of dec.inputs) {
      if (v.name === 'input_ids') inputs[v.name] = Tensor.from(v.dtype, [1, 1], [tokens[P]!]);
      else if (v.name === 'attention_mask') inputs[v.name] = Tensor.from(v.dtype, [1, P + 1], new Array<number>(P + 1).fill(1));
      else if (v.name === 'position_ids') inputs[v.name] = Tensor.from(v.dtype, [1, 1], [P]);
      else inputs[v.name] = cache[v.name.replace('past_key_values', 'present')]!;
    }
    const ref = runGraph(dec, inputs);
    const r = await new ModelSession(mp, simBackend).run(inputs);
    expect(Object.keys(r.outputs).sort()).toEqual(Object.keys(ref).sort());
    const argmax = (d: ArrayLike<number>) => Array.from(d).reduce((b, x, i, a) => (x > a[b]! ? i : b), 0);
    expect(argmax(r.outputs['logits']!.data)).toBe(argmax(ref['logits']!.data));
    for (const [name, t] of Object.entries(r.outputs)) {
      expect(t.dims).toEqual([...ref[name]!.dims]);
      let m = 0;
      for (let i = 0; i < t.data.length; i++) m = Math.max(m, Math.abs(t.data[i]! - ref[name]!.data[i]!));
      expect(m, name).toBeLessThan(name === 'logits' ? 0.1 : 0.02);
    }
    expect(r.warnings).toEqual([]);
    // Teacher-forced decode steps over held-out windows.
    const fig = await measureDecodeAccuracy(model, mp, simBackend, DEV, { windows: 2, skip: 5 });
    console.log(formatAccuracy(fig));
    expect(fig.positions).toBe(2);
    expect(fig.agreement).toBe(1);
  }, 120000);
});
