// rope on one replicated block: y = x * C + rot(x, +h) * A + rot(x, -h) * B with plaintext tables per
// token block (the token's position), h = rotary_dim/2 (rotate-half) or 1 (interleaved). Pairs never
// leave their head, so no rotation crosses a period and every copy stays right. One level, 2 rotations.
// The block may hold GQA-expanded heads (each KV head repeated): the tables depend only on the channel
// within a head, so the same formula applies.

import { FhecError } from '../../../ir/errors.js';
import type { FheBuilder } from '../../../ir/fhe/builder.js';
import type { FheValue, SlotLayout } from '../../../ir/fhe/types.js';
import type { Tensor } from '../../../ir/tensor.js';
import type { PastConstants } from './past-constants.js';
import { isReal, slotVector } from './slots.js';

export interface RopeParams {
  headSize: number;
  rotaryDim: number;
  interleaved: boolean;
  /** Position of each token (prefill: 0..S-1; decode: P). */
  positions: ArrayLike<number>;
  cos: Tensor;
  sin: Tensor;
}

/**
 * `past`: a decode step's positions follow the past length (position P + i of token i): the tables are
 * registered as past-dependent constants (past-constants.ts), `p.positions` being their values at its past.
 */
export function lowerRopeBlock(b: FheBuilder, x: FheValue, layout: SlotLayout, p: RopeParams, past?: PastConstants): FheValue {
  const { headSize: H, rotaryDim: rd, interleaved } = p;
  const half = rd / 2;
  const width = p.cos.dims[1]!;
  if (width < half) throw new FhecError(`rope table has ${width} columns, rotary_dim ${rd} needs ${half}`);
  const table = (t: Tensor, pos: number, i: number): number => {
    if (pos < 0 || pos >= t.dims[0]!) throw new FhecError(`rope position ${pos} is outside the table (${t.dims[0]} rows)`);
    return t.data[pos * width + i]!;
  };
  const tables = (positions: ArrayLike<number>) => {
    const C = slotVector(b.slots, layout, (s) => {
      if (!isReal(layout, s)) return 0;
      const c = s.j % H;
      if (c >= rd) return 1;
      const i = interleaved ? c >> 1 : c % half;
      return table(p.cos, positions[s.t]!, i);
    });
    const A = slotVector(b.slots, layout, (s) => {
      if (!isReal(layout, s)) return 0;
      const c = s.j % H;
      if (c >= rd) return 0;
      if (interleaved) return c % 2 === 0 ? -table(p.sin, positions[s.t]!, c >> 1) : 0;
      return c < half ? -table(p.sin, positions[s.t]!, c) : 0;
    });
    const B = slotVector(b.slots, layout, (s) => {
      if (!isReal(layout, s)) return 0;
      const c = s.j % H;
      if (c >= rd) return 0;
      if (interleaved) return c % 2 === 1 ? table(p.sin, positions[s.t]!, c >> 1) : 0;
      return c >= half ? table(p.sin, positions[s.t]!, c - half) : 0;
    });
    return { C, A, B };
  };
  const step = interleaved ? 1 : half;
  let here: ReturnType<typeof tables> | undefined;
  const at = (Q: number) => (past && Q !== past.past ? tables(Array.from(p.positions, (pos) => pos - past.past + Q)) : (here ??= tables(p.positions)));
  const mul = (v: FheValue, pick: (t: ReturnType<typeof tables>) => Float64Array, hint: string): FheValue => {
    if (!past) return b.mulConst(v, { kind: 'dense', values: pick(at(0)) }, hint);
    return past.mul(b, v, (Q) => ({ kind: 'dense', values: pick(at(Q)) }), hint);
  };
  const y = mul(x, (t) => t.C, 'rope_cos');
  const up = mul(b.rotate(x, step), (t) => t.A, 'rope_sin');
  const down = mul(b.rotate(x, -step), (t) => t.B, 'rope_sin');
  return b.add(b.add(y, up), down);
}
