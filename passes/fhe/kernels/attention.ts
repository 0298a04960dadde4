// Attention with GQA on replicated layouts, for decode (one query against an encrypted KV cache) and
// prefill (T queries, causal), with the softmax of softmax.ts.
//
// Packing. The keys are laid out one per window of `ws` slots (decode: ws = the query period W, key j
// masked into window j of one ciphertext; prefill: the token blocks of the K ciphertext already are the
// windows). K is replicated with period Pk = nextPow2(Nkv*H), so inside a window head position m (slots
// m*H..m*H+H-1) meets KV head ((m*H) mod Pk)/H. The query is permuted so that query head n sits at a
// position whose KV head is n / (N/Nkv) (model A: [q0 q2 q1 q3]) and replicated over every window.
// Then for all keys at once:
//   q'*Kall (1 ct x ct) -> rotate-and-sum over H slots (log2 H rotations): the score of (head, key j)
//   at slot j*ws + m*H; softmax on those slots (masked: causal / absent keys contribute exactly 0; the
//   sums over keys are rotate-and-sums over the windows, log2(slots/ws) rotations, which leave every
//   window with the totals); the probability is spread over its head's H slots (log2 H rotations),
//   multiplied by Vall (1 ct x ct) and summed over the windows (log2(slots/ws) rotations).
// Rotations do not grow with the number of keys; the cache only costs plaintext masks (decode).
// The final permutation back to natural head order costs 1 level and a few rotations; a driver that
// permutes W_q's rows and W_o's columns by gqaHeadPositions can skip both permutations (headsPermuted).

import { FhecError } from '../../../ir/errors.js';
import type { FheBuilder } from '../../../ir/fhe/builder.js';
import type { FheValue, SlotLayout } from '../../../ir/fhe/types.js';
import { nextPow2, replicate } from '../packing.js';
import { applyApproximation, chebyshevMap } from './approximation.js';
import { CostMeter, describeApproximation, type KernelApproximation, type KernelCost } from './cost.js';
import { checkReplicated, rotateSum } from './layout.js';
import type { SoftmaxPlan } from './softmax.js';

export interface AttentionOptions {
  numHeads: number;
  kvNumHeads: number;
  headDim: number;
  scale: number;
  softmax: SoftmaxPlan;
  /** q arrives, and the output leaves, with head n at position gqaHeadPositions(...)[n] (no permutations). */
  headsPermuted?: boolean;
}

export interface AttentionResult {
  value: FheValue;
  layout: SlotLayout;
  cost: KernelCost;
  approximations: KernelApproximation[];
}

export interface DecodeResult extends AttentionResult {
  /** The cache after this step: the inputs' keys/values with the new token's appended. */
  present: { keys: FheValue[]; values: FheValue[] };
}

/**
 * Window position (in units of H) of each query head, inside a window of W = nextPow2(N*H) slots, such
 * that K replicated with period Pk = nextPow2(Nkv*H) holds head n's KV head there.
 */
export function gqaHeadPositions(numHeads: number, kvNumHeads: number, headDim: number): number[] {
  const N = numHeads;
  const Nkv = kvNumHeads;
  const H = headDim;
  if (!(N > 0 && Nkv > 0 && N % Nkv === 0)) throw new FhecError(`attention: ${N} heads is not a multiple of ${Nkv} KV heads`);
  if (H & (H - 1)) throw new FhecError(`attention: head size ${H} must be a power of two for the packed kernel`);
  const W = nextPow2(N * H);
  const Pk = nextPow2(Nkv * H);
  const group = N / Nkv;
  const free = new Map<number, number[]>();
  for (let m = 0; m < W / H; m++) {
    const off = (m * H) % Pk;
    if (off >= Nkv * H) continue;
    const g = off / H;
    free.set(g, [...(free.get(g) ?? []), m]);
  }
  const pos: number[] = [];
  for (let n = 0; n < N; n++) {
    const m = free.get(Math.floor(n / group))?.[n % group];
    if (m === undefined) throw new FhecError(`attention: no packed position for head ${n} (${N} heads, ${Nkv} KV heads of ${H})`);
    pos.push(m);
  }
  return pos;
}

interface Geometry {
  N: number;
  H: number;
  W: number;
  Pk: number;
  pos: number[];
}

