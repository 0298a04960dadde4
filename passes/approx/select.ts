// approximate(fn, interval, target): the cheapest scheme (least depth, then fewest ct x ct
// multiplications) that meets the error target on the dense grid, among a single Chebyshev polynomial
// (interpolant, lowered by Remez where possible) and the composite schemes that apply to fn.

import { FhecError } from '../../ir/errors.js';
import { DEFAULT_MAX_DEGREE, interpolateChebyshev, makeChebyshevPoly } from './chebyshev.js';
import { describeTarget, fmt, makeGrid, meets, targetRatio, toleranceOf, type ErrorTarget } from './error.js';
import { targetFunction, zeroInside, type TargetFunction } from './functions.js';
import { buildApproximation, type Approximation } from './approximation.js';
import {
  cheaper,
  maxDegreeForDepth,
  mostAccurateExpBySquaring,
  mostAccurateIterative,
  planExpBySquaring,
  planInvSqrtRefined,
  planIterative,
  type PlanOptions,
} from './composite.js';
import { REMEZ_MAX_DEGREE, minimaxForTolerance, remez } from './remez.js';

export interface ApproximateOptions extends ErrorTarget {
  /** Depth limit (CKKS levels, see program.ts). Default: no limit beyond the search limits. */
  maxDepth?: number;
  /** Degree limit of any single polynomial (default 511). */
  maxDegree?: number;
  /** Restrict the schemes considered (default both). */
  schemes?: ReadonlyArray<'chebyshev' | 'composite'>;
}

/** Depth explored when the caller gives no limit. */
export const SEARCH_MAX_DEPTH = 30;

/** The lowest-degree single Chebyshev polynomial of fn on [a, b] meeting the target, measured. */
export function planChebyshev(fn: TargetFunction, interval: [number, number], target: ErrorTarget, opts: PlanOptions): Approximation | undefined {
  const [a, b] = interval;
  const grid = makeGrid(fn.f, a, b);
  const maxDegree = maxDegreeForDepth(opts.maxDepth, a, b, opts.maxDegree);
  const tol = toleranceOf(target);
  // The search checks the grid only; the measured error (refined, with rounding allowance) can be a
  // hair above it, so tighten a little and refit in that case.
  for (const shrink of [1, 0.9, 0.7]) {
    const coeffs = minimaxForTolerance(fn.f, a, b, (x, fx) => shrink * tol(x, fx), { maxDegree, oddAround: fn.oddAround, grid });
    if (!coeffs) return undefined;
    const approx = chebyshevApproximation(fn, interval, coeffs);
    if (meets({ abs: approx.maxError, rel: approx.maxRelError }, target)) return approx;
  }
  return undefined;
}

export function chebyshevApproximation(fn: TargetFunction, interval: [number, number], coeffs: number[]): Approximation {
  const [a, b] = interval;
  const poly = makeChebyshevPoly(fn.f, a, b, coeffs, fn.zeros);
  return buildApproximation(fn, interval, [{ kind: 'chebyshev', poly, approximates: fn.formula }]);
}

function validate(fnName: string, interval: [number, number], opts: ApproximateOptions): TargetFunction {
  const fn = targetFunction(fnName);
  const [a, b] = interval;
  if (!Number.isFinite(a) || !Number.isFinite(b) || !(a < b)) {
    throw new FhecError(`interval [${a}, ${b}] for ${fn.name} must be finite with a < b`, { field: 'interval' });
  }
  for (const key of ['maxAbsError', 'maxRelError'] as const) {
    const v = opts[key];
    if (v !== undefined && !(v > 0 && Number.isFinite(v))) {
      throw new FhecError(`${key} must be a positive number, got ${v}`, { field: key });
    }
  }
  if (opts.maxAbsError === undefined && opts.maxRelError === undefined) {
    throw new FhecError(`no error target for ${fn.name}: give maxAbsError and/or maxRelError`, { field: 'maxAbsError' });
  }
  if (opts.maxDepth !== undefined && !(Number.isInteger(opts.maxDepth) && opts.maxDepth >= 0)) {
    throw new FhecError(`maxDepth must be a non-negative integer, got ${opts.maxDepth}`, { field: 'maxDepth' });
  }
  if (opts.maxDegree !== undefined && !(Number.isInteger(opts.maxDegree) && opts.maxDegree >= 0)) {
    throw new FhecError(`maxDegree must be a non-negative integer, got ${opts.maxDegree}`, { field: 'maxDegree' });
  }
  const problem = fn.domainProblem(a, b);
  if (problem) throw new FhecError(`cannot approximate ${fn.name} on [${a}, ${b}]: ${problem}`, { field: 'interval' });
  const zero = zeroInside(fn, a, b);
  if (opts.maxRelError !== undefined && zero !== undefined) {
    throw new FhecError(
      `a relative error target is not meaningful for ${fn.name} on [${a}, ${b}]: the function is 0 at x = ${zero}; use maxAbsError`,
      { field: 'maxRelError' },
    );
  }
  return fn;
}

