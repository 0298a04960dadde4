// Attention for one new token after P cached ones, with the KV cache ENCRYPTED. The cache holds
// P + 1 token blocks of GQA-expanded keys/values (heads padded), in one ciphertext (stride = slots /
// nextPow2(P + 1)) or, when the blocks would be narrower than a row's period, in groups of B =
// slots / period blocks per ciphertext (cacheGroups); the past comes from the client and the new
// key/value (a one-token, fully replicated ciphertext) is masked into block P. q is replicated over
// all slots, so it is present in every block of every group (sums over groups are additions):
//   s = within-head sums of q * K (valid at head starts of each block); the new token's own score is
//   broadcast to every block (mask + rotate-and-sum over blocks) and subtracted (the row shift);
//   e = exp((s - s_new) / 2^k) (exp's map onto [-1, 1] folded into the score masks and the fill),
//   masked and broadcast over the head; the row (one term per cache
//   group) is normalized by the softmax plan's rounds (softmax-normalize.ts), each row sum a
//   rotate-and-sum over blocks; y = (sum over blocks of w * V) * r: every block ends up holding the
//   result, which is exactly the one-token replicated layout. present_key/value are the updated cache
//   ciphertexts.
// Depth: 1 (q K) + 1 (mask) + plan.depth (exp, 1/x rounds; less exp's map, folded) + 1 (mask) + 1 (and 1 for masking the new K/V in).

import { FhecError } from '../../../ir/errors.js';
import type { FheBuilder } from '../../../ir/fhe/builder.js';
import type { FheValue, SlotLayout } from '../../../ir/fhe/types.js';
import { foldableInputMap } from '../../approx/approximation.js';
import { applyApproximation } from '../approximate/approximation.js';
import { nextPow2, rotateAndSum } from '../layout/packing.js';
import type { AttentionProbeSite } from './attention.js';
import { PastConstants, type PastConstant } from './past-constants.js';
import { normalizeRow, type RowTerm } from './softmax-normalize.js';
import type { SoftmaxPlan } from './softmax-plan.js';

export interface DecodeAttentionLowering {
  value: FheValue;
  presentKey: FheValue;
  presentValue: FheValue;
  sites: AttentionProbeSite[];
  rotations: number;
}

/** How a cache of P + 1 tokens sits in ciphertexts: B blocks of `stride` slots each, groups of B tokens. */
export interface CacheGroups {
  stride: number;
  blocks: number;
  /** Per group: first token, past tokens (from the client), and tokens with the new one. */
  groups: { tokenStart: number; past: number; present: number }[];
}

/** One ciphertext when P + 1 blocks of the row's period fit; else groups of slots / period blocks. */
export function cacheGroups(width: number, slots: number, past: number): CacheGroups {
  const period = nextPow2(width);
  if (period > slots) throw new FhecError(`a KV-cache row of ${width} channels does not fit ${slots} slots (use a larger --ring-degree)`);
  const blocks = Math.min(nextPow2(past + 1), slots / period);
  const groups: CacheGroups['groups'] = [];
  for (let t = 0; t <= past; t += blocks) groups.push({ tokenStart: t, past: Math.max(0, Math.min(blocks, past - t)), present: Math.min(blocks, past + 1 - t) });
  return { stride: slots / blocks, blocks, groups };
}

/** Layout of one cache group: `tokens` token blocks of `width` channels in blocks of `stride` slots. */
export function cacheGroupLayout(width: number, tokens: number, stride: number): SlotLayout {
  const period = nextPow2(width);
  return { length: width, tokens, stride, period, copies: stride / period };
}

/** Layout of a cache of `tokens` token blocks of `width` (expanded) channels, for `blocks` blocks. */
export function cacheLayout(width: number, slots: number, tokens: number, blocks: number): SlotLayout {
  const stride = slots / nextPow2(blocks);
  const period = nextPow2(width);
  if (stride < period) {
    throw new FhecError(
      `the KV cache of ${blocks} token(s) of ${width} channels (GQA-expanded, heads padded) needs ${nextPow2(blocks)} x ${period} = ${nextPow2(blocks) * period} slots in one ciphertext, the ring has ${slots} (use a smaller --max-context / --decode or a larger --ring-degree)`,
    );
  }
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
  const res = lowerGroupedDecodeAttention(b, q, kNew, vNew, [{ k: pastK, v: pastV }], cache.tokens - 1, cache.stride, cache.length, heads, scale, plan);
  return { value: res.value, presentKey: res.presentKeys[0]!, presentValue: res.presentValues[0]!, sites: res.sites, rotations: res.rotations };
}

