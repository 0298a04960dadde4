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
import type { AttentionStats } from './attention-stats.js';
import { EXP_HEADROOM, softmaxIntervals } from './fit-intervals.js';

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

export type Fit = (fn: 'exp' | 'reciprocal', interval: [number, number], target: { maxAbsError?: number; maxRelError?: number }) => Approximation;

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
 * fill - diag in prefill's not-yet-visible keys).
 */
export function squaringScoreInterval(st: AttentionStats, margin: number): { lo: number; hi: number; fill: number } {
  const m = margin;
  const hi = Math.max(st.relMax, 0) + m * Math.abs(st.relMax) + EXP_HEADROOM;
  const dMax = Math.max(st.diagMax + m * Math.abs(st.diagMax), 0);
  const dMin = Math.min(st.diagMin - m * Math.abs(st.diagMin), 0);
  // fill in [lo + dMax, hi + dMin] must be non-empty.
  const lo = Math.min(st.relMin - m * Math.abs(st.relMin), hi + dMin - dMax, -1);
  return { lo, hi, fill: lo + dMax };
}

function planSquaring(st: AttentionStats, o: SoftmaxPlanOptions, k: number, fit: Fit): SoftmaxPlan | undefined {
  const n = Math.max(1, o.rowLength);
  const s = 2 ** k;
  const { lo, hi, fill } = squaringScoreInterval(st, o.margin);
  const expInterval: [number, number] = [lo / s, hi / s];
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
  if (k === 0) {
    const r = try_(() => fit('reciprocal', first, { maxRelError: o.reciprocalRel }));
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
      const r = try_(() => fit('reciprocal', interval, { maxRelError: i === k ? o.reciprocalRel : coarse }));
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
 * The cheapest softmax plan (least depth, then fewest ct x ct multiplications for rows of rowLength
 * terms) for one attention op, or an FhecError naming what could not be fitted.
 */
export function planSoftmax(st: AttentionStats, o: SoftmaxPlanOptions, fit: Fit): SoftmaxPlan {
  if (o.method === 'shifted') return planShifted(st, o, fit);
  const maxK = o.maxSquarings ?? 10;
  let best: SoftmaxPlan | undefined;
  const n = Math.max(1, o.rowLength);
  // A round costs at least 2 + D levels, D the depth of the cheapest coarse 1/x on its fixed interval.
  const coarse = COARSE_RECIPROCAL_REL.map((rho) => {
    try {
      return fit('reciprocal', squaredSumInterval(n, rho), { maxRelError: rho }).depth;
    } catch {
      return 1;
    }
  });
  const round = 2 + Math.min(...coarse);
  for (let k = 0; k <= maxK; k++) {
    if (best && k * round + 2 > best.depth) break;
    const p = planSquaring(st, o, k, fit);
    if (!p) continue;
    if (!best || p.depth < best.depth || (p.depth === best.depth && mulsOf(p.exp, p.reciprocals, n) < mulsOf(best.exp, best.reciprocals, n))) best = p;
  }
  if (!best) {
    const { lo, hi } = squaringScoreInterval(st, o.margin);
    throw new FhecError(
      `softmax: no normalize-and-square plan with up to ${maxK} squarings fits scores relative to the diagonal in [${lo.toPrecision(4)}, ${hi.toPrecision(4)}] ` +
        `(calibrated [${st.relMin.toPrecision(4)}, ${st.relMax.toPrecision(4)}]) for rows of ${n} keys`,
    );
  }
  return best;
}
