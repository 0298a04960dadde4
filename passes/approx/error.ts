// How approximation error is measured: on a dense grid of [a, b] (uniform points plus Chebyshev-spaced
// points, which crowd the ends where polynomial errors peak), then the largest local maxima are refined
// by golden-section search, and a float64 rounding allowance measured at the worst point is added.
// The result is what an independent fresh grid observes, or slightly more.

export interface ErrorTarget {
  maxAbsError?: number;
  maxRelError?: number;
}

/** Allowed absolute error at x (given f(x)); the search succeeds when |g - f| <= tol everywhere. */
export type Tolerance = (x: number, fx: number) => number;

/** tol(x) = min(maxAbsError, maxRelError * |f(x)|): meeting it meets both targets. */
export function toleranceOf(target: ErrorTarget): Tolerance {
  const abs = target.maxAbsError ?? Infinity;
  const rel = target.maxRelError;
  if (rel === undefined) return () => abs;
  return (_x, fx) => Math.min(abs, rel * Math.abs(fx));
}

export function describeTarget(target: ErrorTarget): string {
  const parts: string[] = [];
  if (target.maxAbsError !== undefined) parts.push(`abs error ${fmt(target.maxAbsError)}`);
  if (target.maxRelError !== undefined) parts.push(`rel error ${fmt(target.maxRelError)}`);
  return parts.join(' and ');
}

export function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1e-3 && a < 1e5 ? String(Number(v.toPrecision(4))) : v.toExponential(2);
}

/** Sample points of [a, b] with the reference function's values there. */
export interface Grid {
  a: number;
  b: number;
  xs: Float64Array;
  fs: Float64Array;
}

/** Sorted union of `points` uniform and `points` Chebyshev-spaced points of [a, b], endpoints included. */
export function gridPoints(a: number, b: number, points: number): Float64Array {
  const n = Math.max(2, points);
  const xs = new Float64Array(2 * n);
  const mid = (a + b) / 2;
  const half = (b - a) / 2;
  for (let i = 0; i < n; i++) {
    xs[i] = i === n - 1 ? b : a + ((b - a) * i) / (n - 1);
    xs[n + i] = i === 0 ? b : i === n - 1 ? a : mid + half * Math.cos((Math.PI * i) / (n - 1));
  }
  xs.sort();
  return xs;
}

export const DEFAULT_GRID_POINTS = 4096;

export function makeGrid(f: (x: number) => number, a: number, b: number, points = DEFAULT_GRID_POINTS): Grid {
  const xs = gridPoints(a, b, points);
  const fs = new Float64Array(xs.length);
  for (let i = 0; i < xs.length; i++) fs[i] = f(xs[i]!);
  return { a, b, xs, fs };
}

/** max |g - f| / tol over the grid points (no refinement): the fast check used while searching. */
export function gridNormalizedError(g: (x: number) => number, grid: Grid, tol: Tolerance): number {
  let worst = 0;
  const { xs, fs } = grid;
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i]!;
    const e = Math.abs(g(x) - fs[i]!) / tol(x, fs[i]!);
    if (!(e <= worst)) {
      worst = e;
      if (Number.isNaN(e)) return Infinity;
    }
  }
  return worst;
}

export interface MeasuredError {
  /** max |g(x) - f(x)| on [a, b]. */
  abs: number;
  /** max |g(x) - f(x)| / |f(x)|; Infinity when f has a zero in [a, b]. */
  rel: number;
  /** Where the absolute and relative maxima were found. */
  absAt: number;
  relAt: number;
}

export interface MeasureOptions {
  /** Uniform and Chebyshev points each (default 4096). */
  points?: number;
  /** Zeros of f: if one lies in [a, b], rel is Infinity. */
  zeros?: readonly number[];
}

const REFINED_MAXIMA = 8;
const GOLDEN_STEPS = 48;
const INV_PHI = (Math.sqrt(5) - 1) / 2;

/** Maximum of e on [lo, hi] near a grid maximum, by golden-section search. */
function goldenMax(e: (x: number) => number, lo: number, hi: number): { x: number; v: number } {
  let x1 = hi - INV_PHI * (hi - lo);
  let x2 = lo + INV_PHI * (hi - lo);
  let e1 = e(x1);
  let e2 = e(x2);
  for (let i = 0; i < GOLDEN_STEPS && hi - lo > 0; i++) {
    if (e1 >= e2) {
      hi = x2;
      x2 = x1;
      e2 = e1;
      x1 = hi - INV_PHI * (hi - lo);
      e1 = e(x1);
    } else {
      lo = x1;
      x1 = x2;
      e1 = e2;
      x2 = lo + INV_PHI * (hi - lo);
      e2 = e(x2);
    }
  }
  return e1 >= e2 ? { x: x1, v: e1 } : { x: x2, v: e2 };
}

