// The bridge from the approximation library to FHE IR: runs an Approximation's steps (passes/approx/
// program.ts) with ciphertext arithmetic. The same `runSteps` program drives the float64 model
// (Approximation.evaluate), the level tracker (Approximation.depth) and this lowering, so the three agree
// operation for operation; the Chebyshev step goes through the baby-step giant-step evaluator.

import type { FheBuilder } from '../../../ir/fhe/builder.js';
import type { FheValue } from '../../../ir/fhe/types.js';
import type { Approximation } from '../../approx/approximation.js';
import { runSteps, type Arith } from '../../approx/program.js';
import { evalChebyshev } from '../chebyshev.js';
import { CostMeter, describeApproximation, type KernelApproximation, type KernelCost } from './cost.js';

/** A ciphertext, or a plaintext scalar that has not met a ciphertext yet. */
type Term = FheValue | number;

export interface ApplyOptions {
  /**
   * The Chebyshev variable t = (2x - a - b)/(b - a) already computed by the caller (e.g. with a dense
   * plaintext map that also masks slots): the Chebyshev step then skips its own affine map (one level
   * less). Only for schemes whose later steps do not read x (a single polynomial, or exp's squarings).
   */
  mapped?: FheValue;
  /** Label in the approximation report. */
  role?: string;
}

export interface ApplyResult {
  value: FheValue;
  cost: KernelCost;
  approximations: KernelApproximation[];
}

function fheArith(b: FheBuilder): Arith<Term> {
  const splat = (value: number) => ({ kind: 'splat' as const, value });
  const A: Arith<Term> = {
    constant: (c) => c,
    add: (x, y) => {
      if (typeof x === 'number' && typeof y === 'number') return x + y;
      if (typeof x === 'number') return x === 0 ? y : b.addConst(y as FheValue, splat(x), 'approx_c');
      if (typeof y === 'number') return y === 0 ? x : b.addConst(x, splat(y), 'approx_c');
      return b.add(x, y);
    },
    sub: (x, y) => {
      if (typeof y === 'number') return A.add(x, -y);
      if (typeof x === 'number') return A.add(b.negate(y), x);
      return b.sub(x, y);
    },
    mul: (x, y) => {
      if (typeof x === 'number' && typeof y === 'number') return x * y;
      const c = typeof x === 'number' ? x : typeof y === 'number' ? y : undefined;
      if (c !== undefined) {
        const v = (typeof x === 'number' ? y : x) as FheValue;
        if (c === 1) return v;
        if (c === -1) return b.negate(v);
        return b.mulConst(v, splat(c), 'approx_c');
      }
      return b.mul(x as FheValue, y as FheValue);
    },
    chebyshev: () => {
      throw new Error('replaced below');
    },
  };
  return A;
}

/** Evaluates `approx` on ciphertext x (unmanaged: the management pass adds rescales). */
export function applyApproximation(b: FheBuilder, x: FheValue, approx: Approximation, opts: ApplyOptions = {}): ApplyResult {
  const meter = new CostMeter(b, opts.mapped ? [opts.mapped] : [x]);
  const A = fheArith(b);
  A.chebyshev = (p, input) => {
    if (opts.mapped) return evalChebyshev(b, opts.mapped, { coeffs: p.coeffs, a: -1, b: 1 }).value;
    return evalChebyshev(b, input as FheValue, { coeffs: p.coeffs, a: p.a, b: p.b }).value;
  };
  if (opts.mapped && approx.steps.some((s) => s.kind !== 'chebyshev' && s.kind !== 'square')) {
    throw new Error(`a pre-mapped input cannot feed ${approx.describe()}: its iterations read x`);
  }
  let y = runSteps(approx.steps, A, x as Term);
  // A constant result still has to be a ciphertext.
  if (typeof y === 'number') y = b.addConst(b.mulConst(x, { kind: 'splat', value: 0 }, 'zero'), { kind: 'splat', value: y }, 'approx_c');
  return { value: y, cost: meter.finish([y]), approximations: [describeApproximation(opts.role ?? approx.fn, approx)] };
}

/** t = (2x - a - b)/(b - a) for the approximation's Chebyshev step (for ApplyOptions.mapped). */
export function chebyshevMap(approx: Approximation): { alpha: number; beta: number } {
  const step = approx.steps[0];
  if (!step || step.kind !== 'chebyshev') throw new Error('approximation does not start with a Chebyshev step');
  const { a, b } = step.poly;
  return { alpha: 2 / (b - a), beta: -(a + b) / (b - a) };
}
