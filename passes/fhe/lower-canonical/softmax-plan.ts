// How attention's softmax is approximated, chosen from the calibrated score statistics.
//
// Scores are shifted by the query's own (always visible) score, x_j = s_j - s_diag, so the row holds
// a term e^0 = 1 and its sum is >= 1. Nothing bounds it from above: a row whose top score is G over
// its diagonal sums to about e^G, and a 1/x polynomial over [1, n e^G] does not exist for G ~ 30.
//
// Normalize-and-square (Cho, Hanrot, Kim, Park, Stehle, "Fast and accurate homomorphic softmax
// evaluation", CCS 2024), with k squarings:
//   y_j = e^(x_j / 2^k)                   exp on [lo/2^k, hi/2^k], a narrow interval
//   y  <- y / sum(y)                      sum in [1, n e^(hi/2^k)]: known from n and hi
//   k times: y <- y^2 / sum(y^2)          then softmax(x) = y (y^(2^k) normalized is e^x normalized)
// For y summing to c (1 - rho <= c <= 1 + rho), sum(y^2) lies in [c^2/n, c^2] whatever the data, so
// every 1/x after the first works on an interval fixed by n and rho alone. A 1/x error of a round is a
// common factor of the row, which the next round's normalization removes: only the last round's 1/x
// has to be precise; the earlier ones only keep the row bounded (rho = a coarse relative error).
// The exp's relative error d becomes ~2^k d after k squarings, so it is fitted to target / 2^k.
//
// k = 0 is one exp and one 1/x on [1, n e^hi] (the shifted softmax). The planner tries k = 0.. and
// keeps the least deep (then fewest ct x ct multiplications) plan whose fits exist; the legacy
// 'shifted' method (exp to an absolute error, 1/x fitted on the calibrated sum) stays as an option.

import { FhecError } from '../../../ir/errors.js';
import type { Approximation } from '../../approx/approximation.js';
import { DEFAULT_MAX_DEGREE, chebyshevDepth } from '../../approx/chebyshev.js';
import { nextPow2 } from '../layout/packing.js';
import type { AttentionStats } from './attention-stats.js';
import { EXP_HEADROOM, FIT_WIDENING, softmaxIntervals } from './fit-intervals.js';

export type SoftmaxMethod = 'squaring' | 'shifted';
export const SOFTMAX_METHODS: readonly SoftmaxMethod[] = ['squaring', 'shifted'];

export interface SoftmaxPlan {
  method: SoftmaxMethod;
  /** k: scores are scaled by 2^-k before exp, then k normalize-and-square rounds. */
  squarings: number;
  /** e^u on the scaled scores' interval. */
  exp: Approximation;
  /** 1/x of the row sum of each round: [0] the exp terms' sum, [i] the sum of squares of round i. */
  reciprocals: Approximation[];
  /** Calibrated (not widened) input ranges, for the probes: exp, then each reciprocal. */
  observed: { exp: [number, number]; reciprocals: [number, number][] };
  /** Value (in scaled units) given to masked slots before exp; it and fill - diag lie in exp's interval. */
  fill: number;
  /** Levels from the masked scaled scores to the normalized weights: exp + D(1/x_0) + sum (D(1/x_i) + 2). */
  depth: number;
  describe(): string;
}

export type Fit = (fn: 'exp' | 'reciprocal', interval: [number, number], target: { maxAbsError?: number; maxRelError?: number; maxDepth?: number }) => Approximation;

export interface SoftmaxPlanOptions {
  /** Relative calibration margin. */
  margin: number;
  /** Most keys a row can see (prefill: the tokens; decode: past + 1). */
  rowLength: number;
  /** exp target: abs error for 'shifted', the probabilities' relative error budget for 'squaring'. */
  expError: number;
  /** Relative error of the last 1/x. */
  reciprocalRel: number;
  method?: SoftmaxMethod;
  /** Largest k tried. */
  maxSquarings?: number;
}

/**
 * The row length the intervals are sized for: rowLength rounded up to a multiple of a quarter of its
 * power of two (21 -> 24, 41 -> 48). A longer bound only widens the intervals, and decode plans (whose
 * rows grow by one key per step) then share their fits within each bucket instead of refitting every step.
 */