export interface GroupedDecodeAttentionLowering {
  value: FheValue;
  /** Per cache group (groups of `slots / stride` tokens, in order). */
  presentKeys: FheValue[];
  presentValues: FheValue[];
  sites: AttentionProbeSite[];
  rotations: number;
}

/**
 * Decode attention over a cache in groups of B = slots / stride token blocks: `past[g]` holds the
 * past tokens [g*B, g*B + B) (absent for a group that only the new token starts).
 */
export function lowerGroupedDecodeAttention(
  b: FheBuilder,
  q: FheValue,
  kNew: FheValue,
  vNew: FheValue,
  past: readonly { k?: FheValue; v?: FheValue }[],
  P: number,
  s: number,
  width: number,
  heads: number,
  scale: number,
  plan: SoftmaxPlan,
  pastConstants: PastConstants = new PastConstants(P),
): GroupedDecodeAttentionLowering {
  const H = width / heads;
  // Within-head sums and broadcasts rotate by 1, 2, 4, ..: another head size would mix in the next head.
  if (!Number.isInteger(H) || H & (H - 1)) throw new FhecError(`attention: head size ${width}/${heads} must be a power of two`);
  const period = nextPow2(width);
  const blocks = b.slots / s;
  const gNew = Math.floor(P / blocks);
  if (past.length !== gNew + 1) throw new Error(`internal: ${past.length} cache groups for past ${P} in groups of ${blocks}`);
  let rotations = 0;
  const count = (n: number) => (rotations += n);
  const vec = (f: (t: number, j: number) => number) => {
    const v = new Float64Array(b.slots);
    for (let u = 0; u < b.slots; u++) {
      const t = Math.floor(u / s);
      v[u] = f(t, (u - t * s) % period);
    }
    return v;
  };
  const dense = (f: (t: number, j: number) => number) => ({ kind: 'dense' as const, values: vec(f) });
  // The masks that depend on the past (the new token's block, the blocks that hold a token) are rules
  // of the past Q: a plan for the longest past of a bucket recomputes them for every shorter past whose
  // new token falls in the same group (past-constants.ts). Blocks past Q are masked like empty blocks.
  if (pastConstants.past !== P) throw new Error(`internal: past constants for ${pastConstants.past}, lowering past ${P}`);
  const atPast = (f: (Q: number) => (t: number, j: number) => number): PastConstant => (Q) => {
    if (Math.floor(Q / blocks) !== gNew) throw new Error(`internal: past ${Q} puts the new token in another cache group than past ${P}`);
    return dense(f(Q));
  };
  const newBlock = (Q: number) => Q - gNew * blocks;
  const inNew = (Q: number) => (t: number, j: number) => (t === newBlock(Q) && j < width ? 1 : 0);
  const put = (x: FheValue | undefined, nu: FheValue) => {
    const m = pastConstants.mul(b, nu, atPast(inNew), 'kv_new');
    return x ? b.add(x, m) : m;
  };
  const Ks = past.map((p, g) => (g === gNew ? put(p.k, kNew) : p.k!));
  const Vs = past.map((p, g) => (g === gNew ? put(p.v, vNew) : p.v!));
  /** Head starts of the blocks of group g that hold a token, at past Q. */
  const headStartAt = (g: number, Q: number) => (t: number, j: number) => t < Math.min(blocks, Q + 1 - g * blocks) && j < width && j % H === 0;
  const headStart = (g: number) => headStartAt(g, P);
  const hc = { rotations: 0, galoisSteps: [] as number[] };
  const whs = (x: FheValue, sign: number) => {
    let acc = x;
    for (let sh = 1; sh < H; sh *= 2) {
      acc = b.add(acc, b.rotate(acc, sign * sh));
      count(1);
    }
    return acc;
  };
  // exp's map onto [-1, 1] (t = alpha x + beta) goes into the score masks and the fill: a level fewer.
  const map = foldableInputMap(plan.exp);
  const alpha = map?.alpha ?? 1;
  const beta = map?.beta ?? 0;
  const sk = (alpha * scale) / 2 ** plan.squarings;
  const scores = Ks.map((K) => whs(b.mul(q, K), 1));
  const sm = scores.map((sc, g) => pastConstants.mul(b, sc, atPast((Q) => (t, j) => (headStartAt(g, Q)(t, j) ? sk : 0)), 'att_mask'));
  const own = pastConstants.mul(b, scores[gNew]!, atPast((Q) => (t, j) => (t === newBlock(Q) && headStartAt(gNew, Q)(t, j) ? sk : 0)), 'att_own');
  const ownAll = rotateAndSum(b, own, blocks, s, hc);
  const sites: AttentionProbeSite[] = [];
  const spread = sm.map((x, g) => {
    const hs = headStart(g);
    const arg = pastConstants.add(b, b.sub(x, ownAll), atPast((Q) => (t, j) => (headStartAt(g, Q)(t, j) ? beta : alpha * plan.fill + beta)), 'att_fill');
    const e = applyApproximation(b, arg, plan.exp, { mappedInput: map !== undefined }).value;
    const keep = (u: number) => {
      const t = Math.floor(u / s);
      return hs(t, (u - t * s) % period);
    };
    sites.push({ role: 'exp', approx: plan.exp, observed: plan.observed.exp, input: arg, output: e, keep, ...(map ? { inputMap: map } : {}) });
    return whs(pastConstants.mul(b, e, atPast((Q) => (t, j) => (headStartAt(g, Q)(t, j) ? 1 : 0)), 'att_keep'), -1);
  });
  // Slots outside the head channels hold no row: their sum gets 1, inside every 1/x interval.
  const outside = dense((_t, j) => (j < width ? 0 : 1));
  const rowSum = (terms: RowTerm[]): FheValue => {
    let sum = terms[0] as FheValue;
    for (const x of terms.slice(1)) sum = b.add(sum, x as FheValue);
    return b.addConst(rotateAndSum(b, sum, blocks, s, hc), outside, 'att_pad');
  };
  const inRow = (u: number) => (u - Math.floor(u / s) * s) % period < width;
  const row = normalizeRow(b, spread, rowSum, plan, inRow);
  sites.push(...row.sites);
  let weighted: FheValue | undefined;
  row.terms.forEach((w, g) => {
    const wv = b.mul(w as FheValue, Vs[g]!);
    weighted = weighted ? b.add(weighted, wv) : wv;
  });
  const num = rotateAndSum(b, weighted!, blocks, s, hc);
  count(hc.rotations);
  return { value: b.mul(num, row.reciprocal), presentKeys: Ks, presentValues: Vs, sites, rotations };
}

/**
 * Past lengths from..to in buckets that one decode plan serves each (compiled for the bucket's longest
 * past; shorter ones masked, past-dependent constants recomputed): maximal runs of pasts whose caches
 * take the same layout (block stride, token groups, which groups hold past tokens). The decode program's
 * ops are the same across such a run, so the plan for its longest past costs a shorter past only the
 * longer row bound of its softmax fits; the stride halves at each power of two of P + 1, so the buckets
 * double (then grow by one ciphertext of blocks once the cache spans several).
 */
export function decodeBuckets(width: number, slots: number, from: number, to: number): { from: number; to: number }[] {
  const key = (P: number) => {
    const cg = cacheGroups(width, slots, P);
    return `${cg.stride}:${cg.groups.map((g) => (g.past > 0 ? 1 : 0)).join('')}`;
  };
  const out: { from: number; to: number }[] = [];
  for (let P = from; P <= to; P++) {
    const last = out[out.length - 1];
    if (last && key(last.to) === key(P)) last.to = P;
    else out.push({ from: P, to: P });
  }
  return out;
}
