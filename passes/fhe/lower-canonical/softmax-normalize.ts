// The normalization rounds of a softmax plan (softmax-plan.ts) on ciphertexts, shared by prefill and
// decode attention. A row is a list of terms (ciphertexts, or the constant 1 of prefill's own-score
// term) whose sum `rowSum` is every slot's row sum; round 0 divides the exp terms by their sum, round
// i squares the terms and divides by their sum of squares. The last round's 1/sum is returned, not
// applied: the caller multiplies the weighted sum of values by it once.
// Depth: D(1/x_0) for round 0, then (1 + D(1/x_i) + 1) per round; the caller's final product adds 1.

import type { FheBuilder } from '../../../ir/fhe/builder.js';
import type { FheValue } from '../../../ir/fhe/types.js';
import type { Approximation } from '../../approx/approximation.js';
import { applyApproximation } from '../approximate/approximation.js';
import type { SoftmaxPlan } from './softmax-plan.js';

/** A row term: a ciphertext, or exactly 1 (a term that has met no ciphertext yet). */
export type RowTerm = FheValue | 1;

export interface SoftmaxSite {
  role: 'exp' | 'reciprocal';
  approx: Approximation;
  /** Calibrated input range (for the probe's monitor). */
  observed: [number, number];
  input: FheValue;
  output: FheValue;
  keep: (u: number) => boolean;
  /** The input holds alpha x + beta (the approximation's input map, folded into the constants that make it). */
  inputMap?: { alpha: number; beta: number };
}

export interface NormalizedRow {
  /** The row's terms after the last squaring (before the last division). */
  terms: RowTerm[];
  /** 1 / (sum of terms), by the last round's reciprocal. */
  reciprocal: FheValue;
  sites: SoftmaxSite[];
}

export function normalizeRow(
  b: FheBuilder,
  terms: RowTerm[],
  rowSum: (terms: RowTerm[]) => FheValue,
  plan: SoftmaxPlan,
  keep: (u: number) => boolean,
): NormalizedRow {
  const sites: SoftmaxSite[] = [];
  const mul = (x: RowTerm, y: RowTerm): RowTerm => (x === 1 ? y : y === 1 ? x : b.mul(x, y));
  let y = terms;
  const last = plan.reciprocals.length - 1;
  for (let i = 0; ; i++) {
    if (i > 0) y = y.map((t) => mul(t, t));
    const S = rowSum(y);
    const approx = plan.reciprocals[i]!;
    const r = applyApproximation(b, S, approx).value;
    sites.push({ role: 'reciprocal', approx, observed: plan.observed.reciprocals[i]!, input: S, output: r, keep });
    if (i === last) return { terms: y, reciprocal: r, sites };
    y = y.map((t) => mul(t, r));
  }
}
