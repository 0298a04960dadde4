// The precision pass's predicted error bounds against the error measured on node-seal (debug mode: the
// client decrypts every intermediate value): matrix-vector products with model A's real weights,
// Chebyshev polynomials (one with a stated approximation error, checked against the true function), and
// random circuits. Every ciphertext value's measured error stays under its bound, and the outputs'
// bounds are not absurdly loose: each within 100x of the measured error, and their geometric mean
// within 30x. (The bound holds with probability 1 - 2^-20 over the keys; the measured error of one
// run is one draw, so the ratio of a single output varies from run to run: typically 3x to 25x.)
// The pass's typical-error estimate (same model, median tails) is within 2 bits of the measurement.
// "Under its bound" would hold trivially for a value whose bound is infinite or not below its magnitude:
// such values are counted per circuit, printed and asserted (none, except where a test says otherwise).
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { importOnnx } from '../compiler/onnx/import.js';
import { canonicalScales, FheBuilder, type FheProgram, type FheValue } from '../ir/fhe/index.js';
import { approximate } from '../passes/approx/select.js';
import { evalChebyshev } from '../passes/fhe/approximate/chebyshev.js';
import { manageScales } from '../passes/fhe/manage/manage-scales.js';
import { columnBlocks, lowerMatVec, matMulWeights } from '../passes/fhe/layout/matvec.js';
import { replicatedLayout } from '../passes/fhe/layout/packing.js';
import { analyzePrecision, formatPrecisionReport, magnitudeBoundsFromPlain, type PrecisionReport } from '../passes/fhe/analysis/precision.js';
import { keyRequestFor } from '../runtime/ckks/execute.js';
import { fheChain, selectParameters, type CkksParameters } from '../ir/ckks/params.js';
import type { CkksClient, CkksEvaluator } from '../runtime/backend.js';
import { DEBUG_LABEL, debugMeasureErrors, type MeasuredErrors } from '../runtime/debug/measure.js';
import { sealBackend } from '../runtime/seal/backend.js';
import { makeSimBackend } from '../runtime/sim/backend.js';
import { BOUND_CLASSES, byBoundClass } from './helpers/bound-class.js';
import { MODELS } from './helpers/shared.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  };
}

const ratios: { what: string; ratio: number; typicalBits: number }[] = [];

/**
 * Every measured value is under its bound, and that bound says something: counts the values whose
 * bound is infinite or at least their magnitude (zero unless `uninformative` says how many to expect).
 */
function checkBounds(what: string, pred: PrecisionReport, meas: MeasuredErrors, uninformative = 0): number {
  const rows = [...meas.values.values()].map((m) => ({ m, bound: pred.values.get(m.name)!.error }));
  for (const { m, bound } of rows) expect(m.error, `${what}: %${m.name} = ${m.op} at level ${m.level}`).toBeLessThanOrEqual(bound);
  const classes = byBoundClass(rows, (r) => r.bound, (r) => r.m.magnitude);
  const notInformative = rows.length - classes.informative.length;
  const named = [...classes.vacuous, ...classes.infinite].map((r) => `%${r.m.name} = ${r.m.op}`);
  console.log(`${what}: bounds of ${rows.length} values: ${BOUND_CLASSES.map((c) => `${classes[c].length} ${c}`).join(', ')}${named.length ? ` (${named.join(', ')})` : ''}`);
  expect(notInformative, `${what}: values whose bound is infinite or not below their magnitude`).toBe(uninformative);
  return rows.length;
}

/** Checks every measured value against its bound; returns the output's predicted / measured ratio. */
function check(what: string, pred: PrecisionReport, meas: MeasuredErrors, output = 'y', maxRatio = 100): number {
  const checked = checkBounds(what, pred, meas);
  expect(checked).toBeGreaterThan(3);
  const o = meas.outputs.get(output)!;
  const p = pred.values.get(o.name)!;
  const ratio = p.error / o.error;
  // The typical-error estimate against the measurement, in bits (positive: the estimate is pessimistic).
  const typicalBits = Math.log2(p.typicalError / o.error);
  console.log(
    `${what}: output %${o.name} measured ${o.error.toExponential(2)}, bound ${p.error.toExponential(2)} (ratio ${ratio.toFixed(1)}), ` +
      `typical estimate ${p.typicalError.toExponential(2)} (${typicalBits >= 0 ? '+' : ''}${typicalBits.toFixed(1)} bits), ${checked} values checked`,
  );
  expect(ratio).toBeGreaterThanOrEqual(1);
  expect(ratio).toBeLessThanOrEqual(maxRatio);
  if (maxRatio <= 100) ratios.push({ what, ratio, typicalBits });
  return ratio;
}