export function rowBound(rowLength: number): number {
  const n = Math.max(1, rowLength);
  const step = Math.max(1, nextPow2(n) / 4);
  return Math.ceil(n / step) * step;
}

/** Coarse relative error of the intermediate 1/x (they only keep rows bounded); tried in this order. */
export const COARSE_RECIPROCAL_REL = [0.25, 0.5, 0.1];

/** Interval that holds sum(y^2) when y sums to within 1 +- rho, for rows of at most n keys (5% slack for noise). */
export function squaredSumInterval(n: number, rho: number): [number, number] {
  return [((1 - rho) ** 2 / n) * 0.95, (1 + rho) ** 2 * 1.05];
}

function depthOf(exp: Approximation, reciprocals: Approximation[]): number {
  return exp.depth + reciprocals[0]!.depth + reciprocals.slice(1).reduce((s, r) => s + r.depth + 2, 0);
}

function mulsOf(exp: Approximation, reciprocals: Approximation[], n: number): number {
  // Per row: exp and the squarings/normalizations on each of n terms, one 1/x per round.
  const k = reciprocals.length - 1;
  return n * (exp.nonScalarMuls + (k > 0 ? 1 + 2 * k - 1 : 0)) + reciprocals.reduce((s, r) => s + r.nonScalarMuls, 0);
}

function plan(method: SoftmaxMethod, k: number, exp: Approximation, reciprocals: Approximation[], observed: SoftmaxPlan['observed'], fill: number): SoftmaxPlan {
  const depth = depthOf(exp, reciprocals);
  return {
    method,
    squarings: k,
    exp,
    reciprocals,
    observed,
    fill,
    depth,
    describe: () =>
      `softmax ${method}${method === 'squaring' ? ` k=${k}` : ''} (depth ${depth}): ${exp.describe()}; ` +
      reciprocals.map((r, i) => `1/x round ${i}: ${r.describe()}`).join('; '),
  };
}

/** A shifted plan from given approximations (kernel tests that fit exp and 1/x themselves). */
export function shiftedSoftmaxPlan(exp: Approximation, reciprocal: Approximation, fill: number): SoftmaxPlan {
  return plan('shifted', 0, exp, [reciprocal], { exp: exp.interval, reciprocals: [reciprocal.interval] }, fill);
}

/** The legacy shifted softmax: exp to an absolute error on its widened interval, 1/x on the calibrated sum (fit-intervals.ts). */
function planShifted(st: AttentionStats, o: SoftmaxPlanOptions, fit: Fit): SoftmaxPlan {
  const iv = softmaxIntervals(st, o.margin);
  const exp = fit('exp', iv.exp, { maxAbsError: o.expError });
  const r = fit('reciprocal', iv.reciprocal, { maxRelError: o.reciprocalRel });
  return plan('shifted', 0, exp, [r], { exp: [st.relMin, st.relMax], reciprocals: [[st.sumMin, st.sumMax]] }, iv.fill);
}

/**
 * Scaled-score interval of normalize-and-square (in x units, before the 2^-k): the calibrated range
 * with its margin, exp's headroom on top, and room below for the fill of masked slots (which meets
 * fill - diag in prefill's not-yet-visible keys). exp is fitted down to `fitLo` = lo * FIT_WIDENING,
 * as every other fit is widened past its calibrated interval (fit-intervals.ts): held-out rows do
 * reach below the calibrated minimum, and a polynomial just past its interval is already off.
 */
export function squaringScoreInterval(st: AttentionStats, margin: number): { lo: number; fitLo: number; hi: number; fill: number } {
  const m = margin;
  const hi = Math.max(st.relMax, 0) + m * Math.abs(st.relMax) + EXP_HEADROOM;
  const dMax = Math.max(st.diagMax + m * Math.abs(st.diagMax), 0);
  const dMin = Math.min(st.diagMin - m * Math.abs(st.diagMin), 0);
  // fill in [lo + dMax, hi + dMin] must be non-empty.
  const lo = Math.min(st.relMin - m * Math.abs(st.relMin), hi + dMin - dMax, -1);
  return { lo, fitLo: lo * FIT_WIDENING, hi, fill: lo + dMax };
}

