// Causal attention for a prefill of T tokens in token groups (activation.ts: group g holds tokens
// [g*B, g*B + B) in B token blocks of one ciphertext per tensor; one group when T fits). q, k, v are
// replicated blocks of N*H values (k and v already GQA-expanded by their projections' weights, so
// query head n meets its KV head in the same channels). For each key offset delta (key t - delta for
// the query t), for the queries of group g:
//   the keys sit in group g - floor(delta/B) (query rows j >= delta mod B) and the group before it
//   (rows j < delta mod B): both rotated by m = delta mod B blocks, rot(k_g', -m*stride);
//   scores s_d = within-head sums of q * each rotated key (valid at each head's first channel),
//   masked to their rows (causal, real heads) and scaled in one plaintext product, then added;
//   e_d = exp(s_d - s_0): the shift is the query's own score s_0 (always visible), since a row max
//   cannot be taken under encryption; masked slots get a fill whose exp is ~0 and inside the interval;
//   e_d is masked again and broadcast over the head's channels by rotations;
//   S = 1 + sum_d e_d (the d = 0 term is exactly 1), r = 1/S by the reciprocal approximation;
//   y = r * (v + sum_{d>0} e_d * rot(v, -delta*stride)), e_d split by rows over the two key groups.
// With one group this is one rotated key per offset: T log2(H) + (T-1)(2 + log2(H)) rotations.
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
  ap: AttentionApproximations,
): AttentionLowering {
  const res = lowerGroupedPrefillAttention(b, [{ q, k, v, layout, tokenStart: 0 }], heads, scale, ap);
  return { value: res.values[0]!, sites: res.sites, rotations: res.rotations };
}

export function lowerGroupedPrefillAttention(
  b: FheBuilder,
  groups: readonly AttentionGroup[],
  heads: number,
  scale: number,
  ap: AttentionApproximations,
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
    const scores: FheValue[] = [];
    for (let d = 0; d < offsets; d++) {
      let sc: FheValue | undefined;
      for (const p of parts(d)) {
        const masked = b.mulConst(whs(b.mul(qt, rotated('k', p.gk, p.m))), { kind: 'dense', values: vec((u) => (p.keep(u) ? scale : 0)) }, 'att_mask');
        sc = sc ? b.add(sc, masked) : masked;
      }
      scores.push(sc!);
    }
    let sum: FheValue | undefined;
    let num = b.mulConst(grp.v, { kind: 'dense', values: vec((u) => (real(u) ? 1 : 0)) }, 'att_real');
    for (let d = 1; d < offsets; d++) {
      const ps = parts(d);
      const keep = (u: number) => ps.some((p) => p.keep(u));
      const arg = b.addConst(b.sub(scores[d]!, scores[0]!), { kind: 'dense', values: vec((u) => (keep(u) ? 0 : ap.fill)) }, 'att_fill');
      const e = applyApproximation(b, arg, ap.exp).value;
      sites.push({ role: 'exp', input: arg, output: e, keep });
      for (const p of ps) {
        const spread = broadcast(b.mulConst(e, { kind: 'dense', values: vec((u) => (p.keep(u) ? 1 : 0)) }, 'att_keep'));
        sum = sum ? b.add(sum, spread) : spread;
        num = b.add(num, b.mul(spread, rotated('v', p.gk, p.m)));
      }
    }
    // One token: the only key is the query itself, the weights are exactly 1.
    if (!sum) {
      values.push(num);
      return;
    }
    const S = b.addConst(sum, { kind: 'splat', value: 1 }, 'att_one');
    const r = applyApproximation(b, S, ap.reciprocal).value;
    sites.push({ role: 'reciprocal', input: S, output: r, keep: real });
    values.push(b.mul(num, r));
  });
  return { values, sites, rotations };
}