type Session = { client: CkksClient; evaluator: CkksEvaluator };

async function openSession(params: CkksParameters, galoisSteps: number[]): Promise<Session> {
  const client = await sealBackend.createClient(params, { galoisSteps, relin: true });
  return { client, evaluator: await sealBackend.createEvaluator(params, client.evaluationKeys()) };
}

async function predictAndMeasure(
  program: FheProgram,
  params: CkksParameters,
  tensors: Record<string, Float64Array>,
  extra: Partial<Parameters<typeof analyzePrecision>[1]> = {},
  session?: Session,
) {
  const managed = manageScales(program, { chain: fheChain(params), topScale: params.scale });
  const pred = analyzePrecision(managed, { params, valueBounds: magnitudeBoundsFromPlain(managed, tensors), ...extra });
  const meas = await debugMeasureErrors(managed, params, tensors, { session });
  expect(meas.label).toBe(DEBUG_LABEL);
  return { managed, pred, meas };
}

describe('predicted vs measured error on seal', () => {
  it('linear layers of model A (real weights)', async () => {
    const g = importOnnx(path.join(MODELS, 'A_nocache_opset14.onnx')).graph;
    const shapes = new Map<string, { w: Float64Array; k: number; m: number }>();
    for (const n of g.nodes) {
      const c = n.op === 'MatMul' ? n.inputs[1]?.constant : undefined;
      if (c?.dims.length === 2 && !shapes.has(`${c.dims[0]}x${c.dims[1]}`)) shapes.set(`${c.dims[0]}x${c.dims[1]}`, { w: c.load().data, k: c.dims[0]!, m: c.dims[1]! });
    }
    const params = selectParameters({ depth: 1 });
    const slots = params.ringDegree / 2;
    const cases = ['64x64', '64x256', '192x64'].map((shape) => {
      const { w, k, m } = shapes.get(shape)!;
      const b = new FheBuilder('linear', slots);
      expect(columnBlocks(k, slots).length).toBe(1);
      const layout = replicatedLayout(k, slots);
      const res = lowerMatVec(b, matMulWeights(w, k, m), [{ value: b.input('x', layout), layout, colStart: 0 }]);
      expect(res.outputs.length).toBe(1);
      b.output('y', res.outputs[0]!.value, res.outputs[0]!.layout);
      return { shape, program: b.build(), x: Float64Array.from({ length: k }, rng(k + m)) };
    });
    // One key set for the three layers (keygen dominates otherwise).
    const session = await openSession(params, [...new Set(cases.flatMap((c) => keyRequestFor(c.program).galoisSteps))]);
    for (const c of cases) {
      const { pred, meas } = await predictAndMeasure(c.program, params, { x: c.x }, { inputBounds: { x: 1 }, required: { bits: 10 } }, session);
      check(`model A linear ${c.shape}`, pred, meas);
      expect(pred.ok).toBe(true);
    }
    session.evaluator.dispose();
    session.client.dispose();
  });

  it('Chebyshev polynomials, and an approximation of tanh with its stated error', async () => {
    // N=8192 holds depth 3 at a 35-bit scale.
    const params = selectParameters({ depth: 3, scaleBits: 35, integerBits: 15 });
    const slots = params.ringDegree / 2;
    const layout = { length: slots, tokens: 1, stride: slots, period: slots, copies: 1 };
    const session = await openSession(params, []);
    const r = rng(3);
    const xs = Float64Array.from({ length: slots }, (_, i) => -1 + (2 * i) / (slots - 1));
    const b = new FheBuilder('cheb', slots);
    const coeffs = Array.from({ length: 8 }, (_, i) => r() / (1 + i / 4));
    b.output('y', evalChebyshev(b, b.input('x', layout), { coeffs, a: -1, b: 1 }).value, layout);
    const { pred, meas } = await predictAndMeasure(b.build(), params, { x: xs }, {}, session);
    check('Chebyshev degree 7 on [-1, 1]', pred, meas);
    const b3 = new FheBuilder('cheb3', slots);
    const xs3 = Float64Array.from({ length: slots }, (_, i) => -3 + (8 * i) / (slots - 1));
    b3.output('y', evalChebyshev(b3, b3.input('x', layout), { coeffs: coeffs.slice(0, 4), a: -3, b: 5 }).value, layout);
    const cubic = await predictAndMeasure(b3.build(), params, { x: xs3 }, { inputBounds: { x: 5 } }, session);
    check('Chebyshev degree 3 on [-3, 5]', cubic.pred, cubic.meas);

    // tanh on [-1, 1]: the output's bound includes the approximation error, so it holds against tanh itself.
    const approx = approximate('tanh', [-1, 1], { maxAbsError: 1e-3, maxDepth: 3 });
    const step = approx.steps[0]!;
    expect(step.kind).toBe('chebyshev');
    if (step.kind !== 'chebyshev') return;
    const t = new FheBuilder('tanh', slots);
    const ys = evalChebyshev(t, t.input('x', layout), { coeffs: step.poly.coeffs, a: -1, b: 1 }).value;
    t.output('y', ys, layout);
    const tx = Float64Array.from({ length: slots }, (_, i) => -1 + (2 * i) / (slots - 1));
    const managed = manageScales(t.build(), { chain: fheChain(params), topScale: params.scale });
    const outName = managed.ops.find((o) => o.kind === 'output')!.args[0]!.name;
    const withApprox = analyzePrecision(managed, {
      params,
      valueBounds: magnitudeBoundsFromPlain(managed, { x: tx }),
      approximationErrors: new Map([[outName, approx.maxError]]),
      required: { absError: 2e-3 },
    });
    const measured = await debugMeasureErrors(managed, params, { x: tx }, { session });
    checkBounds(`tanh degree ${step.poly.degree}`, withApprox, measured);
    const got = measured.outputs.get('y')!;
    // Error against tanh itself: the CKKS error (measured) plus the polynomial's own error (re-measured here).
    let vsTanh = 0;
    const plain = magnitudeBoundsFromPlain(managed, { x: tx });
    expect(plain.get(outName)).toBeLessThanOrEqual(1 + approx.maxError);
    for (let i = 0; i < slots; i += 7) vsTanh = Math.max(vsTanh, Math.abs(approx.evaluate(tx[i]!) - Math.tanh(tx[i]!)));
    const bound = withApprox.values.get(outName)!.error;
    expect(bound).toBeGreaterThanOrEqual(approx.maxError);
    expect(got.error + vsTanh).toBeLessThanOrEqual(bound);
    expect(withApprox.ok).toBe(true);
    console.log(`tanh degree ${step.poly.degree}: approximation error ${approx.maxError.toExponential(2)}, CKKS error ${got.error.toExponential(2)}, bound ${bound.toExponential(2)}`);
    session.evaluator.dispose();
    session.client.dispose();
    // A requirement the approximation cannot meet is reported with the op that made the error.
    const strict = analyzePrecision(managed, { params, valueBounds: plain, approximationErrors: new Map([[outName, approx.maxError]]), required: { absError: approx.maxError / 2 } });
    expect(strict.ok).toBe(false);
    expect(strict.shortfalls.map((s) => s.tensor)).toEqual(['y']);
    expect(strict.shortfalls[0]!.contributors[0]!.source.kind).toBe('approximation');
    expect(formatPrecisionReport(strict)).toMatch(/output y falls short: .* most of it from %\S+ = \w+ \(approximation\)/);
  });

  it('random circuits', async () => {
    const params = selectParameters({ depth: 2 });
    const slots = params.ringDegree / 2;
    const layout = { length: slots, tokens: 1, stride: slots, period: slots, copies: 1 };
    const steps = [1, 3, -2, 16, 100];
    const session = await openSession(params, steps);
    const got: number[] = [];
    for (let seed = 1; seed <= 5; seed++) {
      const r = rng(seed * 977);
      const b = new FheBuilder(`random${seed}`, slots);
      const pool: { v: FheValue; depth: number }[] = [{ v: b.input('x0', layout), depth: 0 }, { v: b.input('x1', layout), depth: 0 }];
      const pick = () => pool[Math.floor(((r() + 1) / 2) * pool.length) % pool.length]!;
      for (let i = 0; i < 14; i++) {
        const A = pick();
        const B = pick();
        const kind = Math.floor(((r() + 1) / 2) * 7);
        let next: { v: FheValue; depth: number } | undefined;
        if (kind === 0) next = { v: b.add(A.v, B.v), depth: Math.max(A.depth, B.depth) };
        else if (kind === 1) next = { v: b.sub(A.v, B.v), depth: Math.max(A.depth, B.depth) };
        else if (kind === 2 && Math.max(A.depth, B.depth) < 2) next = { v: b.mul(A.v, B.v), depth: Math.max(A.depth, B.depth) + 1 };
        else if (kind === 3) next = { v: b.rotate(A.v, steps[i % 5]!), depth: A.depth };
        else if (kind === 4 && A.depth < 2) next = { v: b.mulConst(A.v, { kind: 'dense', values: Float64Array.from({ length: slots }, r) }), depth: A.depth + 1 };
        else if (kind === 5) next = { v: b.addConst(A.v, { kind: 'splat', value: r() }), depth: A.depth };
        else if (kind === 6) next = { v: b.negate(A.v), depth: A.depth };
        if (next) pool.push(next);
      }
      b.output('y', pool[pool.length - 1]!.v, layout);
      const tensors = { x0: Float64Array.from({ length: slots }, r), x1: Float64Array.from({ length: slots }, r) };
      const { pred, meas } = await predictAndMeasure(b.build(), params, tensors, { inputBounds: { x0: 1, x1: 1 } }, session);
      got.push(check(`random circuit ${seed}`, pred, meas));
    }
    console.log(`random circuits: predicted / measured output error ${got.map((x) => x.toFixed(1)).join(', ')}`);
    session.evaluator.dispose();
    session.client.dispose();
  });

  it('outputs: bound / measured within 30x (geometric mean), typical estimate within 2 bits (median)', () => {
    expect(ratios.length).toBeGreaterThanOrEqual(10);
    const gm = Math.exp(ratios.reduce((s, r) => s + Math.log(r.ratio), 0) / ratios.length);
    console.log(`predicted / measured output error: ${ratios.map((r) => `${r.what} ${r.ratio.toFixed(1)}`).join('; ')}; geometric mean ${gm.toFixed(1)}`);
    expect(gm).toBeLessThanOrEqual(30);
    const bits = ratios.map((r) => r.typicalBits).sort((a, b) => a - b);
    console.log(`typical estimate - measured, bits: ${bits.map((b) => b.toFixed(1)).join(', ')}`);
    // The estimate is one model of a random quantity: its median is within 2 bits, every output within 4.
    expect(Math.abs(bits[bits.length >> 1]!)).toBeLessThanOrEqual(2);
    for (const b of bits) expect(Math.abs(b)).toBeLessThanOrEqual(4);
  });

  it('a refresh restores the level: the measurement re-encrypts through the key holder, the bound follows', async () => {
    const params = selectParameters({ depth: 2 });
    const chain = fheChain(params);
    const slots = params.ringDegree / 2;
    const delta = canonicalScales(chain, params.scale);
    const layout = { length: slots, tokens: 1, stride: slots, period: slots, copies: 1 };
    const b = new FheBuilder('refresh', slots, chain);
    const x = b.input('x', layout, { level: 1, scale: delta[1]! });
    const sq = (v: FheValue) => b.rescale(b.relinearize(b.mul(v, v)));
    const low = b.rotate(sq(x), 3);
    expect(low.type.level).toBe(0);
    const fresh = b.refresh(low, { level: 2, scale: delta[2]! });
    const y = sq(sq(fresh));
    b.output('y', y, layout);
    const program = b.build();
    const xs = Float64Array.from({ length: slots }, rng(17));
    const pred = analyzePrecision(program, { params, inputBounds: { x: 1 }, valueBounds: magnitudeBoundsFromPlain(program, { x: xs }) });
    const meas = await debugMeasureErrors(program, params, { x: xs });
    expect(meas.values.get(fresh.name)!.level).toBe(2);
    // Products scale an error by the other operand's magnitude bound (max over the slots), while the
    // key-switching spike sits in a few slots whose values may be far smaller: after two squarings
    // this bound is looser (typically 30x-100x) than for the linear maps above.
    check('squarings around a refresh', pred, meas, 'y', 1000);
    // The refreshed value carries the error it had, plus a fresh encryption's.
    expect(pred.values.get(fresh.name)!.error).toBeGreaterThan(pred.values.get(low.name)!.error);
  });

  it('the debug measurement runs on the simulator too (its noise model is the same family)', async () => {
    const params = selectParameters({ depth: 1 });
    const slots = params.ringDegree / 2;
    const layout = { length: slots, tokens: 1, stride: slots, period: slots, copies: 1 };
    const b = new FheBuilder('small', slots);
    const x = b.input('x', layout);
    b.output('y', b.add(b.rotate(x, 5), b.mul(x, x)), layout);
    const xs = Float64Array.from({ length: slots }, rng(1));
    const managed = manageScales(b.build(), { chain: fheChain(params), topScale: params.scale });
    const meas = await debugMeasureErrors(managed, params, { x: xs }, { backend: makeSimBackend(3) });
    expect(meas.backend).toBe('sim');
    const pred = analyzePrecision(managed, { params, inputBounds: { x: 1 } });
    checkBounds('small circuit on sim', pred, meas);
    expect(meas.outputs.get('y')!.error).toBeGreaterThan(0);
  });
});
