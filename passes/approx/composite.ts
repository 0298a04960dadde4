// Composite schemes, for when one polynomial is too deep or too inaccurate:
//  - exp by range reduction: p(x) ~ e^(x/2^k) on [a, b], then k squarings: e^x = (e^(x/2^k))^(2^k).
//    A relative error d of p becomes ~2^k d, but e^(x/2^k) is so much flatter that p is far cheaper.
//  - 1/x: a polynomial first guess y0 with relative error e0 < 1, then Newton y <- y(2 - x y) (2 levels
//    per step) or Goldschmidt (1 level per step); both give relative error e0^(2^n) after n steps.
//  - 1/sqrt(x): a first guess, then Newton y <- y(3 - x y^2)/2 (2 levels per step).
// Each planner returns the cheapest configuration (depth first, then ct x ct multiplications) that meets
// the error target on the dense grid, or undefined.

import {
  DEFAULT_MAX_DEGREE,
  chebyshevDepth,
  evaluateChebyshev,
  interpolateChebyshev,
  makeChebyshevPoly,
  provisionalPoly,
  smallestPassing,
  type ChebyshevPoly,
} from './chebyshev.js';
import { gridNormalizedError, makeGrid, meets, targetRatio, toleranceOf, type ErrorTarget, type Grid, type Tolerance } from './error.js';
import { targetFunction, type TargetFunction } from './functions.js';
import { buildApproximation, type Approximation } from './approximation.js';
import { costOfSteps, evaluateSteps, type ApproxStep } from './program.js';
import { REMEZ_MAX_DEGREE, minimaxForTolerance, remez } from './remez.js';

export interface PlanOptions {
  /** Depth limit of the whole scheme. */
  maxDepth: number;
  /** Degree limit of any polynomial in it. */
  maxDegree?: number;
}

/** Largest polynomial degree whose depth (with the affine map of [a, b]) fits in `depth` levels. */
export function maxDegreeForDepth(depth: number, a: number, b: number, cap = DEFAULT_MAX_DEGREE): number {
  if (depth < 1) return 0;
  const affine = chebyshevDepth(1, a, b) - 1;
  const levels = depth - affine;
  return levels < 1 ? 0 : Math.min(cap, 2 ** Math.min(levels, 30) - 1);
}

/** (depth, nonScalarMuls) order: is x strictly cheaper than y? */
export function cheaper(x: Approximation, y: Approximation | undefined): boolean {
  if (!y) return true;
  return x.depth < y.depth || (x.depth === y.depth && x.nonScalarMuls < y.nonScalarMuls);
}

// ---------------------------------------------------------------------------------------------------
// Builders: a scheme from its parts.

function chebyshevStep(poly: ChebyshevPoly, approximates: string): ApproxStep {
  return { kind: 'chebyshev', poly, approximates };
}

/** e^x on the interval as (p(x))^(2^squarings), p ~ e^(x / 2^squarings). */
export function expBySquaring(interval: [number, number], squarings: number, inner: ChebyshevPoly): Approximation {
  return buildApproximation(targetFunction('exp'), interval, [
    chebyshevStep(inner, `e^(x/${2 ** squarings})`),
    { kind: 'square', times: squarings },
  ]);
}

export function reciprocalNewton(interval: [number, number], guess: ChebyshevPoly, iterations: number): Approximation {
  return buildApproximation(targetFunction('reciprocal'), interval, [
    chebyshevStep(guess, '1/x'),
    { kind: 'newton_reciprocal', iterations },
  ]);
}

export function reciprocalGoldschmidt(interval: [number, number], guess: ChebyshevPoly, iterations: number): Approximation {
  return buildApproximation(targetFunction('reciprocal'), interval, [
    chebyshevStep(guess, '1/x'),
    { kind: 'goldschmidt_reciprocal', iterations },
  ]);
}

export function invSqrtNewton(interval: [number, number], guess: ChebyshevPoly, iterations: number): Approximation {
  return buildApproximation(targetFunction('invsqrt'), interval, [
    chebyshevStep(guess, '1/sqrt(x)'),
    { kind: 'newton_invsqrt', iterations },
  ]);
}

