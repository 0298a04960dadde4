// Causal attention for a prefill of T tokens, all in token blocks of one ciphertext per tensor. q, k, v
// are replicated blocks of N*H values (k and v already GQA-expanded by their projections' weights, so
// query head n meets its KV head in the same channels). For each key offset delta (key t - delta for
// the query in token block t):
//   k_d = rot(k, -delta*stride), scores s_d = within-head sum of q * k_d (valid at each head's first
//   channel), masked (causal, real heads) and scaled in one plaintext product;
//   e_d = exp(s_d - s_0): the shift is the query's own score s_0 (always visible), since a row max
//   cannot be taken under encryption; masked slots get a fill whose exp is ~0 and inside the interval;
//   e_d is masked again and broadcast over the head's channels by rotations;
//   S = 1 + sum_d e_d (the d = 0 term is exactly 1), r = 1/S by the reciprocal approximation;
//   y = r * (v + sum_{d>0} e_d * rot(v, -delta*stride)).
// Depth: 1 (q k) + 1 (mask) + exp + 1 (mask) + reciprocal + 1.

import { FhecError } from '../../../ir/errors.js';
import type { FheBuilder } from '../../../ir/fhe/builder.js';
import type { FheValue, SlotLayout } from '../../../ir/fhe/types.js';
import type { Approximation } from '../../approx/approximation.js';
import { applyApproximation } from '../approximation.js';
import { slotVector } from './slots.js';

export interface AttentionApproximations {
  exp: Approximation;
  reciprocal: Approximation;
  /** Value given to masked scores before exp (exp of it is ~0; it and fill - diag lie in exp's interval). */
  fill: number;
}

export interface AttentionProbeSite {
  role: 'exp' | 'reciprocal';
  input: FheValue;
  output: FheValue;
  keep: (u: number) => boolean;
}

export interface AttentionLowering {
  value: FheValue;
  sites: AttentionProbeSite[];
  rotations: number;
}

export function lowerPrefillAttention(
  b: FheBuilder,
  q: FheValue,
  k: FheValue,
  v: FheValue,
  layout: SlotLayout,
  heads: number,
  scale: number,
  ap: AttentionApproximations,
): AttentionLowering {
  const T = layout.tokens;
  const s = layout.stride;
  const width = layout.length;
  const H = width / heads;
  // Within-head sums and broadcasts rotate by 1, 2, 4, ..: another head size would mix in the next head.
  if (!Number.isInteger(H) || H & (H - 1)) throw new FhecError(`attention: head size ${width}/${heads} must be a power of two`);
  let rotations = 0;
  const rot = (x: FheValue, step: number): FheValue => {
    rotations++;
    return b.rotate(x, step);
  };
  const headStart = (d: number) => (u: number) => {
    const t = Math.floor(u / s);
    const j = (u - t * s) % layout.period;
    return t < T && t >= d && j < width && j % H === 0;
  };
  const real = (u: number) => {
    const t = Math.floor(u / s);
    return t < T && (u - t * s) % layout.period < width;
  };
  const vec = (f: (u: number) => number) => slotVector(b.slots, layout, (_p, u) => f(u));
  const sites: AttentionProbeSite[] = [];
  const masked: FheValue[] = [];
  for (let d = 0; d < T; d++) {
    const kd = d === 0 ? k : rot(k, -d * s);
    let acc = b.mul(q, kd);
    for (let sh = 1; sh < H; sh *= 2) acc = b.add(acc, rot(acc, sh));
    const keep = headStart(d);
    masked.push(b.mulConst(acc, { kind: 'dense', values: vec((u) => (keep(u) ? scale : 0)) }, 'att_mask'));
  }
  const broadcast = (x: FheValue): FheValue => {
    let acc = x;
    for (let sh = 1; sh < H; sh *= 2) acc = b.add(acc, rot(acc, -sh));
    return acc;
  };
  const spread: FheValue[] = [];
  for (let d = 1; d < T; d++) {
    const keep = headStart(d);
    const arg = b.addConst(b.sub(masked[d]!, masked[0]!), { kind: 'dense', values: vec((u) => (keep(u) ? 0 : ap.fill)) }, 'att_fill');
    const e = applyApproximation(b, arg, ap.exp).value;
    sites.push({ role: 'exp', input: arg, output: e, keep });
    const em = b.mulConst(e, { kind: 'dense', values: vec((u) => (keep(u) ? 1 : 0)) }, 'att_keep');
    spread.push(broadcast(em));
  }
  let sum: FheValue | undefined;
  for (const x of spread) sum = sum ? b.add(sum, x) : x;
  const ones = { kind: 'splat' as const, value: 1 };
  // T = 1: the only key is the query itself, the weights are exactly 1.
  if (!sum) return { value: b.mulConst(v, { kind: 'dense', values: vec((u) => (real(u) ? 1 : 0)) }, 'att_real'), sites, rotations };
  const S = b.addConst(sum, ones, 'att_one');
  const r = applyApproximation(b, S, ap.reciprocal).value;
  sites.push({ role: 'reciprocal', input: S, output: r, keep: real });
  let num = b.mulConst(v, { kind: 'dense', values: vec((u) => (real(u) ? 1 : 0)) }, 'att_real');
  for (let d = 1; d < T; d++) num = b.add(num, b.mul(spread[d - 1]!, rot(v, -d * s)));
  return { value: b.mul(num, r), sites, rotations };
}
