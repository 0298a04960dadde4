// Softmax pieces for encrypted attention, without the row max.
// Logits z are shifted by a calibrated constant (the max of the `scores` range) and cooled by 2^k:
// u = (z - shift) / 2^k lies in [(lo - hi)/2^k, 0]. Then
//   y = exp(u) / sum exp(u)           (= softmax(z / 2^k); exp and 1/x fitted on calibrated intervals)
//   k times: y <- y^2 / sum y^2       (softmax(z/2^(j-1)) from softmax(z/2^j); sum y^2 is in [1/n, 1])
// Why the cooling: a constant shift leaves each row's sum between e^(rowmax - shift) and n, and on real
// models the row max moves by 20 or more across rows (model A: -3.9 .. 16.6 in one layer), so 1/x
// would need an interval of ratio e^20. Cooling by 2^k shrinks that ratio to e^(spread / 2^k) at the
// price of k square-and-normalize steps, each with a 1/x on the fixed interval [1/n, 1].
// planSoftmax picks the k with the least total depth that meets the error target.

import { FhecError } from '../../../ir/errors.js';
import type { Approximation } from '../../approx/approximation.js';
import { approximate } from '../../approx/select.js';
import type { Interval } from './silu.js';

export interface SoftmaxPlan {
  /** Subtracted from the logits before exp (the calibrated max). */
  shift: number;
  /** k: exp is taken of (z - shift)/2^k, then k square-and-normalize steps. */
  cooling: number;
  /** Longest row (number of keys). */
  length: number;
  /** exp on [(lo - shift)/2^k, (hi - shift)/2^k]. */
  exp: Approximation;
  /** 1/x on the range of sum exp(u), widened. */
  reciprocal: Approximation;
  /** 1/x on [1/n, 1] widened, for the normalization steps (k > 0). */
  stepReciprocal?: Approximation;
  /** Multiplicative depth of the softmax from the logits (mask level included) to the probabilities. */
  depth: number;
  /** Bound on the relative error of each probability predicted from the pieces' errors. */
  predictedMaxRelError: number;
  /** float64 model of the encrypted softmax of one row (what the kernel computes, CKKS noise aside). */
  evaluate(logits: readonly number[]): number[];
}

export interface SoftmaxPlanOptions {
  /** Calibrated `scores` interval (q.k * scale of unmasked keys, margin included). */
  scores: Interval;
  /** Longest row: number of keys a query sees at most. */
  length: number;
  /**
   * Calibrated range of each row's max score, if known (calibration does not record it today): the
   * shift becomes its hi and the first sum is bounded below by e^((lo - hi)/2^k), which needs less cooling.
   */
  rowMax?: Interval;
  /** Target relative error of each probability (default 1e-3). */
  maxRelError?: number;
  /** Force the cooling k (default: the least total depth for k = 0..8). */
  cooling?: number;
  /** Depth limit of each 1/x (default 12). */
  maxReciprocalDepth?: number;
}

/** Relative widening of the reciprocal intervals (the sums carry the exp and CKKS errors). */
const WIDEN = 0.05;

/**
 * Widest ratio b/a of the first 1/x interval worth trying: beyond it no 1/x fits 12 levels at the
 * targets used here (measured: ratio 3e3 needs depth 9, 2.5e4 depth 11, 1.3e5 does not fit 12), and a failed search
 * costs about a second.
 */
const MAX_RECIPROCAL_RATIO = 5e4;

/** Fits are pure functions of their arguments and take 0.1 - 1 s: keep them for the process. */
const memo = new Map<string, Approximation>();
function fit(fn: string, interval: [number, number], target: { maxRelError: number; maxDepth?: number }): Approximation {
  const key = `${fn}|${interval[0]}|${interval[1]}|${target.maxRelError}|${target.maxDepth}`;
  let a = memo.get(key);
  if (!a) memo.set(key, (a = approximate(fn, interval, target)));
  return a;
}

