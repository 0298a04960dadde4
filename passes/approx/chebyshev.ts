// Chebyshev interpolation on [a, b]: p(x) = sum_j c_j T_j(t), t = (2x - a - b)/(b - a), interpolating f at
// the Chebyshev nodes; evaluated by Clenshaw. The degree is the smallest whose interpolant meets an error
// tolerance on the dense grid. This is the polynomial the encrypted Chebyshev evaluator runs.

import { gridNormalizedError, makeGrid, measureError, type Grid, type Tolerance } from './error.js';

export interface ChebyshevPoly {
  a: number;
  b: number;
  /** Coefficients in the Chebyshev basis of the mapped variable t in [-1, 1]. */
  coeffs: number[];
  degree: number;
  /** Max absolute error against the function it was fitted to, on [a, b] (see error.ts). */
  maxError: number;
  /** Max relative error (Infinity when that function has a zero in [a, b]). */
  maxRelError: number;
  /**
   * Multiplicative depth of the encrypted evaluation: ceil(log2(degree + 1)) for the Chebyshev sum with
   * baby-step giant-step (scalar coefficients folded into products), plus 1 for the affine map
   * x -> t = alpha x + beta when [a, b] != [-1, 1] (a plaintext-scalar multiply). 0 for a constant.
   */
  depth: number;
}

/** Depth convention of ChebyshevPoly.depth. */
export function chebyshevDepth(degree: number, a: number, b: number): number {
  if (degree <= 0) return 0;
  const affine = a === -1 && b === 1 ? 0 : 1;
  return Math.ceil(Math.log2(degree + 1)) + affine;
}

/**
 * Ciphertext x ciphertext multiplications of a baby-step giant-step evaluation of a degree-d Chebyshev sum:
 * baby steps T_2..T_{min(2^l, d)} (one product each), giant steps T_{2^(l+1)}, T_{2^(l+2)}, ... <= d (one
 * squaring each), then the recursive split p = q T_g + r at the largest giant step g <= deg p, which
 * costs one product when q is not a constant; sums of at most 2^l terms are scalar combinations of baby
 * steps. l is the split that minimises the total. Scalar multiplications are not counted.
 */
export function chebyshevNonScalarMuls(degree: number): number {
  if (degree <= 1) return 0;
  let best = Infinity;
  for (let l = 1; 2 ** (l - 1) < degree; l++) {
    const baby = 2 ** l;
    let giant = 0;
    for (let g = 2 * baby; g <= degree; g *= 2) giant++;
    const split = (d: number): number => {
      if (d <= baby) return 0;
      let g = baby;
      while (2 * g <= d) g *= 2;
      return split(d - g) + split(g - 1) + (d - g >= 1 ? 1 : 0);
    };
    best = Math.min(best, Math.min(baby, degree) - 1 + giant + split(degree));
  }
  return best;
}

/** t = alpha * x + beta maps [a, b] onto [-1, 1]. */
export function affineMap(a: number, b: number): { alpha: number; beta: number } {
  if (a === -1 && b === 1) return { alpha: 1, beta: 0 };
  return { alpha: 2 / (b - a), beta: -(a + b) / (b - a) };
}

/** sum_j c_j T_j(t) by Clenshaw's recurrence. */
export function clenshaw(coeffs: readonly number[], t: number): number {
  let b1 = 0;
  let b2 = 0;
  const t2 = 2 * t;
  for (let j = coeffs.length - 1; j >= 1; j--) {
    const b0 = coeffs[j]! + t2 * b1 - b2;
    b2 = b1;
    b1 = b0;
  }
  return (coeffs[0] ?? 0) + t * b1 - b2;
}

/** p(x) with the same affine map the encrypted evaluation applies. */
export function evaluateChebyshev(p: { a: number; b: number; coeffs: readonly number[] }, x: number): number {
  const { alpha, beta } = affineMap(p.a, p.b);
  return clenshaw(p.coeffs, alpha * x + beta);
}

/** The degree+1 Chebyshev nodes (first kind) of [a, b]. */
export function chebyshevNodes(a: number, b: number, degree: number): number[] {
  const n = degree + 1;
  const nodes: number[] = [];
  for (let k = 0; k < n; k++) nodes.push((a + b) / 2 + ((b - a) / 2) * Math.cos((Math.PI * (k + 0.5)) / n));
  return nodes;
}

/**
 * Coefficients of the degree-d interpolant at the Chebyshev nodes: the discrete cosine sums
 * c_j = (2/N) sum_k f(x_k) cos(pi j (k + 1/2) / N), with c_0 halved (N = d + 1).
 * With oddAround set (f - oddAround odd) and a symmetric interval, the even terms are exactly
 * oddAround (c_0) and 0, removing the float noise they would otherwise carry.
 */
export function interpolateChebyshev(
  f: (x: number) => number,
  a: number,
  b: number,
  degree: number,
  oddAround?: number,
): number[] {
  const n = degree + 1;
  const fk = chebyshevNodes(a, b, degree).map(f);
  // cos(pi j (2k+1) / (2N)) = cosTable[j (2k+1) mod 4N]
  const cosTable = new Float64Array(4 * n);
  for (let m = 0; m < 4 * n; m++) cosTable[m] = Math.cos((Math.PI * m) / (2 * n));
  const coeffs: number[] = [];
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (let k = 0; k < n; k++) s += fk[k]! * cosTable[(j * (2 * k + 1)) % (4 * n)]!;
    coeffs.push(((j === 0 ? 1 : 2) * s) / n);
  }
  return isSymmetric(a, b) && oddAround !== undefined ? imposeOddSymmetry(coeffs, oddAround) : coeffs;
}