/**
 * Coefficients of a degree-d first guess for the iterations: the polynomial minimising the max relative
 * error (what Newton and Goldschmidt square away) by Remez with weight 1/|f| when it beats the
 * interpolant. (For 1/x the Chebyshev interpolant already equioscillates in relative error:
 * 1 - x p(x) = T_{d+1}(t)/T_{d+1}(t(0)).) For 1/sqrt(x) it is then rescaled for Newton (see below).
 */
export function firstGuessCoeffs(fn: TargetFunction, a: number, b: number, degree: number, grid: Grid): number[] {
  const coeffs = relativeMinimaxCoeffs(fn, a, b, degree, grid);
  return fn.name === 'invsqrt' ? scaleForInvSqrtNewton(coeffs, a, b, grid) : coeffs;
}

/** The degree-d polynomial of least max relative error found (Remez weighted by 1/|f|, or the interpolant). */
export function relativeMinimaxCoeffs(fn: TargetFunction, a: number, b: number, degree: number, grid: Grid): number[] {
  const interp = interpolateChebyshev(fn.f, a, b, degree);
  let coeffs = interp;
  if (degree >= 1 && degree <= REMEZ_MAX_DEGREE) {
    const relTol: Tolerance = (_x, fx) => Math.abs(fx);
    const r = remez(fn.f, a, b, degree, relTol, { maxIterations: 15 });
    const err = (c: number[]) => gridNormalizedError((x) => evaluateChebyshev({ a, b, coeffs: c }, x), grid, relTol);
    if (r && err(r.coeffs) < err(interp)) coeffs = r.coeffs;
  }
  return coeffs;
}

/**
 * Newton for 1/sqrt(x) maps u = y sqrt(x) to h(u) = u (3 - u^2) / 2, which peaks at h(1) = 1, so a
 * symmetric relative error is not what it wants: a guess with u in [uMin, uMax] is best scaled by the c
 * with h(c uMin) = h(c uMax), where the error after the first step is smallest. Scaling the
 * coefficients is free.
 */
function scaleForInvSqrtNewton(coeffs: number[], a: number, b: number, grid: Grid): number[] {
  let uMin = Infinity;
  let uMax = -Infinity;
  for (let i = 0; i < grid.xs.length; i++) {
    const u = evaluateChebyshev({ a, b, coeffs }, grid.xs[i]!) / grid.fs[i]!;
    uMin = Math.min(uMin, u);
    uMax = Math.max(uMax, u);
  }
  if (!(uMin > 0) || !Number.isFinite(uMax)) return coeffs;
  const h = (u: number) => (u * (3 - u * u)) / 2;
  let lo = 1 / uMax; // h(c uMin) < h(c uMax) = 1 here
  let hi = 1 / uMin; // h(c uMin) = 1 > h(c uMax) here
  for (let i = 0; i < 60; i++) {
    const c = (lo + hi) / 2;
    if (h(c * uMin) < h(c * uMax)) lo = c;
    else hi = c;
  }
  const c = (lo + hi) / 2;
  return coeffs.map((v) => v * c);
}

/** A first guess as a measured ChebyshevPoly (see firstGuessCoeffs). */
export function firstGuess(fnName: 'reciprocal' | 'invsqrt', interval: [number, number], degree: number): ChebyshevPoly {
  const fn = targetFunction(fnName);
  const [a, b] = interval;
  return makeChebyshevPoly(fn.f, a, b, firstGuessCoeffs(fn, a, b, degree, makeGrid(fn.f, a, b)));
}

// ---------------------------------------------------------------------------------------------------
// exp by range reduction.

/**
 * Tolerance for p ~ g = e^(x/2^k) such that p^(2^k) meets the target: an error eta of p becomes about
 * 2^k g^(2^k - 1) eta in the result (abs), and relative d becomes (1+d)^(2^k) - 1 (rel).
 */
function expInnerTolerance(k: number, target: ErrorTarget, shrink: number): Tolerance {
  const s = 2 ** k;
  const relInner = target.maxRelError !== undefined ? Math.expm1(Math.log1p(target.maxRelError) / s) : Infinity;
  const abs = target.maxAbsError;
  return (x, gx) => {
    const fromAbs = abs !== undefined ? abs / (s * Math.exp(x * (1 - 1 / s))) : Infinity;
    return shrink * Math.min(fromAbs, relInner * Math.abs(gx));
  };
}

