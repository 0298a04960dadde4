// Minimax refinement by the Remez exchange algorithm in the Chebyshev basis. The interpolant is within a
// small factor of the best polynomial; Remez closes that gap (and, for relative or position-dependent
// tolerances, which interpolation ignores, often much more), which can lower the degree needed for a
// target and sometimes the depth. Robust by construction: any failure (singular system, no alternation,
// no convergence) falls back to the best polynomial seen, and callers fall back to the interpolant.

import {
  DEFAULT_MAX_DEGREE,
  candidateDegrees,
  clenshaw,
  evaluateChebyshev,
  interpolantForTolerance,
  isSymmetric,
  oddOnly,
  type FitOptions,
} from './chebyshev.js';
import { gridNormalizedError, makeGrid, type Tolerance } from './error.js';

export interface RemezOptions {
  maxIterations?: number;
  /** f - oddAround is odd: on a symmetric interval fit odd terms only, on t in [0, 1]. */
  oddAround?: number;
  /** Stop (failed) once the levelled error proves the best weighted error exceeds this. */
  failAbove?: number;
  /** Stop (good enough) once the weighted error on the grid is at most this. */
  passBelow?: number;
  /** Grid size for locating extrema (default max(2048, 24 (degree + 2))). */
  gridPoints?: number;
}

export interface RemezResult {
  /** Chebyshev coefficients (degree + 1 of them) of the best polynomial seen. */
  coeffs: number[];
  /** max |p - f| / tol on the Remez grid for those coefficients. */
  weightedError: number;
  /** |E| of the last reference: a lower bound of the minimax weighted error (de la Vallee Poussin). */
  levelledError: number;
  converged: boolean;
  iterations: number;
}

const CONVERGED_SPREAD = 1e-4;

/** Solves A x = y (n x n, row-major) by Gaussian elimination with partial pivoting; undefined if singular. */
function solve(A: Float64Array, y: Float64Array, n: number): Float64Array | undefined {
  const M = Float64Array.from(A);
  const r = Float64Array.from(y);
  for (let col = 0; col < n; col++) {
    let piv = col;
    for (let i = col + 1; i < n; i++) if (Math.abs(M[i * n + col]!) > Math.abs(M[piv * n + col]!)) piv = i;
    const p = M[piv * n + col]!;
    if (!(Math.abs(p) > 1e-300)) return undefined;
    if (piv !== col) {
      for (let j = 0; j < n; j++) {
        const t = M[col * n + j]!;
        M[col * n + j] = M[piv * n + j]!;
        M[piv * n + j] = t;
      }
      const t = r[col]!;
      r[col] = r[piv]!;
      r[piv] = t;
    }
    for (let i = col + 1; i < n; i++) {
      const factor = M[i * n + col]! / p;
      if (factor === 0) continue;
      for (let j = col; j < n; j++) M[i * n + j] = M[i * n + j]! - factor * M[col * n + j]!;
      r[i] = r[i]! - factor * r[col]!;
    }
  }
  const x = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    let s = r[i]!;
    for (let j = i + 1; j < n; j++) s -= M[i * n + j]! * x[j]!;
    x[i] = s / M[i * n + i]!;
  }
  return x.every(Number.isFinite) ? x : undefined;
}

/** Alternating extrema of e: the largest |e| of each run of equal sign, trimmed to `count` points. */
function alternatingExtrema(e: Float64Array, count: number): number[] | undefined {
  const ext: number[] = [];
  let sign = 0;
  for (let i = 0; i < e.length; i++) {
    const s = Math.sign(e[i]!);
    if (s === 0) continue;
    if (s !== sign) {
      ext.push(i);
      sign = s;
    } else if (Math.abs(e[i]!) > Math.abs(e[ext[ext.length - 1]!]!)) {
      ext[ext.length - 1] = i;
    }
  }
  if (ext.length < count) return undefined;
  const mag = (k: number) => Math.abs(e[ext[k]!]!);
  while (ext.length > count) {
    const last = ext.length - 1;
    if (ext.length - count === 1) {
      ext.splice(mag(0) < mag(last) ? 0 : last, 1);
      continue;
    }
    let k = 0;
    for (let i = 1; i <= last; i++) if (mag(i) < mag(k)) k = i;
    if (k === 0 || k === last) ext.splice(k, 1);
    // Dropping two neighbours keeps the signs alternating.
    else ext.splice(mag(k - 1) < mag(k + 1) ? k - 1 : k, 2);
  }
  return ext;
}

