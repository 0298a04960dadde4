// rope: positions are plaintext (the evaluator knows them), so cos/sin are plaintext slot vectors and
// y = x * C + rot(x, +h) * S1 + rot(x, -h) * S2, with h = half the rotary dim (rotate-half) or 1
// (interleaved): S1 holds -sin at the first element of each pair, S2 +sin at the second. The rotations
// stay inside each head (pairs are h apart), so every replica stays correct. Depth 1, 2 rotations.

import { FhecError } from '../../../ir/errors.js';
import type { FheBuilder } from '../../../ir/fhe/builder.js';
import type { FheValue, SlotLayout } from '../../../ir/fhe/types.js';
import { CostMeter, type KernelCost } from './cost.js';
import { checkReplicated, perElement } from './layout.js';

export interface RopeOptions {
  /** Position of each token of the layout (row of the tables). */
  positions: readonly number[];
  /** Tables [rows, rotaryDim/2], row-major. */
  cos: ArrayLike<number>;
  sin: ArrayLike<number>;
  numHeads: number;
  headDim: number;
  /** Default headDim. */
  rotaryDim?: number;
  interleaved?: boolean;
}

export interface RopeResult {
  value: FheValue;
  layout: SlotLayout;
  cost: KernelCost;
  approximations: [];
}

export function lowerRope(b: FheBuilder, x: FheValue, layout: SlotLayout, opts: RopeOptions): RopeResult {
  checkReplicated(layout, b.slots, 'rope');
  const { numHeads: N, headDim: H } = opts;
  const rd = opts.rotaryDim || H;
  if (N * H !== layout.length) throw new FhecError(`rope: ${N} heads of ${H} do not make the layout's ${layout.length} values`);
  if (rd > H || rd % 2 !== 0) throw new FhecError(`rope: rotary_dim ${rd} does not fit head size ${H}`);
  if (opts.positions.length !== layout.tokens) throw new FhecError(`rope: ${opts.positions.length} positions for ${layout.tokens} tokens`);
  const half = rd / 2;
  const rows = opts.cos.length / half;
  if (!Number.isInteger(rows) || opts.sin.length !== opts.cos.length) throw new FhecError(`rope: cos/sin tables must both be [rows, ${half}]`);
  for (const p of opts.positions) {
    if (!(Number.isInteger(p) && p >= 0 && p < rows)) throw new FhecError(`rope: position ${p} is outside the cos/sin table (${rows} rows)`);
  }
  const meter = new CostMeter(b, [x]);
  const step = opts.interleaved ? 1 : half;
  // Channel c of a head: its pair index i and whether it is the first element of the pair.
  const pairOf = (c: number): { i: number; first: boolean } | undefined => {
    if (c >= rd) return undefined;
    return opts.interleaved ? { i: c >> 1, first: c % 2 === 0 } : { i: c % half, first: c < half };
  };
  const table = (t: number, j: number, which: 'cos' | 'sin1' | 'sin2'): number => {
    if (j >= layout.length) return 0;
    const pair = pairOf(j % H);
    if (!pair) return which === 'cos' ? 1 : 0;
    const k = opts.positions[t]! * half + pair.i;
    if (which === 'cos') return opts.cos[k]!;
    if (which === 'sin1') return pair.first ? -opts.sin[k]! : 0;
    return pair.first ? 0 : opts.sin[k]!;
  };
  const vec = (which: 'cos' | 'sin1' | 'sin2') => ({ kind: 'dense' as const, values: perElement(layout, b.slots, (t, j) => table(t, j, which)) });
  const value = b.add(
    b.mulConst(x, vec('cos'), 'rope_cos'),
    b.add(b.mulConst(b.rotate(x, step), vec('sin1'), 'rope_sin'), b.mulConst(b.rotate(x, -step), vec('sin2'), 'rope_sin')),
  );
  return { value, layout, cost: meter.finish([value]), approximations: [] };
}