const SHRINKS = [0.9, 0.6, 0.3];

/** Cheapest exp-by-squaring scheme (k >= 1 squarings) on [a, b] meeting the target. */
export function planExpBySquaring(interval: [number, number], target: ErrorTarget, opts: PlanOptions): Approximation | undefined {
  const [a, b] = interval;
  let best: Approximation | undefined;
  for (let k = 1; k < opts.maxDepth; k++) {
    if (best && k + 1 > best.depth) break; // the squarings alone already cost more
    const s = 2 ** k;
    const g = (x: number) => Math.exp(x / s);
    const grid = makeGrid(g, a, b);
    const maxDegree = maxDegreeForDepth(opts.maxDepth - k, a, b, opts.maxDegree);
    for (const shrink of SHRINKS) {
      const coeffs = minimaxForTolerance(g, a, b, expInnerTolerance(k, target, shrink), { maxDegree, grid });
      if (!coeffs) break;
      const approx = expBySquaring(interval, k, makeChebyshevPoly(g, a, b, coeffs));
      if (meets({ abs: approx.maxError, rel: approx.maxRelError }, target)) {
        if (cheaper(approx, best)) best = approx;
        break;
      }
    }
  }
  return best;
}

/** Most accurate exp-by-squaring scheme within the depth limit (for error messages). */
export function mostAccurateExpBySquaring(interval: [number, number], target: ErrorTarget, opts: PlanOptions): Approximation | undefined {
  const [a, b] = interval;
  let best: Approximation | undefined;
  for (let k = 1; k < opts.maxDepth && k <= 16; k++) {
    const g = (x: number) => Math.exp(x / 2 ** k);
    const degree = maxDegreeForDepth(opts.maxDepth - k, a, b, Math.min(opts.maxDegree ?? DEFAULT_MAX_DEGREE, 128));
    const approx = expBySquaring(interval, k, makeChebyshevPoly(g, a, b, interpolateChebyshev(g, a, b, degree)));
    if (!best || targetRatio(errors(approx), target) < targetRatio(errors(best), target)) best = approx;
  }
  return best;
}

function errors(x: Approximation): { abs: number; rel: number } {
  return { abs: x.maxError, rel: x.maxRelError };
}

// ---------------------------------------------------------------------------------------------------
// 1/x and 1/sqrt(x): first guess, then iterations.

type Refinement = 'newton_reciprocal' | 'goldschmidt_reciprocal' | 'newton_invsqrt';

const REFINEMENTS: Record<'reciprocal' | 'invsqrt', Refinement[]> = {
  // Newton first: on a tie (one step, where both are the same) the self-correcting form is kept.
  reciprocal: ['newton_reciprocal', 'goldschmidt_reciprocal'],
  invsqrt: ['newton_invsqrt'],
};

export const MAX_ITERATIONS = 12;

function iterativeSteps(fn: TargetFunction, guess: ChebyshevPoly, refinement: Refinement, iterations: number): ApproxStep[] {
  return [chebyshevStep(guess, fn.formula), { kind: refinement, iterations } as ApproxStep];
}