function planFor(opts: SoftmaxPlanOptions, k: number): SoftmaxPlan | undefined {
  const { lo, hi } = opts.scores;
  const n = opts.length;
  const shift = Math.max(hi, opts.rowMax?.hi ?? hi);
  const cool = 2 ** k;
  // The largest u of a row: (rowmax - shift)/2^k, at least (lo - shift)/2^k without a row-max range.
  const sumLo = ((opts.rowMax ? opts.rowMax.lo : lo) - shift) / cool;
  // Error budget. exp's relative errors d_j give y_i an error of about d_i - mean(d), which each squaring
  // doubles: exp gets eps / 2^(k+2). A common factor (a reciprocal's error) cancels in the next
  // normalization, so only the last 1/x counts in full (eps/2); the first one, when k > 0, only has to
  // keep sum y^2 inside [1/n, 1] widened (1%).
  const eps = opts.maxRelError ?? 1e-3;
  const expTarget = eps / 2 ** (k + 2);
  const firstTarget = k === 0 ? eps / 2 : 0.01;
  const maxDepth = opts.maxReciprocalDepth ?? 12;
  const expLo = (lo - shift) / cool;
  if (((1 + WIDEN) * n) / (Math.exp(sumLo) * (1 - WIDEN)) > MAX_RECIPROCAL_RATIO && opts.cooling === undefined) return undefined;
  let exp: Approximation;
  let reciprocal: Approximation;
  let stepReciprocal: Approximation | undefined;
  try {
    exp = fit('exp', [Math.min(expLo, -1e-3), 0], { maxRelError: expTarget });
    // sum exp(u) >= exp(u of the row max) >= e^sumLo, and <= n since every u <= 0.
    reciprocal = fit('reciprocal', [Math.exp(sumLo) * (1 - WIDEN), n * (1 + WIDEN)], { maxRelError: firstTarget, maxDepth });
    if (k > 0) stepReciprocal = fit('reciprocal', [(1 - WIDEN) / n, 1 + WIDEN], { maxRelError: eps / 2, maxDepth });
  } catch (e) {
    if (e instanceof FhecError) return undefined;
    throw e;
  }
  // mask (1, into the exp map) + exp + mask (1) + 1/x + product (1), then per step square, 1/x, product.
  const depth = exp.depth + 1 + reciprocal.depth + 1 + k * (2 + (stepReciprocal?.depth ?? 0));
  const last = stepReciprocal ?? reciprocal;
  const predicted = 2 ** (k + 1) * exp.maxRelError + last.maxRelError;
  return {
    shift,
    cooling: k,
    length: n,
    exp,
    reciprocal,
    stepReciprocal,
    depth,
    predictedMaxRelError: predicted,
    evaluate: (logits) => {
      const e = logits.map((z) => exp.evaluate((z - shift) / cool));
      const r = reciprocal.evaluate(e.reduce((s, v) => s + v, 0));
      let y = e.map((v) => v * r);
      for (let i = 0; i < k; i++) {
        const y2 = y.map((v) => v * v);
        const q = stepReciprocal!.evaluate(y2.reduce((s, v) => s + v, 0));
        y = y2.map((v) => v * q);
      }
      return y;
    },
  };
}

export function planSoftmax(opts: SoftmaxPlanOptions): SoftmaxPlan {
  const { lo, hi } = opts.scores;
  if (!(Number.isFinite(lo) && Number.isFinite(hi) && hi >= lo)) throw new FhecError(`softmax: bad scores interval [${lo}, ${hi}]`, { field: 'scores' });
  if (!(Number.isInteger(opts.length) && opts.length >= 1)) throw new FhecError(`softmax: bad row length ${opts.length}`);
  if (opts.cooling !== undefined) {
    const p = planFor(opts, opts.cooling);
    if (!p) throw new FhecError(`softmax: no approximation meets the target with cooling ${opts.cooling} on scores [${lo}, ${hi}]`);
    return p;
  }
  let best: SoftmaxPlan | undefined;
  for (let k = 0; k <= 8; k++) {
    // Each step costs at least 2 levels more: stop once that alone exceeds the best.
    if (best && 2 * k > best.depth) break;
    const p = planFor(opts, k);
    if (p && (!best || p.depth < best.depth)) best = p;
  }
  if (!best) throw new FhecError(`softmax: no cooling up to 8 meets the target on scores [${lo}, ${hi}] with ${opts.length} keys`);
  return best;
}