/**
 * Rounding noise of e near x: the spread of e over a few neighbouring doubles, where the true error
 * is flat, so any spread is float64 noise that a fresh grid could also hit.
 */
function roundingSpread(e: (x: number) => number, x: number, a: number, b: number): number {
  let lo = Infinity;
  let hi = -Infinity;
  const step = Math.max(Math.abs(x), 1e-300) * Number.EPSILON;
  for (let k = -6; k <= 6; k++) {
    const xk = Math.min(b, Math.max(a, x + k * 3 * step));
    const v = e(xk);
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return hi - lo;
}

/**
 * Max of e over [a, b] given its values on the grid xs: the top local maxima are refined, and twice the
 * local rounding spread is added.
 */
function refinedMax(e: (x: number) => number, xs: Float64Array, vals: Float64Array, a: number, b: number): { v: number; x: number } {
  const n = xs.length;
  for (let i = 0; i < n; i++) if (!Number.isFinite(vals[i]!)) return { v: Infinity, x: xs[i]! };
  const peaks: number[] = [];
  for (let i = 0; i < n; i++) {
    const v = vals[i]!;
    if ((i === 0 || v >= vals[i - 1]!) && (i === n - 1 || v >= vals[i + 1]!)) peaks.push(i);
  }
  peaks.sort((i, j) => vals[j]! - vals[i]!);
  let best = { v: -Infinity, x: a };
  for (const i of peaks.slice(0, REFINED_MAXIMA)) {
    const lo = xs[Math.max(0, i - 1)]!;
    const hi = xs[Math.min(n - 1, i + 1)]!;
    const found = hi > lo ? goldenMax(e, lo, hi) : { x: xs[i]!, v: vals[i]! };
    const at = found.v > vals[i]! ? found : { x: xs[i]!, v: vals[i]! };
    const v = at.v + 2 * roundingSpread(e, at.x, a, b);
    if (!Number.isFinite(v)) return { v: Infinity, x: at.x };
    if (v > best.v) best = { v, x: at.x };
  }
  return best;
}

/** Absolute and relative error of g against f on [a, b], as stated in every Approximation. */
export function measureError(
  g: (x: number) => number,
  f: (x: number) => number,
  a: number,
  b: number,
  opts: MeasureOptions = {},
): MeasuredError {
  const xs = gridPoints(a, b, opts.points ?? DEFAULT_GRID_POINTS);
  const absVals = new Float64Array(xs.length);
  const relVals = new Float64Array(xs.length);
  for (let i = 0; i < xs.length; i++) {
    const fx = f(xs[i]!);
    const d = Math.abs(g(xs[i]!) - fx);
    absVals[i] = d;
    relVals[i] = d / Math.abs(fx);
  }
  const absMax = refinedMax((x) => Math.abs(g(x) - f(x)), xs, absVals, a, b);
  const hasZero = (opts.zeros ?? []).some((z) => a <= z && z <= b);
  const relMax = hasZero
    ? { v: Infinity, x: a }
    : refinedMax((x) => { const fx = f(x); return Math.abs(g(x) - fx) / Math.abs(fx); }, xs, relVals, a, b);
  return { abs: absMax.v, rel: relMax.v, absAt: absMax.x, relAt: relMax.x };
}

/** Whether a measured error meets the target (both parts when both are given). */
export function meets(m: { abs: number; rel: number }, target: ErrorTarget): boolean {
  return (target.maxAbsError === undefined || m.abs <= target.maxAbsError) &&
    (target.maxRelError === undefined || m.rel <= target.maxRelError);
}

/** How far a measured error is from the target (<= 1 meets it): the larger of the two ratios. */
export function targetRatio(m: { abs: number; rel: number }, target: ErrorTarget): number {
  let r = 0;
  if (target.maxAbsError !== undefined) r = Math.max(r, m.abs / target.maxAbsError);
  if (target.maxRelError !== undefined) r = Math.max(r, m.rel / target.maxRelError);
  return Number.isNaN(r) ? Infinity : r;
}
