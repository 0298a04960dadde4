// An approximation of a nonlinearity on a calibrated interval: the steps the encrypted evaluation runs,
// their cost (depth and ciphertext multiplications, see program.ts for the convention), the float64
// model of the computation, and its error measured on a dense grid of the interval (see error.ts).

import { fmt, measureError } from './error.js';
import { affineMap, gridPointsFor } from './chebyshev.js';
import type { FunctionName, TargetFunction } from './functions.js';
import { costOfSteps, evaluateSteps, type ApproxStep } from './program.js';

export interface Approximation {
  fn: FunctionName;
  interval: [number, number];
  /** 'chebyshev': one polynomial; 'composite': a polynomial followed by squarings or iterations. */
  kind: 'chebyshev' | 'composite';
  steps: ApproxStep[];
  /**
   * Multiplicative depth in CKKS levels: ct x ct and ct x plaintext-scalar multiplies each consume one
   * level (x1 and x-1 are free, additions are free); a Chebyshev step costs ChebyshevPoly.depth. The
   * input is at level 0; depth is the highest level reached. See program.ts.
   */
  depth: number;
  /** Ciphertext x ciphertext multiplications (relinearisations), the main cost after depth. */
  nonScalarMuls: number;
  /** Max absolute error of evaluate() against the reference on the interval's dense grid. */
  maxError: number;
  /** Max relative error (Infinity when the function has a zero in the interval). */
  maxRelError: number;
  /** float64 model of the exact sequence of operations of the encrypted evaluation. */
  evaluate(x: number): number;
  /** One line for reports. */
  describe(): string;
}

export function describeSteps(steps: readonly ApproxStep[]): string {
  return steps
    .map((s) => {
      switch (s.kind) {
        case 'chebyshev':
          return `chebyshev degree ${s.poly.degree} of ${s.approximates} on [${fmt(s.poly.a)}, ${fmt(s.poly.b)}]`;
        case 'square':
          return `square x${s.times}`;
        case 'newton_reciprocal':
          return `newton 1/x x${s.iterations}`;
        case 'goldschmidt_reciprocal':
          return `goldschmidt 1/x x${s.iterations}`;
        case 'newton_invsqrt':
          return `newton 1/sqrt x${s.iterations}`;
        case 'refine_invsqrt':
          return `y*q(x y^2), q of degree ${s.poly.degree} on [${fmt(s.poly.a)}, ${fmt(s.poly.b)}]`;
      }
    })
    .join(', then ');
}

/** Wraps steps as an Approximation of fn on [a, b], measuring its error. */
export function buildApproximation(fn: TargetFunction, interval: [number, number], steps: ApproxStep[]): Approximation {
  const [a, b] = interval;
  const evaluate = (x: number) => evaluateSteps(steps, x);
  const degree = Math.max(0, ...steps.map((s) => (s.kind === 'chebyshev' ? s.poly.degree : 0)));
  const m = measureError(evaluate, fn.f, a, b, { points: gridPointsFor(degree), zeros: fn.zeros });
  const cost = costOfSteps(steps);
  const kind = steps.length === 1 && steps[0]!.kind === 'chebyshev' ? 'chebyshev' : 'composite';
  return {
    fn: fn.name,
    interval: [a, b],
    kind,
    steps,
    depth: cost.depth,
    nonScalarMuls: cost.nonScalarMuls,
    maxError: m.abs,
    maxRelError: m.rel,
    evaluate,
    describe: () =>
      `${fn.name} on [${fmt(a)}, ${fmt(b)}]: ${kind} (${describeSteps(steps)}); depth ${cost.depth}, ` +
      `${cost.nonScalarMuls} ct-ct muls; max abs error ${fmt(m.abs)}, max rel error ${fmt(m.rel)}`,
  };
}

/** The approximation's steps when they are a Chebyshev polynomial of x followed by squarings only. */
function chebyshevThenSquarings(approx: Approximation): [Extract<ApproxStep, { kind: 'chebyshev' }>, ApproxStep[]] | undefined {
  const [first, ...rest] = approx.steps;
  return first?.kind === 'chebyshev' && rest.every((s) => s.kind === 'square') ? [first, rest] : undefined;
}

/**
 * c * approx(x) with c folded into the coefficients, so a product by a constant after the
 * approximation costs no level: a Chebyshev step alone is scaled by c, one followed by k squarings by
 * c^(1/2^k) (c > 0). Undefined for schemes that read x again after their first step (Newton and the
 * like), where c cannot be folded. The result's errors are c times the original's absolute errors.
 */
export function scaledApproximation(approx: Approximation, c: number): Approximation | undefined {
  if (!(Number.isFinite(c) && c !== 0)) return undefined;
  const split = chebyshevThenSquarings(approx);
  if (!split) return undefined;
  const [first, rest] = split;
  const squarings = rest.reduce((k, s) => k + (s.kind === 'square' ? s.times : 0), 0);
  if (squarings > 0 && c < 0) return undefined;
  const f = squarings > 0 ? c ** (1 / 2 ** squarings) : c;
  const poly = { ...first.poly, coeffs: first.poly.coeffs.map((v) => v * f), maxError: first.poly.maxError * Math.abs(f) };
  const steps: ApproxStep[] = [{ ...first, poly, approximates: `${fmt(f)} * (${first.approximates})` }, ...rest];
  return {
    ...approx,
    steps,
    maxError: approx.maxError * Math.abs(c),
    evaluate: (x) => evaluateSteps(steps, x),
    describe: () => `${fmt(c)} x ${approx.describe()}`,
  };
}

/**
 * The affine map t = alpha x + beta onto [-1, 1] that the approximation's Chebyshev step starts with,
 * when only that first step reads x (the rest are squarings): a caller that makes x with plaintext
 * products can fold the map into their constants and save its level (applyApproximation's
 * `mappedInput`). Undefined when the step needs no map or x is read again.
 */
export function foldableInputMap(approx: Approximation): { alpha: number; beta: number } | undefined {
  const first = chebyshevThenSquarings(approx)?.[0];
  if (!first) return undefined;
  const { a, b } = first.poly;
  if (a === -1 && b === 1) return undefined;
  return affineMap(a, b);
}