function geometry(opts: AttentionOptions, qLayout: SlotLayout, kvLayout: SlotLayout): Geometry {
  const N = opts.numHeads;
  const H = opts.headDim;
  if (qLayout.length !== N * H) throw new FhecError(`attention: q holds ${qLayout.length} values, expected ${N} heads of ${H}`);
  if (kvLayout.length !== opts.kvNumHeads * H) throw new FhecError(`attention: k/v hold ${kvLayout.length} values, expected ${opts.kvNumHeads} heads of ${H}`);
  const pos = gqaHeadPositions(N, opts.kvNumHeads, H);
  return { N, H, W: qLayout.period, Pk: kvLayout.period, pos };
}

/**
 * Moves head blocks of H slots: value at (from[n]*H + h) goes to (to[n]*H + h) within each W-window,
 * restricted to the slots `keep` allows; the mask also multiplies by `factor`. One level.
 */
function moveHeads(
  b: FheBuilder,
  x: FheValue,
  g: Geometry,
  from: number[],
  to: number[],
  keep: (slot: number) => boolean,
  factor: number,
): FheValue {
  const byShift = new Map<number, number[]>();
  from.forEach((f, n) => {
    const d = (to[n]! - f) * g.H;
    byShift.set(d, [...(byShift.get(d) ?? []), n]);
  });
  let acc: FheValue | undefined;
  for (const [d, heads] of byShift) {
    const dest = new Set<number>();
    for (const n of heads) for (let h = 0; h < g.H; h++) dest.add(to[n]! * g.H + h);
    const m = new Float64Array(b.slots);
    for (let s = 0; s < b.slots; s++) if (dest.has(s % g.W) && keep(s)) m[s] = factor;
    const src = d === 0 ? x : b.rotate(x, -d);
    const term = b.mulConst(src, { kind: 'dense', values: m }, 'attn_heads');
    acc = acc ? b.add(acc, term) : term;
  }
  return acc!;
}

/**
 * The packed attention of up to ws/W queries at once: query c sits (heads permuted) at slots c*W..c*W+W-1
 * of every window of `ws` slots, and sees the keys in the windows `keys[c]`. Returns the permuted output
 * of query c at the same slots of every window.
 */
function attendPacked(b: FheBuilder, q: FheValue, kAll: FheValue, vAll: FheValue, ws: number, keys: number[][], g: Geometry, sm: SoftmaxPlan): FheValue {
  const slots = b.slots;
  const windows = slots / ws;
  const headSlots = [...new Set(g.pos)].map((m) => m * g.H);
  const isScore = new Float64Array(slots);
  const atHead = new Float64Array(slots);
  keys.forEach((js, c) => {
    for (const o of headSlots) {
      for (const j of js) isScore[j * ws + c * g.W + o] = 1;
      for (let w = 0; w < windows; w++) atHead[w * ws + c * g.W + o] = 1;
    }
  });

  const dots = rotateSum(b, b.mul(q, kAll), g.H, 1);
  // t = alpha u + beta with u = (z - shift)/2^k at score slots; other slots map to t = -1 (exp ~ 0).
  const { alpha, beta } = chebyshevMap(sm.exp);
  const cool = 2 ** sm.cooling;
  const scaleVec = new Float64Array(slots);
  const offsetVec = new Float64Array(slots).fill(-1);
  for (let s = 0; s < slots; s++) {
    if (!isScore[s]) continue;
    scaleVec[s] = alpha / cool;
    offsetVec[s] = beta - (alpha * sm.shift) / cool;
  }
  const t = b.addConst(b.mulConst(dots, { kind: 'dense', values: scaleVec }, 'attn_exp_map'), { kind: 'dense', values: offsetVec }, 'attn_exp_map');
  const e0 = applyApproximation(b, dots, sm.exp, { mapped: t }).value;
  const e = b.mulConst(e0, { kind: 'dense', values: isScore }, 'attn_score_mask');

  // y = e / sum(e); sums over keys leave every window with the totals at the head slots. Elsewhere the
  // sum is 0: a constant inside the reciprocal's interval keeps 1/x tame there (y is 0 there anyway).
  const normalize = (x: FheValue, recip: SoftmaxPlan['reciprocal']): FheValue => {
    const sum = rotateSum(b, x, windows, ws);
    const [a, c] = recip.interval;
    const pad = new Float64Array(slots);
    for (let s = 0; s < slots; s++) if (!atHead[s]) pad[s] = (a + c) / 2;
    const r = applyApproximation(b, b.addConst(sum, { kind: 'dense', values: pad }, 'attn_sum_pad'), recip).value;
    return b.mul(x, r);
  };
  let y = normalize(e, sm.reciprocal);
  for (let i = 0; i < sm.cooling; i++) y = normalize(b.mul(y, y), sm.stepReciprocal!);

  // Spread each probability over its head's H slots, weight V, sum over the keys.
  const spread = rotateSum(b, y, g.H, -1);
  return rotateSum(b, b.mul(spread, vAll), windows, ws);
}

