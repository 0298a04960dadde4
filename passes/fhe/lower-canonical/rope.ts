// rope on one replicated block: y = x * C + rot(x, +h) * A + rot(x, -h) * B with plaintext tables per
// token block (the token's position), h = rotary_dim/2 (rotate-half) or 1 (interleaved). Pairs never
// leave their head, so no rotation crosses a period and every copy stays right. One level, 2 rotations.
// The block may hold GQA-expanded heads (each KV head repeated): the tables depend only on the channel
// within a head, so the same formula applies.

import { FhecError } from '../../../ir/errors.js';
import type { FheBuilder } from '../../../ir/fhe/builder.js';
import type { FheValue, SlotLayout } from '../../../ir/fhe/types.js';
import type { Tensor } from '../../../ir/tensor.js';
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

export function lowerRopeBlock(b: FheBuilder, x: FheValue, layout: SlotLayout, p: RopeParams): FheValue {
  const { headSize: H, rotaryDim: rd, interleaved } = p;
  const half = rd / 2;
  const width = p.cos.dims[1]!;
  if (width < half) throw new FhecError(`rope table has ${width} columns, rotary_dim ${rd} needs ${half}`);
  const table = (t: Tensor, pos: number, i: number): number => {
    if (pos < 0 || pos >= t.dims[0]!) throw new FhecError(`rope position ${pos} is outside the table (${t.dims[0]} rows)`);
    return t.data[pos * width + i]!;
  };
  const C = slotVector(b.slots, layout, (s) => {
    if (!isReal(layout, s)) return 0;
    const c = s.j % H;
    if (c >= rd) return 1;
    const i = interleaved ? c >> 1 : c % half;
    return table(p.cos, p.positions[s.t]!, i);
  });
  const A = slotVector(b.slots, layout, (s) => {
    if (!isReal(layout, s)) return 0;
    const c = s.j % H;
    if (c >= rd) return 0;
    if (interleaved) return c % 2 === 0 ? -table(p.sin, p.positions[s.t]!, c >> 1) : 0;
    return c < half ? -table(p.sin, p.positions[s.t]!, c) : 0;
  });
  const B = slotVector(b.slots, layout, (s) => {
    if (!isReal(layout, s)) return 0;
    const c = s.j % H;
    if (c >= rd) return 0;
    if (interleaved) return c % 2 === 1 ? table(p.sin, p.positions[s.t]!, c >> 1) : 0;
    return c >= half ? table(p.sin, p.positions[s.t]!, c - half) : 0;
  });
  const step = interleaved ? 1 : half;
  const y = b.mulConst(x, { kind: 'dense', values: C }, 'rope_cos');
  const up = b.mulConst(b.rotate(x, step), { kind: 'dense', values: A }, 'rope_sin');
  const down = b.mulConst(b.rotate(x, -step), { kind: 'dense', values: B }, 'rope_sin');
  return b.add(b.add(y, up), down);
}
