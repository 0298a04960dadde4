// The steps of an approximation scheme as one straight-line program over an abstract arithmetic, run
// twice: with float64 numbers (the model of exactly what the encrypted evaluation computes, operation by
// operation) and with a level/cost tracker (its multiplicative depth and ciphertext multiplications).
// Running the same code for both keeps the model, the depth and the cost consistent by construction.
//
// Depth convention (CKKS levels, matching ir/fhe: every mul and mul_plain is followed by a rescale):
//  - the input x is at level 0 (fresh); a plaintext constant has no level;
//  - ct x ct multiply: max(levels) + 1, and counts as one non-scalar multiplication;
//  - ct x plaintext scalar: level + 1 (mul_plain), except by 1 (nothing) and -1 (negate), which are free;
//  - additions and subtractions (also of constants): max(levels), free;
//  - a Chebyshev polynomial step: ChebyshevPoly.depth levels and chebyshevNonScalarMuls(degree) products;
//  - depth of the program = the highest level of any value it computes.

import { chebyshevNonScalarMuls, evaluateChebyshev, type ChebyshevPoly } from './chebyshev.js';

export type ApproxStep =
  /** y = p(x), the Chebyshev polynomial of x; `approximates` names what p fits (e.g. "e^(x/16)"). */
  | { kind: 'chebyshev'; poly: ChebyshevPoly; approximates: string }
  /** y <- y * y, `times` times: y^(2^times) (exp range reduction undone). */
  | { kind: 'square'; times: number }
  /** y <- y * (2 - x*y), `iterations` times: Newton for 1/x, relative error squares each step. */
  | { kind: 'newton_reciprocal'; iterations: number }
  /** e = 1 - x*y, then y <- y*(1+e), e <- e*e: Goldschmidt for 1/x; 1 level per step instead of 2. */
  | { kind: 'goldschmidt_reciprocal'; iterations: number }
  /** h = x/2 once, then y <- 1.5*y - (h*y)*(y*y), `iterations` times: Newton for 1/sqrt(x). */
  | { kind: 'newton_invsqrt'; iterations: number }
  /**
   * y <- y * q(x*y*y) with q ~ 1/sqrt(t) on the range of t = x y^2 = u^2 (u = y sqrt(x)): Newton with
   * its linear q = (3 - t)/2 replaced by a fitted polynomial, which shrinks a wide u range far faster.
   */
  | { kind: 'refine_invsqrt'; poly: ChebyshevPoly };

export interface Arith<T> {
  constant(c: number): T;
  add(a: T, b: T): T;
  sub(a: T, b: T): T;
  mul(a: T, b: T): T;
  /** p(x) (x is the program input, or an intermediate value for refine_invsqrt). */
  chebyshev(p: ChebyshevPoly, x: T): T;
}

/** Runs the steps on input x; the first step must be a Chebyshev polynomial (the initial value). */
export function runSteps<T>(steps: readonly ApproxStep[], A: Arith<T>, x: T): T {
  let y: T | undefined;
  const current = (): T => {
    if (y === undefined) throw new Error('approximation steps must start with a chebyshev step');
    return y;
  };
  for (const s of steps) {
    switch (s.kind) {
      case 'chebyshev':
        y = A.chebyshev(s.poly, x);
        break;
      case 'square': {
        let v = current();
        for (let i = 0; i < s.times; i++) v = A.mul(v, v);
        y = v;
        break;
      }
      case 'newton_reciprocal': {
        let v = current();
        for (let i = 0; i < s.iterations; i++) v = A.mul(v, A.sub(A.constant(2), A.mul(x, v)));
        y = v;
        break;
      }
      case 'goldschmidt_reciprocal': {
        let v = current();
        let e = A.sub(A.constant(1), A.mul(x, v));
        for (let i = 0; i < s.iterations; i++) {
          v = A.mul(v, A.add(A.constant(1), e));
          if (i < s.iterations - 1) e = A.mul(e, e);
        }
        y = v;
        break;
      }
      case 'refine_invsqrt': {
        const v = current();
        // (x y) y, not x (y y): y is small where x is large, and y*y would lose its relative precision.
        y = A.mul(v, A.chebyshev(s.poly, A.mul(A.mul(x, v), v)));
        break;
      }
      case 'newton_invsqrt': {
        let v = current();
        if (s.iterations > 0) {
          const h = A.mul(A.constant(0.5), x);
          for (let i = 0; i < s.iterations; i++) {
            v = A.sub(A.mul(A.constant(1.5), v), A.mul(A.mul(h, v), A.mul(v, v)));
          }
        }
        y = v;
        break;
      }
    }
  }
  return current();
}

/** float64 interpretation. */
export const floatArith: Arith<number> = {
  constant: (c) => c,
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  chebyshev: (p, x) => evaluateChebyshev(p, x),
};

export function evaluateSteps(steps: readonly ApproxStep[], x: number): number {
  return runSteps(steps, floatArith, x);
}

/** A value in the cost interpretation: a ciphertext at a level, or a plaintext constant. */
interface Costed {
  level: number;
  constant?: number;
}

export interface StepCost {
  depth: number;
  nonScalarMuls: number;
}

/** Depth and ciphertext multiplications of the steps, under the convention at the top of this file. */
export function costOfSteps(steps: readonly ApproxStep[]): StepCost {
  let depth = 0;
  let nonScalarMuls = 0;
  const ct = (level: number): Costed => {
    depth = Math.max(depth, level);
    return { level };
  };
  const input: Costed = { level: 0 };
  const A: Arith<Costed> = {
    constant: (c) => ({ level: 0, constant: c }),
    add: (a, b) => {
      if (a.constant !== undefined && b.constant !== undefined) return { level: 0, constant: a.constant + b.constant };
      if (a.constant !== undefined) return b;
      if (b.constant !== undefined) return a;
      return ct(Math.max(a.level, b.level));
    },
    sub: (a, b) => A.add(a, b.constant !== undefined ? { level: 0, constant: -b.constant } : b),
    mul: (a, b) => {
      if (a.constant !== undefined && b.constant !== undefined) return { level: 0, constant: a.constant * b.constant };
      const c = a.constant ?? b.constant;
      if (c !== undefined) {
        const v = a.constant !== undefined ? b : a;
        return c === 1 || c === -1 ? v : ct(v.level + 1);
      }
      nonScalarMuls++;
      return ct(Math.max(a.level, b.level) + 1);
    },
    chebyshev: (p, x) => {
      nonScalarMuls += chebyshevNonScalarMuls(p.degree);
      return ct(x.level + p.depth);
    },
  };
  runSteps(steps, A, input);
  return { depth, nonScalarMuls };
}