export function isSymmetric(a: number, b: number): boolean {
  return Math.abs(a + b) <= 1e-12 * (b - a);
}

/** c_0 = oddAround, even c_j = 0: the exact structure of (odd function + constant) on a symmetric interval. */
export function imposeOddSymmetry(coeffs: number[], oddAround: number): number[] {
  return coeffs.map((c, j) => (j === 0 ? oddAround : j % 2 === 0 ? 0 : c));
}

/** Builds a ChebyshevPoly and measures its error against f on the dense grid. */
export function makeChebyshevPoly(
  f: (x: number) => number,
  a: number,
  b: number,
  coeffs: number[],
  zeros: readonly number[] = [],
): ChebyshevPoly {
  let degree = coeffs.length - 1;
  while (degree > 0 && coeffs[degree] === 0) degree--;
  const trimmed = coeffs.slice(0, degree + 1);
  const p = { a, b, coeffs: trimmed };
  const m = measureError((x) => evaluateChebyshev(p, x), f, a, b, { points: gridPointsFor(degree), zeros });
  return { a, b, coeffs: trimmed, degree, maxError: m.abs, maxRelError: m.rel, depth: chebyshevDepth(degree, a, b) };
}

/**
 * A polynomial whose error has not been measured yet (maxError/maxRelError NaN): for searches, where
 * only the final choice is measured.
 */
export function provisionalPoly(a: number, b: number, coeffs: number[]): ChebyshevPoly {
  return { a, b, coeffs, degree: coeffs.length - 1, maxError: NaN, maxRelError: NaN, depth: chebyshevDepth(coeffs.length - 1, a, b) };
}

/** Grid size that samples every oscillation of a degree-d error curve many times over. */
export function gridPointsFor(degree: number): number {
  return Math.max(4096, 16 * (degree + 1));
}

/** Degrees worth trying: all of 0..maxDegree, or 0 and the odd ones when only odd terms are needed. */
export function candidateDegrees(maxDegree: number, oddOnly: boolean): number[] {
  const out: number[] = [];
  for (let d = 0; d <= maxDegree; d++) if (!oddOnly || d === 0 || d % 2 === 1) out.push(d);
  return out;
}

/**
 * Smallest candidate for which `passes` holds, assuming passing is (roughly) monotone: probe the largest
 * candidate of each depth (degrees up to 0, 1, 3, 7, 15, ...) until one passes, then bisect below it
 * keeping "lo fails, hi passes", so the answer's predecessor always fails. Undefined if all fail.
 */
export function smallestPassing(candidates: readonly number[], passes: (d: number) => boolean): number | undefined {
  const n = candidates.length;
  if (n === 0) return undefined;
  let lo = -1;
  let hi = -1;
  for (let k = 0; hi < 0; k++) {
    let idx = lo;
    while (idx + 1 < n && candidates[idx + 1]! <= 2 ** k - 1) idx++;
    if (k > 60) idx = n - 1;
    if (idx === lo) continue;
    if (passes(candidates[idx]!)) hi = idx;
    else if (idx === n - 1) return undefined;
    else lo = idx;
  }
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (passes(candidates[mid]!)) hi = mid;
    else lo = mid;
  }
  return candidates[hi];
}

export interface FitOptions {
  /** Largest degree allowed (default 511). */
  maxDegree?: number;
  /** f - oddAround is odd (see TargetFunction.oddAround). */
  oddAround?: number;
  /** Grid to search on (default: makeGrid(f, a, b)). */
  grid?: Grid;
}

export const DEFAULT_MAX_DEGREE = 511;

/** Whether the fit may use only odd terms. */
export function oddOnly(a: number, b: number, oddAround?: number): boolean {
  return oddAround !== undefined && isSymmetric(a, b);
}

/**
 * The lowest-degree Chebyshev interpolant of f on [a, b] meeting tol on the grid, as coefficients,
 * or undefined if maxDegree is not enough.
 */
export function interpolantForTolerance(
  f: (x: number) => number,
  a: number,
  b: number,
  tol: Tolerance,
  opts: FitOptions = {},
): number[] | undefined {
  const grid = opts.grid ?? makeGrid(f, a, b);
  const maxDegree = opts.maxDegree ?? DEFAULT_MAX_DEGREE;
  const fits = new Map<number, number[]>();
  const fit = (d: number) => {
    let c = fits.get(d);
    if (!c) fits.set(d, (c = interpolateChebyshev(f, a, b, d, opts.oddAround)));
    return c;
  };
  const passes = (d: number) => {
    const c = fit(d);
    return gridNormalizedError((x) => evaluateChebyshev({ a, b, coeffs: c }, x), grid, tol) <= 1;
  };
  const d = smallestPassing(candidateDegrees(maxDegree, oddOnly(a, b, opts.oddAround)), passes);
  return d === undefined ? undefined : fit(d);
}
