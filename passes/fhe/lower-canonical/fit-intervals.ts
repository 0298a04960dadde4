// Where each nonlinearity's polynomial is fitted, from its calibrated range. One policy for the
// lowering and for anything that must reproduce its fits (tests, reports).
//
// Polynomials diverge fast outside their interval, and held-out text does leave the calibrated one
// (the monitor reports it). Fits therefore cover the calibrated interval (with its margin) widened by
// FIT_WIDENING (1/sqrt and 1/x: lo / F and hi * F; silu and the softmax exp's lower end: * F), which costs about one level;
// the monitor still warns at the calibrated interval plus margin.

import type { AttentionStats } from './attention-stats.js';

export const FIT_WIDENING = 2;

/**
 * Softmax scores relative to the row's shift have heavy tails (held-out decode rows exceed the
 * calibrated maximum by ~0.3): exp's top end gets ln 8 of headroom. Its polynomial barely grows
 * (degree 29 -> 31 at the same depth); the reciprocal after it covers the larger sums.
 */
export const EXP_HEADROOM = Math.log(8);

/** 1/sqrt of sum x^2 (+ d eps) over d features, whose mean square was calibrated to [lo, hi]. */
export function invsqrtInterval(d: number, meanSquare: { lo: number; hi: number }): [number, number] {
  return [(d * meanSquare.lo) / FIT_WIDENING, d * meanSquare.hi * FIT_WIDENING];
}

/** SiLU over its calibrated input range (always containing 0). */
export function siluInterval(range: { lo: number; hi: number }): [number, number] {
  return [Math.min(range.lo, 0) * FIT_WIDENING, Math.max(range.hi, 0) * FIT_WIDENING];
}

export interface SoftmaxIntervals {
  /** exp of scores relative to the row's own score. */
  exp: [number, number];
  /** 1/x of the row sum. */
  reciprocal: [number, number];
  /** What masked slots hold before exp (exp of it is ~0). */
  fill: number;
}

/** Intervals of the 'shifted' softmax (softmax-plan.ts keeps it as an option). */
export function softmaxIntervals(st: AttentionStats, margin: number): SoftmaxIntervals {
  const m = margin;
  const diagWidth = st.diagMax - st.diagMin;
  const expLo = Math.min(st.relMin - m * Math.abs(st.relMin), -25 - diagWidth);
  const expHi = Math.max(st.relMax + m * Math.abs(st.relMax), 1) + EXP_HEADROOM;
  const sumHi = st.sumMax + m * Math.abs(st.sumMax);
  // The row sum reaches e^expHi as soon as one score reaches the top of exp's fitted interval, and
  // 1/x polynomials diverge right past their interval: cover two such terms, so an input that exp
  // still handles cannot push the sum out of the reciprocal's interval (costs ~2 levels).
  return { exp: [expLo, expHi], reciprocal: [1 - m, Math.max(sumHi * FIT_WIDENING, 2 * Math.exp(expHi))], fill: expLo + Math.max(0, st.diagMax) };
}