/** Index of the grid point nearest to t (ts ascending). */
function nearestIndex(ts: Float64Array, t: number): number {
  let lo = 0;
  let hi = ts.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (ts[mid]! <= t) lo = mid;
    else hi = mid;
  }
  return t - ts[lo]! <= ts[hi]! - t ? lo : hi;
}

/**
 * Starting reference (grid indices) of m points: the extrema of T_{m-1} on [-1, 1]. Two cases need
 * care: odd-only fits run on [0, 1] and start from the m extrema of T_{2m-1} there (t = 0, where the
 * odd error vanishes, would make the system singular); on other symmetric intervals a symmetric start
 * decouples E from the even part of f (for x/2 + even, as SiLU and GELU, E would come out 0), so start
 * from the extrema of T_m without the leftmost one.
 */
function initialReference(ts: Float64Array, m: number, odd: boolean, symmetric: boolean): number[] {
  const t: number[] = [];
  if (odd) for (let i = m - 1; i >= 0; i--) t.push(Math.cos((Math.PI * i) / (2 * m - 1)));
  else if (symmetric) for (let i = 1; i <= m; i++) t.push(-Math.cos((Math.PI * i) / m));
  else for (let i = 0; i < m; i++) t.push(-Math.cos((Math.PI * i) / (m - 1)));
  const ref = t.map((v) => nearestIndex(ts, v));
  // Distinct, increasing indices (the grid is much finer than the reference).
  for (let i = 1; i < ref.length; i++) if (ref[i]! <= ref[i - 1]!) ref[i] = ref[i - 1]! + 1;
  return ref;
}

/**
 * Remez exchange for the weighted minimax problem min_p max |p - f| / tol over [a, b], p of the given
 * degree in the Chebyshev basis. Undefined only when no polynomial could be computed at all.
 */
export function remez(
  f: (x: number) => number,
  a: number,
  b: number,
  degree: number,
  tol: Tolerance,
  opts: RemezOptions = {},
): RemezResult | undefined {
  const odd = oddOnly(a, b, opts.oddAround);
  const offset = odd ? opts.oddAround! : 0;
  // Basis indices fitted (in the odd case c_0 is fixed to oddAround and the even terms are 0).
  const js = candidateDegrees(degree, odd).filter((j) => !odd || j % 2 === 1);
  if (js.length === 0) return undefined;
  const m = js.length + 1; // unknowns: the coefficients and the levelled error E
  const t0 = odd ? 0 : -1;
  const G = opts.gridPoints ?? Math.max(2048, 24 * (degree + 2));
  const ts = new Float64Array(G);
  const F = new Float64Array(G);
  const W = new Float64Array(G);
  const mid = (a + b) / 2;
  const half = (b - a) / 2;
  for (let i = 0; i < G; i++) {
    const t = t0 + ((1 - t0) * (1 - Math.cos((Math.PI * i) / (G - 1)))) / 2;
    ts[i] = t;
    const x = mid + half * t;
    const fx = f(x);
    const w = 1 / tol(x, fx);
    if (!Number.isFinite(fx) || !Number.isFinite(w) || w <= 0) return undefined;
    F[i] = fx - offset;
    W[i] = w;
  }
  const full = (sol: Float64Array): number[] => {
    const c = new Array<number>(degree + 1).fill(0);
    js.forEach((j, k) => (c[j] = sol[k]!));
    c[0] += offset;
    return c;
  };

  let ref = initialReference(ts, m, odd, isSymmetric(a, b));
  let best: RemezResult | undefined;
  const maxIterations = opts.maxIterations ?? 40;
  const A = new Float64Array(m * m);
  const y = new Float64Array(m);
  const e = new Float64Array(G);
  const Tv = new Float64Array(degree + 1);
  for (let it = 1; it <= maxIterations; it++) {
    for (let i = 0; i < m; i++) {
      const t = ts[ref[i]!]!;
      // T_0..T_degree at t by the three-term recurrence.
      Tv[0] = 1;
      if (degree >= 1) Tv[1] = t;
      for (let j = 2; j <= degree; j++) Tv[j] = 2 * t * Tv[j - 1]! - Tv[j - 2]!;
      for (let k = 0; k < js.length; k++) A[i * m + k] = Tv[js[k]!]!;
      A[i * m + m - 1] = (i % 2 === 0 ? 1 : -1) / W[ref[i]!]!;
      y[i] = F[ref[i]!]!;
    }
    const sol = solve(A, y, m);
    if (!sol) break;
    const levelled = Math.abs(sol[m - 1]!);
    const coeffs = full(sol);
    const shifted = coeffs.slice();
    shifted[0]! -= offset;
    let worst = 0;
    for (let i = 0; i < G; i++) {
      e[i] = (clenshaw(shifted, ts[i]!) - F[i]!) * W[i]!;
      worst = Math.max(worst, Math.abs(e[i]!));
    }
    if (!Number.isFinite(worst)) break;
    if (!best || worst < best.weightedError) best = { coeffs, weightedError: worst, levelledError: levelled, converged: false, iterations: it };
    best.levelledError = levelled;
    best.iterations = it;
    if (worst - levelled <= CONVERGED_SPREAD * worst) {
      best.converged = true;
      break;
    }
    if (opts.failAbove !== undefined && levelled > opts.failAbove) break;
    if (opts.passBelow !== undefined && best.weightedError <= opts.passBelow) break;
    const next = alternatingExtrema(e, m);
    if (!next || next.every((r, i) => r === ref[i])) break;
    ref = next;
  }
  return best;
}

