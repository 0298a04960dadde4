// Attention for one new token after P cached ones, with the KV cache ENCRYPTED. The cache holds
// P + 1 token blocks (stride = slots / nextPow2(P + 1)) of GQA-expanded keys/values; the past comes
// from the client (blocks 0..P-1) and the new key/value (a one-token, fully replicated ciphertext)
// is masked into block P. q is replicated over all slots, so it is present in every block:
//   s = within-head sums of q * K (valid at head starts of each block); the new token's own score is
//   broadcast to every block (mask + rotate-and-sum over blocks) and subtracted (the row shift);
//   e = exp(s - s_new), masked; S = sum over blocks (rotate-and-sum), broadcast over the head;
//   y = (sum over blocks of e * V) / S: every block ends up holding the result, which is exactly the
//   one-token replicated layout. present_key/value are the updated cache ciphertexts.
// Depth: 1 (q K) + 1 (mask) + exp + 1 (mask) + reciprocal + 1 (and 1 for masking the new K/V in).

import { FhecError } from '../../../ir/errors.js';
import type { FheBuilder } from '../../../ir/fhe/builder.js';
import type { FheValue, SlotLayout } from '../../../ir/fhe/types.js';
import { applyApproximation } from '../approximation.js';
import { nextPow2, rotateAndSum } from '../packing.js';
import type { AttentionProbeSite } from './attention.js';
import { normalizeRow, type RowTerm } from './softmax-normalize.js';
import type { SoftmaxPlan } from './softmax-plan.js';

export interface DecodeAttentionLowering {
  value: FheValue;
  presentKey: FheValue;
  presentValue: FheValue;
  sites: AttentionProbeSite[];
  rotations: number;
}

/** Layout of a cache of `tokens` token blocks of `width` (expanded) channels, for `blocks` blocks. */
export function cacheLayout(width: number, slots: number, tokens: number, blocks: number): SlotLayout {
  const stride = slots / nextPow2(blocks);
  const period = nextPow2(width);
  return { length: width, tokens, stride, period, copies: stride / period };
}

export function lowerDecodeAttention(
  b: FheBuilder,
  q: FheValue,
  kNew: FheValue,
  vNew: FheValue,
  pastK: FheValue,
  pastV: FheValue,
  cache: SlotLayout,
  heads: number,
  scale: number,
  plan: SoftmaxPlan,
): DecodeAttentionLowering {
  const P = cache.tokens - 1;
  const s = cache.stride;
  const width = cache.length;
  const H = width / heads;
  // Within-head sums and broadcasts rotate by 1, 2, 4, ..: another head size would mix in the next head.
  if (!Number.isInteger(H) || H & (H - 1)) throw new FhecError(`attention: head size ${width}/${heads} must be a power of two`);
  const blocks = b.slots / s;
  let rotations = 0;
  const count = (n: number) => (rotations += n);
  const vec = (f: (t: number, j: number) => number) => {
    const v = new Float64Array(b.slots);
    for (let u = 0; u < b.slots; u++) {
      const t = Math.floor(u / s);
      v[u] = f(t, (u - t * s) % cache.period);
    }
    return v;
  };
  const dense = (f: (t: number, j: number) => number) => ({ kind: 'dense' as const, values: vec(f) });
  const inNew = (t: number, j: number) => (t === P && j < width ? 1 : 0);
  const K = b.add(pastK, b.mulConst(kNew, dense(inNew), 'kv_new'));
  const V = b.add(pastV, b.mulConst(vNew, dense(inNew), 'kv_new'));
  const headStart = (t: number, j: number) => t <= P && j < width && j % H === 0;
  let sc = b.mul(q, K);
  for (let sh = 1; sh < H; sh *= 2) {
    sc = b.add(sc, b.rotate(sc, sh));
    count(1);
  }
  const sk = scale / 2 ** plan.squarings;
  const sm = b.mulConst(sc, dense((t, j) => (headStart(t, j) ? sk : 0)), 'att_mask');
  const own = b.mulConst(sc, dense((t, j) => (t === P && headStart(t, j) ? sk : 0)), 'att_own');
  const hc = { rotations: 0, galoisSteps: [] as number[] };
  const ownAll = rotateAndSum(b, own, blocks, s, hc);
  const arg = b.addConst(b.sub(sm, ownAll), dense((t, j) => (headStart(t, j) ? 0 : plan.fill)), 'att_fill');
  const e = applyApproximation(b, arg, plan.exp).value;
  const keep = (u: number) => {
    const t = Math.floor(u / s);
    return headStart(t, (u - t * s) % cache.period);
  };
  const em = b.mulConst(e, dense((t, j) => (headStart(t, j) ? 1 : 0)), 'att_keep');
  let bc = em;
  for (let sh = 1; sh < H; sh *= 2) {
    bc = b.add(bc, b.rotate(bc, -sh));
    count(1);
  }
  // Slots outside the head channels hold no row: their sum gets 1, inside every 1/x interval.
  const outside = dense((_t, j) => (j < width ? 0 : 1));
  const rowSum = (terms: RowTerm[]): FheValue => b.addConst(rotateAndSum(b, terms[0] as FheValue, blocks, s, hc), outside, 'att_pad');
  const inRow = (u: number) => (u - Math.floor(u / s) * s) % cache.period < width;
  const row = normalizeRow(b, [bc], rowSum, plan, inRow);
  const num = rotateAndSum(b, b.mul(row.terms[0] as FheValue, V), blocks, s, hc);
  count(hc.rotations);
  return {
    value: b.mul(num, row.reciprocal),
    presentKey: K,
    presentValue: V,
    sites: [{ role: 'exp', approx: plan.exp, observed: plan.observed.exp, input: arg, output: e, keep }, ...row.sites],
    rotations,
  };
}
