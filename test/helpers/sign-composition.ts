// The refresh tests' deep circuit: p(x) = 1.5 x - 0.5 x^3 composed `rounds` times (degree 3^rounds, depth
// 2 per round). p maps [-1, 1] into itself, so one bound |x| <= 1 holds at every refresh point.
import { FheBuilder, type FheProgram, type FheValue } from '../../ir/fhe/index.js';

export function signComposition(rounds: number, slots: number): FheProgram {
  const l = { length: slots, tokens: 1, stride: slots, period: slots, copies: 1 };
  const b = new FheBuilder('sign', slots);
  let x: FheValue = b.input('x', l);
  for (let r = 0; r < rounds; r++) {
    const x2 = b.mul(x, x);
    const x3 = b.mul(b.mulConst(x, { kind: 'splat', value: -0.5 }), x2);
    x = b.add(b.mulConst(x, { kind: 'splat', value: 1.5 }), x3);
  }
  b.output('y', x, l);
  return b.build();
}

/** What `signComposition(rounds)` computes, in float64. */
export function signCompositionOf(x: number, rounds: number): number {
  let y = x;
  for (let r = 0; r < rounds; r++) y = 1.5 * y - 0.5 * y ** 3;
  return y;
}
