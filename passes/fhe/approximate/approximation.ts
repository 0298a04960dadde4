// The bridge from the approximation library to FHE IR: runs an Approximation's steps (passes/approx/
// program.ts) with ciphertext arithmetic. The same `runSteps` program drives the float64 model
// (Approximation.evaluate), the level tracker (Approximation.depth) and this lowering, so the three agree
// operation for operation; the Chebyshev step goes through the baby-step giant-step evaluator.

import type { FheBuilder } from '../../../ir/fhe/builder.js';
import type { FheValue } from '../../../ir/fhe/types.js';
import { foldableInputMap, type Approximation } from '../../approx/approximation.js';
import { runSteps, type Arith } from '../../approx/program.js';
import { evalChebyshev } from './chebyshev.js';

/** A ciphertext, or a plaintext scalar that has not met a ciphertext yet. */
type Term = FheValue | number;

export interface ApplyResult {
  value: FheValue;
}

function fheArith(b: FheBuilder, mappedInput: boolean): Arith<Term> {
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
    // A mapped input already holds t = alpha x + beta (foldableInputMap): the polynomial runs on [-1, 1].
    chebyshev: (p, input) => evalChebyshev(b, input as FheValue, mappedInput ? { coeffs: p.coeffs, a: -1, b: 1 } : { coeffs: p.coeffs, a: p.a, b: p.b }).value,
  };
  return A;
}

/**
 * Evaluates `approx` on ciphertext x, slot by slot (unmanaged: the management pass adds rescales).
 * Consumes exactly approx.depth levels; with `mappedInput`, x already holds the input map's
 * alpha x + beta (foldableInputMap: the caller folded it into its constants) and one level fewer.
 */
export function applyApproximation(b: FheBuilder, x: FheValue, approx: Approximation, opts: { mappedInput?: boolean } = {}): ApplyResult {
  const mapped = opts.mappedInput ?? false;
  if (mapped && !foldableInputMap(approx)) throw new Error(`internal: the input map of ${approx.describe()} cannot be folded`);
  let y = runSteps(approx.steps, fheArith(b, mapped), x as Term);
  // A constant result still has to be a ciphertext.
  if (typeof y === 'number') y = b.addConst(b.mulConst(x, { kind: 'splat', value: 0 }, 'zero'), { kind: 'splat', value: y }, 'approx_c');
  return { value: y };
}