/** Cheapest first-guess + iterations scheme for 1/x or 1/sqrt(x) on [a, b] meeting the target. */
export function planIterative(
  fnName: 'reciprocal' | 'invsqrt',
  interval: [number, number],
  target: ErrorTarget,
  opts: PlanOptions,
): Approximation | undefined {
  const fn = targetFunction(fnName);
  const [a, b] = interval;
  const grid = makeGrid(fn.f, a, b);
  const tol = toleranceOf(target);
  const relTol: Tolerance = (_x, fx) => Math.abs(fx);
  // Guesses are provisional (unmeasured) while searching; only the chosen one is measured.
  const guesses = new Map<number, ChebyshevPoly>();
  const guessAt = (d: number) => {
    let g = guesses.get(d);
    if (!g) guesses.set(d, (g = provisionalPoly(a, b, firstGuessCoeffs(fn, a, b, d, grid))));
    return g;
  };
  const gridPasses = (steps: ApproxStep[]) => gridNormalizedError((x) => evaluateSteps(steps, x), grid, tol) <= 1;
  const maxDegree = opts.maxDegree ?? DEFAULT_MAX_DEGREE;

  // Phase 1: for each guess depth (its largest degree), the fewest iterations that pass on the grid.
  interface Config { m: number; top: number; refinement: Refinement; iterations: number; depth: number }
  const configs: Config[] = [];
  let bestDepth = opts.maxDepth;
  for (let m = 1; 2 ** (m - 1) <= maxDegree; m++) {
    const top = Math.min(2 ** m - 1, maxDegree);
    const guess = guessAt(top);
    if (guess.depth + 2 > bestDepth) break; // even one iteration adds 2 levels
    if (!(gridNormalizedError((x) => evaluateChebyshev(guess, x), grid, relTol) < 1)) continue;
    for (const refinement of REFINEMENTS[fnName]) {
      for (let n = 1; n <= MAX_ITERATIONS; n++) {
        const steps = iterativeSteps(fn, guess, refinement, n);
        const depth = costOfSteps(steps).depth;
        if (depth > bestDepth) break;
        if (gridPasses(steps)) {
          configs.push({ m, top, refinement, iterations: n, depth });
          bestDepth = depth;
          break;
        }
      }
    }
  }

  // Phase 2: at the least depth, lower each configuration's guess degree as far as it still passes, and
  // measure; keep the fewest ct x ct multiplications. A deeper level is tried only if none measures well.
  for (const depth of [...new Set(configs.map((c) => c.depth))].sort((x, y) => x - y)) {
    let best: Approximation | undefined;
    for (const c of configs.filter((c) => c.depth === depth)) {
      const degrees: number[] = [];
      for (let d = 2 ** (c.m - 1); d <= c.top; d++) degrees.push(d);
      const low = smallestPassing(degrees, (d) => gridPasses(iterativeSteps(fn, guessAt(d), c.refinement, c.iterations))) ?? c.top;
      for (const d of low === c.top ? [c.top] : [low, c.top]) {
        const measured = makeChebyshevPoly(fn.f, a, b, guessAt(d).coeffs);
        const approx = buildApproximation(fn, interval, iterativeSteps(fn, measured, c.refinement, c.iterations));
        if (meets(errors(approx), target)) {
          if (cheaper(approx, best)) best = approx;
          break;
        }
      }
    }
    if (best) return best;
  }
  return undefined;
}

/** Most accurate first-guess + iterations scheme within the depth limit (for error messages). */
export function mostAccurateIterative(
  fnName: 'reciprocal' | 'invsqrt',
  interval: [number, number],
  target: ErrorTarget,
  opts: PlanOptions,
): Approximation | undefined {
  const fn = targetFunction(fnName);
  const [a, b] = interval;
  const grid = makeGrid(fn.f, a, b);
  let best: Approximation | undefined;
  for (let m = 1; m <= 7 && 2 ** (m - 1) <= (opts.maxDegree ?? DEFAULT_MAX_DEGREE); m++) {
    const guess = makeChebyshevPoly(fn.f, a, b, firstGuessCoeffs(fn, a, b, 2 ** m - 1, grid));
    if (guess.depth + 2 > opts.maxDepth || !(guess.maxRelError < 1)) continue;
    for (const refinement of REFINEMENTS[fnName]) {
      let n = 1;
      while (n < MAX_ITERATIONS && costOfSteps(iterativeSteps(fn, guess, refinement, n + 1)).depth <= opts.maxDepth) n++;
      const approx = buildApproximation(fn, interval, iterativeSteps(fn, guess, refinement, n));
      if (!best || targetRatio(errors(approx), target) < targetRatio(errors(best), target)) best = approx;
    }
  }
  return best;
}

// ---------------------------------------------------------------------------------------------------
// 1/sqrt(x) on wide intervals: first guess, then fitted refinements y <- y q(x y^2), then Newton.

/**
 * For intervals so wide that no polynomial guess reaches relative error < 1 (or only at a great
 * degree): a low-degree guess y0 (any positive one: u = y0 sqrt(x) in [uLo, uHi]), then refinement
 * steps y <- y q(x y^2) with q the relative minimax of 1/sqrt(t) on [uLo^2, uHi^2] (which maps u to
 * u q(u^2), shrinking its range as far as degree(q) allows), chosen greedily by levels per halving of
 * ln(uHi/uLo), and Newton steps once the range is narrow. The u range is tracked exactly on the grid.
 */