/** k rounds; `budget`: the depth a plan must not exceed to matter (the best so far), `round`: a lower bound of a round's depth. */
function planSquaring(st: AttentionStats, o: SoftmaxPlanOptions, k: number, fit: Fit, budget = Infinity, round = 3): SoftmaxPlan | undefined {
  const n = rowBound(o.rowLength);
  const s = 2 ** k;
  const { fitLo, hi, fill } = squaringScoreInterval(st, o.margin);
  const expInterval: [number, number] = [fitLo / s, hi / s];
  const observed: SoftmaxPlan['observed'] = { exp: [st.relMin / s, st.relMax / s], reciprocals: [[1, n * Math.exp(Math.max(0, st.relMax) / s)]] };
  const try_ = <T>(f: () => T): T | undefined => {
    try {
      return f();
    } catch (e) {
      if (e instanceof FhecError) return undefined;
      throw e;
    }
  };
  // Squaring doubles exp's relative error k times, the normalization at most doubles it again.
  const exp = try_(() => fit('exp', expInterval, { maxRelError: o.expError / 2 ** (k + 1) }));
  if (!exp) return undefined;
  // The first sum: between e^0 (the row's own term, less exp's error and the margin) and n e^(hi/2^k).
  const first: [number, number] = [(1 - o.margin) * (1 - exp.maxRelError), n * Math.exp(hi / s) * (1 + exp.maxRelError) * (1 + o.margin)];
  // Bounding the first (widest, slowest) fit's depth by what the plan can still afford.
  const firstDepth = budget - exp.depth - k * round;
  if (firstDepth < 1) return undefined;
  const cap = Number.isFinite(firstDepth) ? { maxDepth: firstDepth } : {};
  if (k === 0) {
    const r = try_(() => fit('reciprocal', first, { maxRelError: o.reciprocalRel, ...cap }));
    return r && plan('squaring', 0, exp, [r], observed, fill / s);
  }
  let best: SoftmaxPlan | undefined;
  for (const coarse of COARSE_RECIPROCAL_REL) {
    const rs: Approximation[] = [];
    const seen: [number, number][] = [observed.reciprocals[0]!];
    let ok = true;
    for (let i = 0; i <= k && ok; i++) {
      const rho = i > 0 ? rs[i - 1]!.maxRelError : 0;
      if (i > 0) seen.push([(1 - rho) ** 2 / n, (1 + rho) ** 2]);
      const interval = i === 0 ? first : squaredSumInterval(n, rho);
      const r = try_(() => fit('reciprocal', interval, { maxRelError: i === k ? o.reciprocalRel : coarse, ...(i === 0 ? cap : {}) }));
      if (!r || (i < k && !(r.maxRelError < 0.9))) ok = false;
      else rs.push(r);
    }
    if (!ok) continue;
    const p = plan('squaring', k, exp, rs, { exp: observed.exp, reciprocals: seen }, fill / s);
    if (!best || p.depth < best.depth || (p.depth === best.depth && mulsOf(p.exp, p.reciprocals, n) < mulsOf(best.exp, best.reciprocals, n))) best = p;
  }
  return best;
}

/**
 * Least depth of any 1/x scheme on an interval of ratio kappa: each starts with a polynomial whose
 * relative error is below 1, and the Chebyshev interpolant (which equioscillates in relative error)
 * has 2 r^(d+1), r = (sqrt(kappa) - 1) / (sqrt(kappa) + 1); two degrees of slack for minimax fits.
 * Infinity when that degree exceeds the library's limit (then no scheme exists).
 */
export function reciprocalDepthLowerBound(kappa: number): number {
  if (!(kappa > 1)) return 1;
  const q = Math.sqrt(kappa);
  const d = Math.max(1, Math.ceil(Math.log(2) / Math.log((q + 1) / (q - 1))) - 2);
  // Past the approximation library's degree limit no scheme exists at all.
  return d > DEFAULT_MAX_DEGREE ? Infinity : chebyshevDepth(d, 0, 1);
}

/**
 * The cheapest softmax plan (least depth, then fewest ct x ct multiplications for rows of rowLength
 * terms) for one attention op, or an FhecError naming what could not be fitted.
 */