function softmaxApproximations(sm: SoftmaxPlan): KernelApproximation[] {
  const out = [describeApproximation(`exp((scores - ${sm.shift}) / ${2 ** sm.cooling})`, sm.exp), describeApproximation('1/sum(exp)', sm.reciprocal)];
  if (sm.stepReciprocal) out.push(describeApproximation(`1/sum(p^2) (x${sm.cooling})`, sm.stepReciprocal));
  return out;
}

/**
 * Decode: one query token (q, k, v in single-token replicated layouts) against the encrypted cache
 * (one ciphertext per past position, in kvLayout), plus itself. Needs P + 1 <= slots / W.
 */
export function lowerAttentionDecode(
  b: FheBuilder,
  q: FheValue,
  qLayout: SlotLayout,
  k: FheValue,
  v: FheValue,
  kvLayout: SlotLayout,
  cache: { keys: readonly FheValue[]; values: readonly FheValue[] },
  opts: AttentionOptions,
): DecodeResult {
  checkReplicated(qLayout, b.slots, 'attention q');
  checkReplicated(kvLayout, b.slots, 'attention k/v');
  if (qLayout.tokens !== 1 || kvLayout.tokens !== 1 || qLayout.stride !== b.slots || kvLayout.stride !== b.slots) {
    throw new FhecError('attention decode: q, k and v must be single-token layouts over the whole ciphertext');
  }
  if (cache.keys.length !== cache.values.length) throw new FhecError(`attention decode: ${cache.keys.length} cached keys but ${cache.values.length} values`);
  const g = geometry(opts, qLayout, kvLayout);
  const keys = [...cache.keys, k];
  const values = [...cache.values, v];
  const T = keys.length;
  const ws = g.W;
  if (T > b.slots / ws) throw new FhecError(`attention decode: ${T} keys do not fit ${b.slots / ws} windows of ${ws} slots`);
  if (T > opts.softmax.length) throw new FhecError(`attention decode: ${T} keys but the softmax was planned for ${opts.softmax.length}`);
  const meter = new CostMeter(b, [q, ...keys, ...values]);
  const window = (j: number) => {
    const m = new Float64Array(b.slots);
    m.fill(1, j * ws, (j + 1) * ws);
    return { kind: 'dense' as const, values: m };
  };
  let kAll: FheValue | undefined;
  let vAll: FheValue | undefined;
  for (let j = 0; j < T; j++) {
    const kj = b.mulConst(keys[j]!, window(j), 'attn_window');
    const vj = b.mulConst(values[j]!, window(j), 'attn_window');
    kAll = kAll ? b.add(kAll, kj) : kj;
    vAll = vAll ? b.add(vAll, vj) : vj;
  }
  const natural = g.pos.map((_, n) => n);
  const all = () => true;
  const qPerm = opts.headsPermuted
    ? b.mulConst(q, { kind: 'splat', value: opts.scale }, 'attn_scale')
    : moveHeads(b, q, g, natural, g.pos, all, opts.scale);
  const outPerm = attendPacked(b, qPerm, kAll!, vAll!, ws, [[...Array(T).keys()]], g, opts.softmax);
  const value = opts.headsPermuted ? outPerm : moveHeads(b, outPerm, g, g.pos, natural, all, 1);
  return {
    value,
    layout: qLayout,
    present: { keys, values },
    cost: meter.finish([value]),
    approximations: softmaxApproximations(opts.softmax),
  };
}

/**
 * Prefill: T query tokens against their own keys with the causal mask (query i sees keys 0..i).
 * q, k, v are multi-token replicated layouts (one block of `stride` slots per token); the output is in
 * q's layout. The token blocks are the key windows; each block has room for stride/W queries, so the
 * packed kernel runs ceil(T / (stride/W)) times, each pass for that many queries at once.
 */