export function planInvSqrtRefined(interval: [number, number], target: ErrorTarget, opts: PlanOptions): Approximation | undefined {
  if (target.maxRelError === undefined) return undefined;
  const fn = targetFunction('invsqrt');
  const tfn = fn;
  const [a, b] = interval;
  const grid = makeGrid(fn.f, a, b);
  const goal = 0.8 * target.maxRelError;
  let best: Approximation | undefined;
  for (const d0 of [3, 7, 15, 31, 63]) {
    const guess = relativeMinimaxCoeffs(fn, a, b, d0, grid);
    const u = Float64Array.from(grid.xs, (x) => evaluateChebyshev({ a, b, coeffs: guess }, x) * Math.sqrt(x));
    const range = () => {
      let lo = Infinity;
      let hi = -Infinity;
      for (const v of u) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
      return [lo, hi] as const;
    };
    if (!(range()[0] > 0)) continue;
    const steps: ApproxStep[] = [chebyshevStep(makeChebyshevPoly(fn.f, a, b, guess), fn.formula)];
    for (let n = 0; n < 24; n++) {
      const [lo, hi] = range();
      if (Math.max(1 - lo, hi - 1) <= goal) break;
      if (costOfSteps(steps).depth >= opts.maxDepth) break;
      // Newton once u lies in (0, sqrt 3) and its range is narrow; else the refinement of best levels per shrink.
      const width = Math.log(hi / lo);
      let choice: { step: ApproxStep; map: (v: number) => number; score: number } | undefined;
      // A step that reaches the goal outright wins by its levels alone (a finishing step never overshoots deeper than needed).
      const finishes = (mlo: number, mhi: number) => Math.max(1 - mlo, mhi - 1) <= goal;
      if (hi < Math.sqrt(3)) {
        const map = (v: number) => (v * (3 - v * v)) / 2;
        const after = Math.log(Math.max(...[lo, hi, Math.min(Math.max(1, lo), hi)].map(map)) / Math.min(map(lo), map(hi)));
        const mlo = Math.min(map(lo), map(hi));
        const mhi = Math.max(...[lo, hi, Math.min(Math.max(1, lo), hi)].map(map));
        if (after < width) choice = { step: { kind: 'newton_invsqrt', iterations: 1 }, map, score: finishes(mlo, mhi) ? -1e6 + 2 : 2 / Math.log(width / Math.max(after, 1e-300)) };
      }
      const tlo = lo * lo;
      const thi = hi * hi;
      if (thi / tlo > 1 + 1e-9) {
        const tgrid = makeGrid(tfn.f, tlo, thi, 1024);
        for (const dq of [3, 7, 15, 31]) {
          const qc = relativeMinimaxCoeffs(tfn, tlo, thi, dq, tgrid);
          const q = provisionalPoly(tlo, thi, qc);
          const map = (v: number) => v * evaluateChebyshev(q, v * v);
          let mlo = Infinity;
          let mhi = -Infinity;
          for (let i = 0; i <= 256; i++) {
            const v = map(lo * (hi / lo) ** (i / 256));
            mlo = Math.min(mlo, v);
            mhi = Math.max(mhi, v);
          }
          if (!(mlo > 0)) continue;
          const after = Math.log(mhi / mlo);
          if (!(after < width)) continue;
          const score = finishes(mlo, mhi) ? -1e6 + 3 + q.depth : (3 + q.depth) / Math.log(width / Math.max(after, 1e-300));
          if (!choice || score < choice.score) choice = { step: { kind: 'refine_invsqrt', poly: makeChebyshevPoly(tfn.f, tlo, thi, qc) }, map, score };
        }
      }
      if (!choice) break;
      const last = steps[steps.length - 1]!;
      if (choice.step.kind === 'newton_invsqrt' && last.kind === 'newton_invsqrt') last.iterations++;
      else steps.push(choice.step);
      for (let i = 0; i < u.length; i++) u[i] = choice.map(u[i]!);
    }
    if (costOfSteps(steps).depth > opts.maxDepth) continue;
    const approx = buildApproximation(fn, interval, steps);
    if (meets(errors(approx), target) && cheaper(approx, best)) best = approx;
  }
  return best;
}