/**
 * Cheapest approximation of fn on the interval meeting the target, by depth first, then ct x ct
 * multiplications. Throws an FhecError when nothing meets it, saying what the best achievable
 * error was within the depth limit.
 */
export function approximate(fnName: string, interval: [number, number], opts: ApproximateOptions): Approximation {
  const fn = validate(fnName, interval, opts);
  const target: ErrorTarget = { maxAbsError: opts.maxAbsError, maxRelError: opts.maxRelError };
  const plan: PlanOptions = { maxDepth: opts.maxDepth ?? SEARCH_MAX_DEPTH, maxDegree: opts.maxDegree ?? DEFAULT_MAX_DEGREE };
  const schemes = opts.schemes ?? ['chebyshev', 'composite'];
  const candidates: (Approximation | undefined)[] = [];
  if (schemes.includes('chebyshev')) candidates.push(planChebyshev(fn, interval, target, plan));
  if (schemes.includes('composite')) {
    // A composite has to beat the single polynomial to matter: cap its depth at that polynomial's.
    const bound = candidates[0] ? { ...plan, maxDepth: Math.min(plan.maxDepth, candidates[0].depth) } : plan;
    if (fn.name === 'exp') candidates.push(planExpBySquaring(interval, target, bound));
    if (fn.name === 'reciprocal' || fn.name === 'invsqrt') candidates.push(planIterative(fn.name, interval, target, bound));
    if (fn.name === 'invsqrt') candidates.push(planInvSqrtRefined(interval, target, bound));
  }
  let best: Approximation | undefined;
  for (const c of candidates) if (c && cheaper(c, best)) best = c;
  if (best) return best;
  throw impossible(fn, interval, target, plan, opts.maxDepth !== undefined, schemes);
}

function impossible(
  fn: TargetFunction,
  interval: [number, number],
  target: ErrorTarget,
  plan: PlanOptions,
  depthGiven: boolean,
  schemes: ReadonlyArray<'chebyshev' | 'composite'>,
): FhecError {
  const [a, b] = interval;
  const options: Approximation[] = [];
  if (schemes.includes('chebyshev')) {
    // The interpolant at the largest degree allowed, and the weighted minimax where Remez is affordable.
    const degree = maxDegreeForDepth(plan.maxDepth, a, b, plan.maxDegree);
    options.push(chebyshevApproximation(fn, interval, interpolateChebyshev(fn.f, a, b, degree, fn.oddAround)));
    const r = degree >= 1 && degree <= REMEZ_MAX_DEGREE ? remez(fn.f, a, b, degree, toleranceOf(target), { oddAround: fn.oddAround }) : undefined;
    if (r) options.push(chebyshevApproximation(fn, interval, r.coeffs));
  }
  if (schemes.includes('composite')) {
    const extra =
      fn.name === 'exp' ? mostAccurateExpBySquaring(interval, target, plan)
      : fn.name === 'reciprocal' || fn.name === 'invsqrt' ? mostAccurateIterative(fn.name, interval, target, plan)
      : undefined;
    if (extra) options.push(extra);
  }
  const ratio = (x: Approximation) => targetRatio({ abs: x.maxError, rel: x.maxRelError }, target);
  options.sort((x, y) => (ratio(x) < ratio(y) ? -1 : ratio(x) > ratio(y) ? 1 : 0));
  const limit = depthGiven ? `within depth ${plan.maxDepth}` : `within the search limits (depth ${plan.maxDepth}, degree ${plan.maxDegree})`;
  const bestText = options[0]
    ? `best achievable is abs error ${fmt(options[0].maxError)}, rel error ${fmt(options[0].maxRelError)} (${options[0].kind}, depth ${options[0].depth})`
    : 'no scheme fits in that depth';
  return new FhecError(`cannot approximate ${fn.name} on [${fmt(a)}, ${fmt(b)}] to ${describeTarget(target)} ${limit}: ${bestText}`, {
    field: target.maxAbsError !== undefined ? 'maxAbsError' : 'maxRelError',
  });
}