export function lowerAttentionPrefill(
  b: FheBuilder,
  q: FheValue,
  qLayout: SlotLayout,
  k: FheValue,
  v: FheValue,
  kvLayout: SlotLayout,
  opts: AttentionOptions,
): AttentionResult {
  checkReplicated(qLayout, b.slots, 'attention q');
  checkReplicated(kvLayout, b.slots, 'attention k/v');
  const T = qLayout.tokens;
  if (kvLayout.tokens !== T || kvLayout.stride !== qLayout.stride) throw new FhecError('attention prefill: q, k and v must share tokens and stride');
  if (T > opts.softmax.length) throw new FhecError(`attention prefill: ${T} keys but the softmax was planned for ${opts.softmax.length}`);
  const g = geometry(opts, qLayout, kvLayout);
  const ws = qLayout.stride;
  const perPass = ws / g.W;
  const meter = new CostMeter(b, [q, k, v]);
  const from = opts.headsPermuted ? g.pos : g.pos.map((_, n) => n);
  // Head n moves by d_n = (pos - from) * H; heads that move alike share a rotation.
  const shifts = new Map<number, number[]>();
  from.forEach((f, n) => {
    const d = (g.pos[n]! - f) * g.H;
    shifts.set(d, [...(shifts.get(d) ?? []), n]);
  });
  const rotated = new Map<number, FheValue>();
  const rot = (x: FheValue, r: number, cache?: Map<number, FheValue>): FheValue => {
    if (r === 0) return x;
    let v = cache?.get(r);
    if (!v) {
      v = b.rotate(x, r);
      cache?.set(r, v);
    }
    return v;
  };
  /** Mask of slots base + off + m*H + h for the given heads' positions `at`. */
  const headMask = (base: number, heads: number[], at: number[], factor: number): Float64Array => {
    const m = new Float64Array(b.slots);
    for (const n of heads) m.fill(factor, base + at[n]! * g.H, base + at[n]! * g.H + g.H);
    return m;
  };
  const outputs = new Map<number, FheValue>();
  for (let first = 0; first < T; first += perPass) {
    const queries = [...Array(Math.min(perPass, T - first)).keys()].map((c) => first + c);
    // Query i_c (block i_c, copy 0) goes to copy c of its block with heads permuted, then to every window.
    let qPass: FheValue | undefined;
    queries.forEach((i, c) => {
      for (const [d, heads] of shifts) {
        const m = headMask(i * ws + c * g.W, heads, g.pos, opts.scale);
        const term = b.mulConst(rot(q, -(c * g.W + d), rotated), { kind: 'dense', values: m }, 'attn_query');
        qPass = qPass ? b.add(qPass, term) : term;
      }
    });
    const qRep = rotateSum(b, qPass!, b.slots / ws, -ws);
    const o = attendPacked(b, qRep, k, v, ws, queries.map((i) => [...Array(i + 1).keys()]), g, opts.softmax);
    // Output of query i_c: copy c of window i_c, back to copy 0 in `from` head order (rotated below).
    queries.forEach((i, c) => {
      for (const [d, heads] of shifts) {
        const r = c * g.W + d;
        const term = b.mulConst(o, { kind: 'dense', values: headMask(i * ws + c * g.W, heads, g.pos, 1) }, 'attn_out');
        const acc = outputs.get(r);
        outputs.set(r, acc ? b.add(acc, term) : term);
      }
    });
  }
  let placed: FheValue | undefined;
  for (const [r, x] of outputs) {
    const term = rot(x, r);
    placed = placed ? b.add(placed, term) : term;
  }
  const value = replicate(b, placed!, g.W, qLayout.stride / g.W);
  return { value, layout: qLayout, cost: meter.finish([value]), approximations: softmaxApproximations(opts.softmax) };
}

/**
 * Splits a multi-token replicated ciphertext into single-token ones (each replicated over the whole
 * ciphertext), e.g. to turn a prefill's K/V into cache entries: 1 level, log2(slots/period) rotations each.
 */
export function splitTokens(b: FheBuilder, x: FheValue, layout: SlotLayout): { values: FheValue[]; layout: SlotLayout } {
  checkReplicated(layout, b.slots, 'split tokens');
  const values: FheValue[] = [];
  for (let t = 0; t < layout.tokens; t++) {
    const m = new Float64Array(b.slots);
    m.fill(1, t * layout.stride, t * layout.stride + layout.period);
    values.push(rotateSum(b, b.mulConst(x, { kind: 'dense', values: m }, 'token_mask'), b.slots / layout.period, -layout.period));
  }
  const { length, period } = layout;
  return { values, layout: { length, tokens: 1, stride: b.slots, period, copies: b.slots / period } };
}
