// Causal attention for a prefill of T tokens in token groups (activation.ts: group g holds tokens
// [g*B, g*B + B) in B token blocks of one ciphertext per tensor; one group when T fits). q, k, v are
// replicated blocks of N*H values (k and v already GQA-expanded by their projections' weights, so
// query head n meets its KV head in the same channels). For each key offset delta (key t - delta for
// the query t), for the queries of group g:
//   the keys sit in group g - floor(delta/B) (query rows j >= delta mod B) and the group before it
//   (rows j < delta mod B): both rotated by m = delta mod B blocks, rot(k_g', -m*stride);
//   scores s_d = within-head sums of q * each rotated key (valid at each head's first channel),
//   masked to their rows (causal, real heads) and scaled by scale / 2^k in one plaintext product
//   (times exp's map onto [-1, 1], whose shift goes into the fill: the map costs no level);
//   e_d = exp((s_d - s_0) / 2^k): the shift is the query's own score s_0 (always visible), since a row
//   max cannot be taken under encryption; masked slots get a fill inside exp's interval;
//   e_d is split by rows over its key parts, each masked and broadcast over the head's channels;
//   the row (1, e_1 parts, ..) is normalized by the plan's rounds (softmax-normalize.ts: k
//   normalize-and-square rounds, softmax-plan.ts); the parts of one offset cover disjoint rows, so
//   squaring them one by one squares the offset's term; this gives terms w and r = 1/sum w;
//   y = r * (w_0 v + sum over parts w_p * rot(v_g', -m*stride)).
// With one group this is one rotated key per offset: T log2(H) + (T-1)(2 + log2(H)) rotations.
// Depth: 1 (q k) + 1 (mask) + plan.depth (exp, 1/x rounds; less exp's map, folded) + 1 (mask) + 1.

import { FhecError } from '../../../ir/errors.js';
import type { FheBuilder } from '../../../ir/fhe/builder.js';
import type { FheValue, SlotLayout } from '../../../ir/fhe/types.js';
import { foldableInputMap } from '../../approx/approximation.js';
import { applyApproximation } from '../approximate/approximation.js';
import { normalizeRow, type RowTerm, type SoftmaxSite } from './softmax-normalize.js';
import type { SoftmaxPlan } from './softmax-plan.js';
import { slotVector } from './slots.js';

export type AttentionProbeSite = SoftmaxSite;

export interface AttentionLowering {
  value: FheValue;
  sites: AttentionProbeSite[];
  rotations: number;
}

/** One token group of q, k, v (same layout; `tokenStart` = group index * blocks per ciphertext). */
export interface AttentionGroup {
  q: FheValue;
  k: FheValue;
  v: FheValue;
  layout: SlotLayout;
  tokenStart: number;
}

export interface GroupedAttentionLowering {
  /** The output of each group, in the given order. */
  values: FheValue[];
  sites: AttentionProbeSite[];
  rotations: number;
}

/** Prefill attention over one ciphertext per tensor (one token group). */
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
  const res = lowerGroupedPrefillAttention(b, [{ q, k, v, layout, tokenStart: 0 }], heads, scale, plan);
  return { value: res.values[0]!, sites: res.sites, rotations: res.rotations };
}

