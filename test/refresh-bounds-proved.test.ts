// Approximation-aware proved refresh bounds (passes/fhe/refresh/refresh-bounds.ts): an approximation's
// output is bounded by its polynomial's max |p| over the fitted interval, so what is computed from it
// (here a softmax-like row: exp of scores, then the sum of squares over the row) gets a finite bound that
// holds for any input inside the interval, not only for data like the calibration's. Calibration on flat
// rows (sum of squares ~ n e^-8) sizes the mask far below what a peaked row gives (~1); the proved bound
// covers it.

import { describe, expect, it } from 'vitest';
import { fheChain, makeParameters, topLevel } from '../ir/ckks/params.js';
import { FheBuilder } from '../ir/fhe/index.js';
import { evaluatePlain, maxAbs } from '../ir/fhe/plain-eval.js';
import type { FheValue } from '../ir/fhe/types.js';
import { approximate } from '../passes/approx/select.js';
import { applyApproximation } from '../passes/fhe/approximate/approximation.js';
import { manageScales } from '../passes/fhe/manage/manage-scales.js';
import {
  approximationOutputBound,
  calibratedMaxima,
  chooseBounds,
  provedMagnitudes,
  provedOnManaged,
  refreshedValues,
} from '../passes/fhe/refresh/refresh-bounds.js';

const n = 64;
const ringDegree = 32768;
const slots = ringDegree / 2;
const interval: [number, number] = [-16, 0];
const exp = approximate('exp', interval, { maxAbsError: 1e-3 });

/** x -> refresh(x); y = exp~(x); s = sum over the n slots of y^2 -> refresh(s). */
function rowProgram() {
  // The row replicated over every slot: the rotate-and-sum gives the row's sum in each.
  const l = { length: n, tokens: 1, stride: slots, period: n, copies: slots / n };
  const b = new FheBuilder('row', slots);
  const x = b.refresh(b.input('x', l));
  const y = applyApproximation(b, x, exp).value;
  let s: FheValue = b.mul(y, y);
  for (let k = 1; k < n; k *= 2) s = b.add(s, b.rotate(s, k));
  b.output('s', b.refresh(s), l);
  return { program: b.build(), probeOutput: y.name };
}

describe('approximation-aware proved refresh bounds', () => {
  it('bounds an approximation by max |p| over its interval, with a slack', () => {
    const bound = approximationOutputBound(exp);
    let max = 0;
    for (let i = 0; i <= 100_000; i++) max = Math.max(max, Math.abs(exp.evaluate(interval[0] + ((interval[1] - interval[0]) * i) / 100_000)));
    expect(bound).toBeGreaterThanOrEqual(max);
    expect(bound).toBeLessThan(1.1 * max);
    expect(max).toBeGreaterThan(0.99); // exp(0) = 1
  });

  it('covers a peaked row the calibration never saw, where the calibrated bound does not', () => {
    const { program: placed, probeOutput } = rowProgram();
    const params = makeParameters({ ringDegree, bitSizes: [60, ...new Array(exp.depth + 2).fill(40), 60], scale: 2 ** 40 });
    const managed = manageScales(placed, { chain: fheChain(params), topScale: params.scale, inputLevel: topLevel(params) });
    const names = refreshedValues(managed);
    expect(names.length).toBe(2);
    // Calibration: flat rows, scores within [-9, -7] (like softmax rows over many similar keys).
    const flat = (seed: number) => ({ x: Float64Array.from({ length: n }, (_, i) => -8 + Math.sin(seed + 0.7 * i)) });
    const calibrated = calibratedMaxima(managed, [flat(1), flat(2), flat(3)], names);
    const seeds = new Map([[probeOutput, approximationOutputBound(exp)]]);
    const chosen = chooseBounds(names, provedOnManaged(placed, managed, provedMagnitudes(placed, {}, seeds)), calibrated);
    const [xBound, sBound] = chosen;
    // The scores have no proof (an unbounded input); the sum of squares is proved: n max|p|^2 (with slacks).
    expect(xBound!.source).toBe('calibrated');
    expect(sBound!.source).toBe('proved');
    expect(sBound!.bound).toBeGreaterThanOrEqual(n * approximationOutputBound(exp) ** 2);
    // A proof never raises the plan's largest bound (the refresh level).
    expect(sBound!.bound).toBeLessThanOrEqual(xBound!.bound);

    // A peaked row: one score at 0, the others at -16 (every score inside the fitted interval).
    const peaked = Float64Array.from({ length: n }, (_, i) => (i === 5 ? 0 : -16));
    let observed = 0;
    evaluatePlain(managed, { x: peaked }, { keep: false, onValue: (name, v) => name === sBound!.value && (observed = Math.max(observed, maxAbs(v))) });
    expect(observed).toBeGreaterThan(0.99);
    expect(observed).toBeLessThanOrEqual(sBound!.bound);
    // Calibration alone (today's choice without the seeds) sizes the mask below it.
    const without = chooseBounds(names, provedOnManaged(placed, managed, provedMagnitudes(placed, {})), calibrated);
    expect(without[1]!.source).toBe('calibrated');
    expect(without[1]!.bound).toBeLessThan(observed);
  });

  it('keeps a masked rotate-and-sum exact (slot by slot): one nonzero slot per segment is not summed n times', () => {
    const l = { length: slots, tokens: 1, stride: slots, period: slots, copies: 1 };
    const b = new FheBuilder('broadcast', slots);
    let s: FheValue = b.mulConst(b.input('x', l), { kind: 'dense', values: Float64Array.from({ length: slots }, (_, u) => (u % n === 0 ? 1 : 0)) });
    for (let k = 1; k < n; k *= 2) s = b.add(s, b.rotate(s, -k));
    b.output('s', s, l);
    const program = b.build();
    const proved = provedMagnitudes(program, { x: 3 });
    expect(proved.get(s.name)).toBe(3);
  });

  it("takes the calibrated bound ('both') when it already covers the proof, and ignores proofs past the plan's largest bound", () => {
    const names = ['a', 'b', 'c'];
    const calibrated = new Map([['a', 1], ['b', 0.01], ['c', 0.01]]);
    const chosen = chooseBounds(names, new Map([['a', 2], ['b', 0.5], ['c', 100]]), calibrated);
    expect(chosen.map((b) => b.source)).toEqual(['both', 'proved', 'calibrated']);
    expect(chosen[0]!.bound).toBeCloseTo(16, 12);
    expect(chosen[1]!.bound).toBeGreaterThanOrEqual(0.5);
    expect(chosen[1]!.bound).toBeLessThan(0.502);
    expect(chosen[2]!.bound).toBeCloseTo(0.16, 12);
    expect(chosen[2]!.proved).toBeGreaterThan(100);
  });
});