export const REMEZ_MAX_DEGREE = 256;

export interface MinimaxOptions extends FitOptions {
  /** Degrees above this use the interpolant only (Remez costs O(degree^3) per iteration). */
  remezMaxDegree?: number;
}

/**
 * The lowest-degree polynomial meeting tol on the grid: the minimal interpolant, then Remez at lower
 * degrees while it still meets tol (galloping down, then bisecting, so that Remez at the returned
 * degree minus one fails). Falls back to the interpolant wherever Remez does worse or fails.
 */
export function minimaxForTolerance(
  f: (x: number) => number,
  a: number,
  b: number,
  tol: Tolerance,
  opts: MinimaxOptions = {},
): number[] | undefined {
  const grid = opts.grid ?? makeGrid(f, a, b);
  const maxDegree = opts.maxDegree ?? DEFAULT_MAX_DEGREE;
  const remezMax = opts.remezMaxDegree ?? REMEZ_MAX_DEGREE;
  const interp = interpolantForTolerance(f, a, b, tol, { ...opts, grid });
  const top = interp ? interp.length - 1 : maxDegree;
  const odd = oddOnly(a, b, opts.oddAround);
  const gridError = (c: number[]) => gridNormalizedError((x) => evaluateChebyshev({ a, b, coeffs: c }, x), grid, tol);
  const results = new Map<number, number[] | undefined>();
  const remezPasses = (d: number): boolean => {
    if (!results.has(d)) {
      const r = d <= remezMax ? remez(f, a, b, d, tol, { oddAround: opts.oddAround, failAbove: 1, passBelow: 0.97 }) : undefined;
      results.set(d, r && r.weightedError <= 1 && gridError(r.coeffs) <= 1 ? r.coeffs : undefined);
    }
    return results.get(d) !== undefined;
  };
  if (!interp && !remezPasses(top)) return undefined;
  const below = candidateDegrees(top - 1, odd);
  // Gallop down from `top` (known to pass), then bisect between the last failure and the last success.
  let hi = below.length; // index `below.length` stands for `top`
  let lo = -1;
  for (let step = 1; hi > 0; step *= 2) {
    const i = Math.max(0, hi - step);
    if (remezPasses(below[i]!)) hi = i;
    else {
      lo = i;
      break;
    }
  }
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (remezPasses(below[mid]!)) hi = mid;
    else lo = mid;
  }
  if (hi < below.length) return results.get(below[hi]!)!;
  const r = results.get(top);
  if (!interp) return r;
  return r && gridError(r) < gridError(interp) ? r : interp;
}