export function lowerGroupedPrefillAttention(
  b: FheBuilder,
  groups: readonly AttentionGroup[],
  heads: number,
  scale: number,
  plan: SoftmaxPlan,
): GroupedAttentionLowering {
  const { stride: s, period, length: width } = groups[0]!.layout;
  const B = b.slots / s;
  const H = width / heads;
  // Within-head sums and broadcasts rotate by 1, 2, 4, ..: another head size would mix in the next head.
  if (!Number.isInteger(H) || H & (H - 1)) throw new FhecError(`attention: head size ${width}/${heads} must be a power of two`);
  groups.forEach((g, i) => {
    if (g.layout.stride !== s || g.layout.length !== width || g.tokenStart !== i * B || (i < groups.length - 1 && g.layout.tokens !== B)) {
      throw new Error('internal: attention token groups must be full groups of one stride, in order');
    }
  });
  let rotations = 0;
  const rot = (x: FheValue, step: number): FheValue => {
    rotations++;
    return b.rotate(x, step);
  };
  const rotK = new Map<string, FheValue>();
  const rotated = (which: 'k' | 'v', g: number, m: number): FheValue => {
    const key = `${which}${g}:${m}`;
    let r = rotK.get(key);
    if (!r) {
      const x = groups[g]![which];
      r = m === 0 ? x : rot(x, -m * s);
      rotK.set(key, r);
    }
    return r;
  };
  const vec = (f: (u: number) => number) => slotVector(b.slots, groups[0]!.layout, (_p, u) => f(u));
  const sites: AttentionProbeSite[] = [];
  const values: FheValue[] = [];
  groups.forEach((grp, gq) => {
    const T = grp.layout.tokens;
    const qt = grp.q;
    /** Head-start slots of query rows in [lo, hi). */
    const heads0 = (lo: number, hi: number) => (u: number) => {
      const t = Math.floor(u / s);
      const j = (u - t * s) % period;
      return t < T && t >= lo && t < hi && j < width && j % H === 0;
    };
    const real = (u: number) => {
      const t = Math.floor(u / s);
      return t < T && (u - t * s) % period < width;
    };
    /** The key parts of offset d: key group, rotation, and the query rows they serve. */
    const parts = (d: number) => {
      const m = d % B;
      const gk = gq - Math.floor(d / B);
      const out: { gk: number; m: number; keep: (u: number) => boolean }[] = [];
      if (gk >= 0) out.push({ gk, m, keep: heads0(m, T) });
      if (gk - 1 >= 0 && m > 0) out.push({ gk: gk - 1, m, keep: heads0(0, m) });
      return out;
    };
    const offsets = grp.tokenStart + T;
    const whs = (x: FheValue) => {
      let acc = x;
      for (let sh = 1; sh < H; sh *= 2) acc = b.add(acc, rot(acc, sh));
      return acc;
    };
    const broadcast = (x: FheValue): FheValue => {
      let acc = x;
      for (let sh = 1; sh < H; sh *= 2) acc = b.add(acc, rot(acc, -sh));
      return acc;
    };
    // exp's map onto [-1, 1] (t = alpha x + beta) goes into the score masks and the fill: a level fewer.
    const map = foldableInputMap(plan.exp);
    const alpha = map?.alpha ?? 1;
    const beta = map?.beta ?? 0;
    const sk = (alpha * scale) / 2 ** plan.squarings;
    const scores: FheValue[] = [];
    for (let d = 0; d < offsets; d++) {
      let sc: FheValue | undefined;
      for (const p of parts(d)) {
        const masked = b.mulConst(whs(b.mul(qt, rotated('k', p.gk, p.m))), { kind: 'dense', values: vec((u) => (p.keep(u) ? sk : 0)) }, 'att_mask');
        sc = sc ? b.add(sc, masked) : masked;
      }
      scores.push(sc!);
    }
    const realMask = { kind: 'dense' as const, values: vec((u) => (real(u) ? 1 : 0)) };
    // One term per (offset, key part): parts of one offset cover disjoint query rows.
    const spread: FheValue[] = [];
    const values_: FheValue[] = [];
    for (let d = 1; d < offsets; d++) {
      const ps = parts(d);
      const keep = (u: number) => ps.some((p) => p.keep(u));
      const arg = b.addConst(b.sub(scores[d]!, scores[0]!), { kind: 'dense', values: vec((u) => (keep(u) ? beta : alpha * plan.fill + beta)) }, 'att_fill');
      const e = applyApproximation(b, arg, plan.exp, { mappedInput: map !== undefined }).value;
      sites.push({ role: 'exp', approx: plan.exp, observed: plan.observed.exp, input: arg, output: e, keep, ...(map ? { inputMap: map } : {}) });
      for (const p of ps) {
        spread.push(broadcast(b.mulConst(e, { kind: 'dense', values: vec((u) => (p.keep(u) ? 1 : 0)) }, 'att_keep')));
        values_.push(rotated('v', p.gk, p.m));
      }
    }
    // One token: the only key is the query itself, the weights are exactly 1.
    if (spread.length === 0) {
      values.push(b.mulConst(grp.v, realMask, 'att_real'));
      return;
    }
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
    const vReal = b.mulConst(grp.v, realMask, 'att_real');
    let num = w0 === 1 ? vReal : b.mul(w0 as FheValue, vReal);
    w.forEach((wi, i) => {
      num = b.add(num, b.mul(wi as FheValue, values_[i]!));
    });
    values.push(b.mul(num, row.reciprocal));
  });
  return { values, sites, rotations };
}