export function planSoftmax(st: AttentionStats, o: SoftmaxPlanOptions, fit: Fit): SoftmaxPlan {
  if (o.method === 'shifted') return planShifted(st, o, fit);
  const maxK = o.maxSquarings ?? 10;
  let best: SoftmaxPlan | undefined;
  const n = rowBound(o.rowLength);
  // A round costs at least 2 + D levels, D the depth of the cheapest coarse 1/x on its fixed interval.
  const coarse = COARSE_RECIPROCAL_REL.map((rho) => {
    try {
      return fit('reciprocal', squaredSumInterval(n, rho), { maxRelError: rho }).depth;
    } catch {
      return 1;
    }
  });
  const round = 2 + Math.min(...coarse);
  const { hi } = squaringScoreInterval(st, o.margin);
  // Start where the first sum's bound is small (hi / 2^k <= 1), then fewer rounds, then more.
  const k0 = Math.min(maxK, Math.max(0, Math.ceil(Math.log2(Math.max(hi, 1)))));
  const order = [k0, ...Array.from({ length: k0 }, (_, i) => k0 - 1 - i), ...Array.from({ length: maxK - k0 }, (_, i) => k0 + 1 + i)];
  for (const k of order) {
    if (best && k * round + 2 > best.depth) continue;
    // Wide 1/x fits are slow: skip k when even the first 1/x's least depth cannot beat the best plan.
    const firstBound = reciprocalDepthLowerBound((n * Math.exp(hi / 2 ** k)) / (1 - o.margin));
    if (firstBound === Infinity || (best && k * round + 1 + firstBound > best.depth)) continue;
    const p = planSquaring(st, o, k, fit, best?.depth, round);
    if (!p) continue;
    if (!best || p.depth < best.depth || (p.depth === best.depth && mulsOf(p.exp, p.reciprocals, n) < mulsOf(best.exp, best.reciprocals, n))) best = p;
  }
  if (!best) {
    const { fitLo: lo, hi } = squaringScoreInterval(st, o.margin);
    throw new FhecError(
      `softmax: no normalize-and-square plan with up to ${maxK} squarings fits scores relative to the diagonal in [${lo.toPrecision(4)}, ${hi.toPrecision(4)}] ` +
        `(calibrated [${st.relMin.toPrecision(4)}, ${st.relMax.toPrecision(4)}]) for rows of ${n} keys`,
    );
  }
  return best;
}

export interface SoftmaxModelRun {
  probabilities: number[];
  /** The input of every reciprocal round (the row sum, then the sums of squares). */
  sums: number[];
}

/**
 * float64 model of the lowered softmax of one row (softmax-normalize.ts and the attention kernels,
 * operation for operation up to CKKS noise): scores already scaled by the op's scale, `own` the index
 * of the query's own key. `ownIsExact`: prefill's own term is exactly 1, decode's goes through exp.
 */
export function evaluateSoftmaxPlan(plan: SoftmaxPlan, scores: readonly number[], own: number, ownIsExact = true): SoftmaxModelRun {
  const s = 2 ** plan.squarings;
  let y = scores.map((x, j) => (j === own && ownIsExact ? 1 : plan.exp.evaluate((x - scores[own]!) / s)));
  const sums: number[] = [];
  for (let i = 0; ; i++) {
    if (i > 0) y = y.map((v) => v * v);
    const S = y.reduce((a, v) => a + v, 0);
    sums.push(S);
    const r = plan.reciprocals[i]!.evaluate(S);
    y = y.map((v) => v * r);
    if (i === plan.reciprocals.length - 1) return { probabilities: y, sums };
  }
}

/**
 * Bound on sum_j |p^_j - p_j| over a row of at most n keys, from the fits' measured errors: for
 * 'squaring', every term carries a relative error of at most delta = (1 + exp rel)^(2^k) - 1 (the own
 * term included) which moves the normalized row by at most 2 delta / (1 - delta), and the last 1/x's
 * relative error rho scales it; for 'shifted', exp's absolute error on n terms over a sum >= 1.
 */
export function softmaxErrorBound(plan: SoftmaxPlan, n: number): number {
  const rho = plan.reciprocals[plan.reciprocals.length - 1]!.maxRelError;
  if (plan.method === 'shifted') return 2 * n * plan.exp.maxError + 2 * rho;
  const delta = (1 + plan.exp.maxRelError) ** (2 ** plan.squarings) - 1;
  const moved = (2 * delta) / (1 - delta);
  return moved + rho * (1 + moved);
}
