// Softmax support pieces. Encrypted softmax avoids the row max: logits are shifted by a calibrated
// constant, e_i = exp(x_i - shift) is approximated on the calibrated range of x - shift, the row sum
// S = sum_i e_i (rotations and additions, no depth) has a calibrated range, and 1/S is approximated on
// it; softmax_i = e_i * (1/S) is one more multiplication.
//
// Error budget for a target eps on the probabilities (n = row length, S >= sMin):
//   |e^_i/S^ - e_i/S| <= (n + 1) eps_e / (sMin - n eps_e)  =: A    (exp abs error eps_e in every term)
//   relative error rho of 1/S^ adds at most rho (p_i + A) <= rho (1 + A)
// so eps_e = eps sMin / (2 (n + 1) + eps n) makes A = eps/2, and rho = (eps/2) / (1 + eps/2).

import { FhecError } from '../../ir/errors.js';
import { fmt } from './error.js';
import type { Approximation } from './approximation.js';
import { approximate } from './select.js';

export interface SoftmaxSupportOptions {
  /** Calibrated range of the logits. */
  logitRange: [number, number];
  /** Constant subtracted before exp (e.g. the calibrated max logit). */
  shift: number;
  /** Row length n. */
  length: number;
  /** Target max absolute error of every probability. */
  maxAbsError: number;
  /** Calibrated range of S = sum exp(x_i - shift); default [n e^(lo - shift), n e^(hi - shift)]. */
  sumRange?: [number, number];
  maxDepthExp?: number;
  maxDepthReciprocal?: number;
}

export interface SoftmaxSupport {
  expInterval: [number, number];
  /** Where the reciprocal is fitted: the sum range widened by the exp errors of n terms. */
  sumInterval: [number, number];
  exp: Approximation;
  reciprocal: Approximation;
  /** exp depth + reciprocal depth + 1 (the final product). */
  depth: number;
  /** Bound on |softmax model - softmax| from the achieved errors of the two pieces. */
  predictedMaxAbsError: number;
  /** float64 model of the encrypted softmax of one row. */
  evaluate(logits: readonly number[]): number[];
  describe(): string;
}

export function softmaxSupport(opts: SoftmaxSupportOptions): SoftmaxSupport {
  const [lo, hi] = opts.logitRange;
  const n = opts.length;
  const eps = opts.maxAbsError;
  if (!(Number.isInteger(n) && n >= 1)) throw new FhecError(`softmax length must be a positive integer, got ${n}`, { field: 'length' });
  if (!(eps > 0 && eps < 1)) throw new FhecError(`softmax maxAbsError must be in (0, 1), got ${eps}`, { field: 'maxAbsError' });
  const expInterval: [number, number] = [lo - opts.shift, hi - opts.shift];
  const [sMin, sMax] = opts.sumRange ?? [n * Math.exp(expInterval[0]), n * Math.exp(expInterval[1])];
  if (!(sMin > 0 && sMax > sMin)) throw new FhecError(`softmax sum range [${sMin}, ${sMax}] must be positive and non-empty`, { field: 'sumRange' });
  const epsExp = (eps * sMin) / (2 * (n + 1) + eps * n);
  const rho = eps / 2 / (1 + eps / 2);
  const exp = approximate('exp', expInterval, { maxAbsError: epsExp, maxDepth: opts.maxDepthExp });
  const slack = n * exp.maxError;
  const sumInterval: [number, number] = [sMin - slack, sMax + slack];
  const reciprocal = approximate('reciprocal', sumInterval, { maxRelError: rho, maxDepth: opts.maxDepthReciprocal });
  const A = ((n + 1) * exp.maxError) / (sMin - slack);
  const predictedMaxAbsError = A + reciprocal.maxRelError * (1 + A);
  return {
    expInterval,
    sumInterval,
    exp,
    reciprocal,
    depth: exp.depth + reciprocal.depth + 1,
    predictedMaxAbsError,
    evaluate: (logits) => {
      const e = logits.map((x) => exp.evaluate(x - opts.shift));
      const r = reciprocal.evaluate(e.reduce((s, v) => s + v, 0));
      return e.map((v) => v * r);
    },
    describe: () =>
      `softmax of ${n} on logits [${fmt(lo)}, ${fmt(hi)}] shifted by ${fmt(opts.shift)}: depth ${exp.depth + reciprocal.depth + 1}, ` +
      `predicted max abs error ${fmt(predictedMaxAbsError)}\n  ${exp.describe()}\n  ${reciprocal.describe()}`,
  };
}
