// rms_norm on one replicated block: y = x / sqrt(mean(x^2) + eps) (* gamma).
// - sum of squares by rotate-and-sum over one period; forward sums are right in every copy but the
//   last of a token block (they would read the next token), backward sums in every copy but the first:
//   one masked combination (1 level) gives the sum in every slot, and empty token blocks get a fill
//   inside the interval so the polynomial never sees an out-of-range value;
// - 1/sqrt(sum + d*eps) by the approximation fitted on d x the calibrated norm_arg interval, and the
//   missing sqrt(d) goes into the plaintext factor of x (off the critical path); when that factor is
//   the same in every slot (a folded gain, every slot real and kept: one token in the whole
//   ciphertext), it goes into the polynomial's coefficients instead, and x meets 1/sqrt unscaled: the
//   norm's output is then one level higher (the factor's product and the level alignment of 1/sqrt go).
// Depth: 1 (square) + 1 (mask; none for one token in the whole ciphertext) + approximation + 1 (product).

import { FhecError } from '../../../ir/errors.js';
import type { FheBuilder } from '../../../ir/fhe/builder.js';
import type { FheValue, SlotLayout } from '../../../ir/fhe/types.js';
import { scaledApproximation, type Approximation } from '../../approx/approximation.js';
import { applyApproximation } from '../approximate/approximation.js';
import { isReal, slotVector } from './slots.js';

export interface RmsNormLowering {
  value: FheValue;
  /** The approximation's input and output, and the slots that hold real data. */
  arg: FheValue;
  inv: FheValue;
  /** inv holds this constant times the approximation's value (1: the approximation itself). */
  invScale: number;
  realSlots: (u: number) => boolean;
  rotations: number;
}

export function lowerRmsNormBlock(
  b: FheBuilder,
  x: FheValue,
  layout: SlotLayout,
  epsilon: number,
  gamma: ArrayLike<number> | undefined,
  invsqrt: Approximation,
  /** Tokens of the block whose result is kept (default all): the others' gain is 0, so they come out 0 at no cost. */
  keepToken: (t: number) => boolean = () => true,
): RmsNormLowering {
  const { period: P, copies: C, length: d } = layout;
  // A layout limit of this ring degree (too many tokens for its slots), not a bug: the parameter
  // search skips ring degrees that cannot hold the model this way.
  if (C < 2) throw new FhecError(`rms_norm needs at least 2 copies of the features per token block; ${layout.tokens} tokens of ${layout.length} features leave ${C} in ${layout.stride * layout.tokens} slots (use a larger ring degree or fewer tokens)`);
  const sq = b.mul(x, x);
  // One token in the whole ciphertext: rotations wrap within the token, so the forward sums are right
  // in every copy and need neither the backward sums nor the mask (6 rotations and a level fewer at d=64).
  const cyclic = layout.tokens === 1 && layout.stride === b.slots;
  let fwd = sq;
  let bwd = sq;
  let rotations = 0;
  for (let sh = 1; sh < P; sh *= 2) {
    fwd = b.add(fwd, b.rotate(fwd, sh));
    rotations++;
    if (cyclic) continue;
    bwd = b.add(bwd, b.rotate(bwd, -sh));
    rotations++;
  }
  let arg: FheValue;
  if (cyclic) arg = b.addConst(fwd, { kind: 'splat', value: d * epsilon }, 'rms_eps');
  else {
    const inToken = (t: number) => t < layout.tokens;
    const mF = slotVector(b.slots, layout, (p) => (inToken(p.t) && p.copy < C - 1 ? 1 : 0));
    const mB = slotVector(b.slots, layout, (p) => (inToken(p.t) && p.copy === C - 1 ? 1 : 0));
    const [a0, a1] = invsqrt.interval;
    const fill = slotVector(b.slots, layout, (p) => (inToken(p.t) ? d * epsilon : (a0 + a1) / 2));
    const sum = b.add(b.mulConst(fwd, { kind: 'dense', values: mF }, 'rms_fwd'), b.mulConst(bwd, { kind: 'dense', values: mB }, 'rms_bwd'));
    arg = b.addConst(sum, { kind: 'dense', values: fill }, 'rms_eps');
  }
  const g = slotVector(b.slots, layout, (p) => (isReal(layout, p) && keepToken(p.t) ? Math.sqrt(d) * (gamma ? gamma[p.j]! : 1) : 0));
  const realSlots = (u: number) => Math.floor(u / layout.stride) < layout.tokens;
  const folded = g.every((v) => v === g[0]) ? scaledApproximation(invsqrt, g[0]!) : undefined;
  if (folded) {
    const inv = applyApproximation(b, arg, folded).value;
    return { value: b.mul(x, inv), arg, inv, invScale: g[0]!, realSlots, rotations };
  }
  const inv = applyApproximation(b, arg, invsqrt).value;
  const xs = b.mulConst(x, { kind: 'dense', values: g }, 'rms_gain');
  const value = b.mul(xs, inv);
  return { value, arg, inv, invScale: 1, realSlots, rotations };
}
