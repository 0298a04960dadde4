// Causal attention for a prefill of T tokens, all in token blocks of one ciphertext per tensor. q, k, v
// are replicated blocks of N*H values (k and v already GQA-expanded by their projections' weights, so
// query head n meets its KV head in the same channels). For each key offset delta (key t - delta for
// the query in token block t):
//   k_d = rot(k, -delta*stride), scores s_d = within-head sum of q * k_d (valid at each head's first
//   channel), masked (causal, real heads) and scaled by scale / 2^k in one plaintext product;
//   e_d = exp((s_d - s_0) / 2^k): the shift is the query's own score s_0 (always visible), since a row
//   max cannot be taken under encryption; masked slots get a fill inside exp's interval;
//   e_d is masked again and broadcast over the head's channels by rotations;
//   the row (1, e_1, .., e_{T-1}) is normalized by the plan's rounds (softmax-normalize.ts: k
//   normalize-and-square rounds, softmax-plan.ts), giving terms w_d and r = 1/sum w_d;
//   y = r * (w_0 v + sum_{d>0} w_d * rot(v, -delta*stride)).
// Depth: 1 (q k) + 1 (mask) + plan.depth (exp, 1/x rounds) + 1 (mask) + 1.

import { FhecError } from '../../../ir/errors.js';
import type { FheBuilder } from '../../../ir/fhe/builder.js';
import type { FheValue, SlotLayout } from '../../../ir/fhe/types.js';
import { applyApproximation } from '../approximation.js';
import { normalizeRow, type RowTerm, type SoftmaxSite } from './softmax-normalize.js';
import type { SoftmaxPlan } from './softmax-plan.js';
import { slotVector } from './slots.js';

export type AttentionProbeSite = SoftmaxSite;

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
  plan: SoftmaxPlan,
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
    masked.push(b.mulConst(acc, { kind: 'dense', values: vec((u) => (keep(u) ? scale / 2 ** plan.squarings : 0)) }, 'att_mask'));
  }
  const broadcast = (x: FheValue): FheValue => {
    let acc = x;
    for (let sh = 1; sh < H; sh *= 2) acc = b.add(acc, rot(acc, -sh));
    return acc;
  };
  const spread: FheValue[] = [];
  for (let d = 1; d < T; d++) {
    const keep = headStart(d);
    const arg = b.addConst(b.sub(masked[d]!, masked[0]!), { kind: 'dense', values: vec((u) => (keep(u) ? 0 : plan.fill)) }, 'att_fill');
    const e = applyApproximation(b, arg, plan.exp).value;
    sites.push({ role: 'exp', approx: plan.exp, observed: plan.observed.exp, input: arg, output: e, keep });
    const em = b.mulConst(e, { kind: 'dense', values: vec((u) => (keep(u) ? 1 : 0)) }, 'att_keep');
    spread.push(broadcast(em));
  }
  const realMask = { kind: 'dense' as const, values: vec((u) => (real(u) ? 1 : 0)) };
  // T = 1: the only key is the query itself, the weights are exactly 1.
  if (T === 1) return { value: b.mulConst(v, realMask, 'att_real'), sites, rotations };
  // The own-score term is exactly 1 (e^0) in every slot; the others are 0 outside their valid slots.
  const rowSum = (terms: RowTerm[]): FheValue => {
    let sum: FheValue | undefined;
    let ones = 0;
    for (const x of terms) {
      if (x === 1) ones++;
      else sum = sum ? b.add(sum, x) : x;
    }
    return ones ? b.addConst(sum!, { kind: 'splat', value: ones }, 'att_one') : sum!;
  };
  const row = normalizeRow(b, [1, ...spread], rowSum, plan, real);
  sites.push(...row.sites);
  const [w0, ...w] = row.terms;
  let num = w0 === 1 ? b.mulConst(v, realMask, 'att_real') : b.mul(w0 as FheValue, b.mulConst(v, realMask, 'att_real'));
  for (let d = 1; d < T; d++) num = b.add(num, b.mul(w[d - 1] as FheValue, rot(v, -d * s)));
  return { value: b.mul(num, row.reciprocal), sites, rotations };
}
