// Attention: ONNX Attention (opsets 23/24), com.microsoft::MultiHeadAttention and
// com.microsoft::GroupQueryAttention. All three reduce to the same loop over (batch, head, query):
// a row of scaled scores q.k, an op-specific mask and softmax, then the row times V.
// Tensors are handled in BNSH layout (batch, heads, sequence, head size).

import { attrFloat, attrInt, hasAttr } from '../../../ir/graph/attrs.js';
import type { Tensor } from '../../../ir/tensor.js';
import { fail, input, result, shapeStr, type Kernel, type KernelContext } from '../kernel.js';
import { broadcastStrides } from '../strided.js';
import { applyRotary, rotaryLayout } from './rotary.js';

const FLOAT32_LOWEST = -3.4028234663852886e38;

/** (B, S, N*H) -> (B, N, S, H). */
function toBNSH(x: Float64Array, B: number, S: number, N: number, H: number, rowStride = N * H, colOffset = 0): Float64Array {
  const out = new Float64Array(B * N * S * H);
  for (let b = 0; b < B; b++)
    for (let s = 0; s < S; s++)
      for (let n = 0; n < N; n++) {
        const from = (b * S + s) * rowStride + colOffset + n * H;
        out.set(x.subarray(from, from + H), ((b * N + n) * S + s) * H);
      }
  return out;
}

/** (B, N, S, H) -> (B, S, N*H). */
function fromBNSH(x: Float64Array, B: number, N: number, S: number, H: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let b = 0; b < B; b++)
    for (let n = 0; n < N; n++)
      for (let s = 0; s < S; s++) {
        const from = ((b * N + n) * S + s) * H;
        out.set(x.subarray(from, from + H), (b * S + s) * N * H + n * H);
      }
  return out;
}

/** Concatenates past (B, N, P, H) and cur (B, N, L, H) along the sequence axis. */
function concatSeq(past: Float64Array | null, P: number, cur: Float64Array, L: number, B: number, N: number, H: number): Float64Array {
  if (!past || P === 0) return cur;
  const T = P + L;
  const out = new Float64Array(B * N * T * H);
  for (let bn = 0; bn < B * N; bn++) {
    out.set(past.subarray(bn * P * H, (bn + 1) * P * H), bn * T * H);
    out.set(cur.subarray(bn * L * H, (bn + 1) * L * H), (bn * T + P) * H);
  }
  return out;
}

interface Problem {
  B: number;
  Nq: number;
  Nkv: number;
  Sq: number;
  /** Keys per (batch, kv head) in k and v. */
  T: number;
  H: number;
  Hv: number;
  q: Float64Array;
  k: Float64Array;
  v: Float64Array;
  scale: number;
}

/**
 * Runs attention. `probs(b, n, i, row)` receives the scaled scores q.k * scale for query i of head n
 * and must overwrite them with the attention weights. Returns the output in (B, Nq, Sq, Hv).
 */
function attend(p: Problem, probs: (b: number, n: number, i: number, row: Float64Array) => void): Float64Array {
  const { B, Nq, Nkv, Sq, T, H, Hv, q, k, v, scale } = p;
  const group = Nq / Nkv;
  const out = new Float64Array(B * Nq * Sq * Hv);
  const row = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let n = 0; n < Nq; n++) {
      const kvBase = (b * Nkv + Math.floor(n / group)) * T;
      for (let i = 0; i < Sq; i++) {
        const qo = ((b * Nq + n) * Sq + i) * H;
        for (let j = 0; j < T; j++) {
          const ko = (kvBase + j) * H;
          let dot = 0;
          for (let h = 0; h < H; h++) dot += q[qo + h]! * k[ko + h]!;
          row[j] = dot * scale;
        }
        probs(b, n, i, row);
        const oo = ((b * Nq + n) * Sq + i) * Hv;
        for (let j = 0; j < T; j++) {
          // No skipping of zero weights: 0 * inf must stay NaN as in numpy.
          const w = row[j]!;
          const vo = (kvBase + j) * Hv;
          for (let h = 0; h < Hv; h++) out[oo + h] += w * v[vo + h]!;
        }
      }
    }
  }
  return out;
}

/**
 * Softmax of row[lo, hi) in place, zero outside. A row whose maximum is -inf becomes all zeros
 * (the fully-masked convention). `sink` adds exp(sink) to the denominator (attention sinks).
 */
function softmaxRow(row: Float64Array, lo = 0, hi = row.length, sink?: number): void {
  let max = sink ?? -Infinity;
  for (let j = lo; j < hi; j++) if (row[j]! > max || Number.isNaN(row[j]!)) max = row[j]!;
  if (max === -Infinity) {
    row.fill(0);
    return;
  }
  let sum = sink === undefined ? 0 : Math.exp(sink - max);
  for (let j = lo; j < hi; j++) {
    const e = Math.exp(row[j]! - max);
    row[j] = e;
    sum += e;
  }
  for (let j = lo; j < hi; j++) row[j] = row[j]! / sum;
  row.fill(0, 0, lo);
  row.fill(0, hi);
}

function softcapRow(row: Float64Array, cap: number): void {
  if (cap > 0) for (let j = 0; j < row.length; j++) row[j] = cap * Math.tanh(row[j]! / cap);
}

/** Reader of a tensor broadcast (right-aligned) to 4-D (B, N, S, T); `T` may exceed the tensor's last dim. */
function reader4d(ctx: KernelContext, t: Tensor, dims: [number, number, number, number], what: string, allowShortLast: boolean) {
  const r = t.dims.length;
  if (r > 4) fail(ctx, `${what} ${shapeStr(t.dims)} has rank above 4`);
  const padded = [...new Array<number>(4 - r).fill(1), ...t.dims];
  const target = [...dims];
  const lastT = padded[3]!;
  if (allowShortLast && lastT < dims[3]) target[3] = lastT;
  for (let i = 0; i < 4; i++) {
    if (padded[i] !== 1 && padded[i] !== target[i]) fail(ctx, `${what} ${shapeStr(t.dims)} does not broadcast to ${shapeStr(dims)}`);
  }
  const s = broadcastStrides(padded, target);
  return {
    lastT,
    rowOffset: (b: number, n: number, i: number) => b * s[0]! + n * s[1]! + i * s[2]!,
    colStride: s[3]!,
  };
}

// ---------------------------------------------------------------------------------------------
// ONNX Attention (23, 24)

const onnxAttention: Kernel = (ctx, ins) => {
  const Q = input(ctx, ins, 0, 'Q');
  const K = input(ctx, ins, 1, 'K');
  const V = input(ctx, ins, 2, 'V');
  const mask = ins[3] ?? null;
  const pastK = ins[4] ?? null;
  const pastV = ins[5] ?? null;
  const nonpad = ctx.opset >= 24 ? (ins[6] ?? null) : null;
  if (!pastK !== !pastV) fail(ctx, 'past_key and past_value must be given together');
  if (nonpad && pastK) fail(ctx, 'nonpad_kv_seqlen cannot be combined with past_key/past_value');
  const rank = Q.dims.length;
  if (K.dims.length !== rank || V.dims.length !== rank || (rank !== 3 && rank !== 4)) {
    fail(ctx, `Q, K, V must all be 3-D or 4-D, got ${shapeStr(Q.dims)}, ${shapeStr(K.dims)}, ${shapeStr(V.dims)}`);
  }
  const B = Q.dims[0]!;
  let Nq: number, Nkv: number, Sq: number, L: number, H: number, Hk: number, Hv: number;
  let q: Float64Array, k: Float64Array, v: Float64Array;
  if (rank === 3) {
    Nq = attrInt(ctx.node, 'q_num_heads');
    Nkv = attrInt(ctx.node, 'kv_num_heads');
    Sq = Q.dims[1]!;
    L = K.dims[1]!;
    H = Q.dims[2]! / Nq;
    Hk = K.dims[2]! / Nkv;
    Hv = V.dims[2]! / Nkv;
    if (![H, Hk, Hv].every(Number.isInteger)) fail(ctx, `hidden sizes do not divide by q_num_heads ${Nq} / kv_num_heads ${Nkv}`);
    q = toBNSH(Q.data, B, Sq, Nq, H);
    k = toBNSH(K.data, B, L, Nkv, Hk);
    v = toBNSH(V.data, B, V.dims[1]!, Nkv, Hv);
  } else {
    [, Nq, Sq, H] = Q.dims as [number, number, number, number];
    [, Nkv, L, Hk] = K.dims as [number, number, number, number];
    Hv = V.dims[3]!;
    q = Q.data;
    k = K.data;
    v = V.data;
  }
  if (Hk !== H) fail(ctx, `query head size ${H} differs from key head size ${Hk}`);
  if (Nq % Nkv !== 0) fail(ctx, `q heads ${Nq} are not a multiple of kv heads ${Nkv}`);
  const P = pastK ? pastK.dims[2]! : 0;
  if (pastK && (pastK.dims.length !== 4 || pastK.dims[1] !== Nkv || pastK.dims[3] !== H)) {
    fail(ctx, `past_key ${shapeStr(pastK.dims)} does not match [batch, ${Nkv}, past, ${H}]`);
  }
  const presentK = concatSeq(pastK?.data ?? null, P, k, L, B, Nkv, H);
  const presentV = concatSeq(pastV?.data ?? null, P, v, L, B, Nkv, Hv);
  const T = P + L;
  const scale = hasAttr(ctx.node, 'scale') ? attrFloat(ctx.node, 'scale') : 1 / Math.sqrt(H);
  const causal = attrInt(ctx.node, 'is_causal', 0) === 1;
  const softcap = attrFloat(ctx.node, 'softcap', 0);
  const mode = attrInt(ctx.node, 'qk_matmul_output_mode', 0);
  const wantQk = ctx.node.outputs.length > 3;
  const qk = wantQk ? new Float64Array(B * Nq * Sq * T) : null;
  const maskR = mask ? reader4d(ctx, mask, [B, Nq, Sq, T], 'attn_mask', true) : null;
  const boolMask = mask?.dtype === 'bool';
  const bias = new Float64Array(T);
  const out = attend({ B, Nq, Nkv, Sq, T, H, Hv, q, k: presentK, v: presentV, scale }, (b, n, i, row) => {
    // Additive bias: mask (bool -> 0/-inf, padded to T with -inf), causal, padding.
    for (let j = 0; j < T; j++) {
      let m = 0;
      if (maskR) {
        if (j >= maskR.lastT) m = -Infinity;
        else {
          const raw = mask!.data[maskR.rowOffset(b, n, i) + j * maskR.colStride]!;
          m = boolMask ? (raw ? 0 : -Infinity) : raw;
        }
      }
      if (causal) {
        const offset = nonpad ? nonpad.data[b]! - Sq : P;
        if (j > i + offset) m += -Infinity;
      }
      if (nonpad && j >= nonpad.data[b]!) m += -Infinity;
      bias[j] = m;
    }
    softcapRow(row, softcap);
    const qo = ((b * Nq + n) * Sq + i) * T;
    if (qk && mode <= 1) qk.set(row, qo);
    let allMasked = true;
    for (let j = 0; j < T; j++) {
      row[j] = row[j]! + bias[j]!;
      if (bias[j]! !== -Infinity) allMasked = false;
    }
    if (qk && mode === 2) qk.set(row, qo);
    if (allMasked) row.fill(0);
    else softmaxRow(row);
    if (qk && mode === 3) qk.set(row, qo);
  });
  const y = rank === 3 ? fromBNSH(out, B, Nq, Sq, Hv) : out;
  const yDims = rank === 3 ? [B, Sq, Nq * Hv] : [B, Nq, Sq, Hv];
  return [
    result(Q.dtype, yDims, y),
    result(pastK?.dtype ?? K.dtype, [B, Nkv, T, H], presentK === k ? Float64Array.from(k) : presentK),
    result(pastV?.dtype ?? V.dtype, [B, Nkv, T, Hv], presentV === v ? Float64Array.from(v) : presentV),
    qk ? result(Q.dtype, [B, Nq, Sq, T], qk) : null,
  ];
};

// ---------------------------------------------------------------------------------------------
// com.microsoft::MultiHeadAttention

const msMultiHeadAttention: Kernel = (ctx, ins) => {
  const Qt = input(ctx, ins, 0, 'query');
  const Kt = ins[1] ?? null;
  const Vt = ins[2] ?? null;
  const biasT = ins[3] ?? null;
  const padMask = ins[4] ?? null;
  const attnBias = ins[5] ?? null;
  const pastK = ins[6] ?? null;
  const pastV = ins[7] ?? null;
  if (ins[8] || ins[9]) fail(ctx, 'past_sequence_length / cache_indirection (shared buffers, beam search) are not supported');
  const N = attrInt(ctx.node, 'num_heads');
  const maskFilter = attrFloat(ctx.node, 'mask_filter_value', -10000);
  const unidirectional = attrInt(ctx.node, 'unidirectional', 0) === 1;
  const B = Qt.dims[0]!;
  const S = Qt.dims[1]!;
  let q: Float64Array, k: Float64Array, v: Float64Array;
  let H: number, Hv: number, L: number;
  let kvIsCache = false;
  if (Qt.dims.length === 5) {
    // Packed QKV (B, S, N, 3, H).
    if (Kt || Vt) fail(ctx, 'packed QKV query excludes key and value');
    H = Hv = Qt.dims[4]!;
    L = S;
    [q, k, v] = [0, 1, 2].map((m) => {
      const out = new Float64Array(B * N * S * H);
      for (let b = 0; b < B; b++)
        for (let s = 0; s < S; s++)
          for (let n = 0; n < N; n++) {
            const from = (((b * S + s) * N + n) * 3 + m) * H;
            out.set(Qt.data.subarray(from, from + H), ((b * N + n) * S + s) * H);
          }
      return out;
    }) as [Float64Array, Float64Array, Float64Array];
  } else {
    if (Qt.dims.length !== 3) fail(ctx, `query must be 3-D or packed 5-D, got ${shapeStr(Qt.dims)}`);
    if (!Kt) fail(ctx, 'key is required unless query is packed');
    const D = Qt.dims[2]!;
    H = D / N;
    if (!Number.isInteger(H)) fail(ctx, `hidden size ${D} does not divide by num_heads ${N}`);
    const qd = Float64Array.from(Qt.data);
    if (biasT) for (let i = 0; i < qd.length; i++) qd[i] = qd[i]! + biasT.data[i % D]!;
    q = toBNSH(qd, B, S, N, H);
    if (Kt.dims.length === 5) {
      // Packed KV (B, L, N, 2, H).
      L = Kt.dims[1]!;
      Hv = H;
      [k, v] = [0, 1].map((m) => {
        const out = new Float64Array(B * N * L * H);
        for (let b = 0; b < B; b++)
          for (let s = 0; s < L; s++)
            for (let n = 0; n < N; n++) {
              const from = (((b * L + s) * N + n) * 2 + m) * H;
              out.set(Kt.data.subarray(from, from + H), ((b * N + n) * L + s) * H);
            }
        return out;
      }) as [Float64Array, Float64Array];
    } else if (Kt.dims.length === 4) {
      // Key and value already in BNSH (cross-attention cache): used as they are.
      if (!Vt || Vt.dims.length !== 4) fail(ctx, 'a 4-D key needs a 4-D value');
      L = Kt.dims[2]!;
      Hv = Vt.dims[3]!;
      k = Kt.data;
      v = Vt.data;
      kvIsCache = true;
    } else {
      if (!Vt || Kt.dims.length !== 3 || Vt.dims.length !== 3) fail(ctx, `key ${shapeStr(Kt.dims)} and value must be 3-D`);
      L = Kt.dims[1]!;
      const Dv = Vt.dims[2]!;
      Hv = Dv / N;
      const kd = Float64Array.from(Kt.data);
      const vd = Float64Array.from(Vt.data);
      if (biasT) {
        for (let i = 0; i < kd.length; i++) kd[i] = kd[i]! + biasT.data[D + (i % D)]!;
        for (let i = 0; i < vd.length; i++) vd[i] = vd[i]! + biasT.data[2 * D + (i % Dv)]!;
      }
      k = toBNSH(kd, B, L, N, H);
      v = toBNSH(vd, B, L, N, Hv);
    }
  }
  const P = pastK && !kvIsCache ? pastK.dims[2]! : 0;
  if (pastK && !kvIsCache && (pastK.dims.length !== 4 || pastK.dims[1] !== N || pastK.dims[3] !== H)) {
    fail(ctx, `past_key ${shapeStr(pastK.dims)} does not match [batch, ${N}, past, ${H}]`);
  }
  const presentK = kvIsCache ? k : concatSeq(pastK?.data ?? null, P, k, L, B, N, H);
  const presentV = kvIsCache ? v : concatSeq(pastV?.data ?? null, P, v, L, B, N, Hv);
  const T = P + L;
  const scale = hasAttr(ctx.node, 'scale') && attrFloat(ctx.node, 'scale') !== 0 ? attrFloat(ctx.node, 'scale') : 1 / Math.sqrt(H);
  const biasR = attnBias ? reader4d(ctx, attnBias, [B, N, S, T], 'attention_bias', false) : null;
  let padAt: ((b: number, i: number, j: number) => boolean) | null = null;
  if (padMask) {
    const md = padMask.dims;
    if (md.length === 1 && md[0] === B) padAt = (b, _i, j) => j >= padMask.data[b]!;
    else if (md.length === 2 && md[0] === B && md[1] === T) padAt = (b, _i, j) => padMask.data[b * T + j] === 0;
    else if (md.length === 3 && md[0] === B && md[1] === S && md[2] === T) padAt = (b, i, j) => padMask.data[(b * S + i) * T + j] === 0;
    else fail(ctx, `key_padding_mask of shape ${shapeStr(md)} is not supported (expected [${B}], [${B}, ${T}] or [${B}, ${S}, ${T}])`);
  }
  const out = attend({ B, Nq: N, Nkv: N, Sq: S, T, H, Hv, q, k: presentK, v: presentV, scale }, (b, n, i, row) => {
    for (let j = 0; j < T; j++) {
      let s = row[j]!;
      if (padAt && padAt(b, i, j)) s += maskFilter;
      if (unidirectional && j > i + P) s += FLOAT32_LOWEST;
      if (biasR) s += attnBias!.data[biasR.rowOffset(b, n, i) + j * biasR.colStride]!;
      row[j] = s;
    }
    softmaxRow(row);
  });
  return [
    result(Qt.dtype, [B, S, N * Hv], fromBNSH(out, B, N, S, Hv)),
    result(Qt.dtype, [B, N, T, H], presentK === Kt?.data || presentK === k ? Float64Array.from(presentK) : presentK),
    result(Qt.dtype, [B, N, T, Hv], presentV === Vt?.data || presentV === v ? Float64Array.from(presentV) : presentV),
  ];
};

// ---------------------------------------------------------------------------------------------
// com.microsoft::GroupQueryAttention

const msGroupQueryAttention: Kernel = (ctx, ins) => {
  const Qt = input(ctx, ins, 0, 'query');
  const Kt = ins[1] ?? null;
  const Vt = ins[2] ?? null;
  const pastK = ins[3] ?? null;
  const pastV = ins[4] ?? null;
  const seqlens = input(ctx, ins, 5, 'seqlens_k');
  const totalT = input(ctx, ins, 6, 'total_sequence_length').data[0]!;
  const cos = ins[7] ?? null;
  const sin = ins[8] ?? null;
  const posIds = ins[9] ?? null;
  const attnBias = ins[10] ?? null;
  const headSink = ins[11] ?? null;
  if (ins.length > 12 && ins.slice(12).some((t) => t)) fail(ctx, 'quantized KV caches and q/k norm inputs are not supported');
  const N = attrInt(ctx.node, 'num_heads');
  const Nkv = attrInt(ctx.node, 'kv_num_heads');
  if (N % Nkv !== 0) fail(ctx, `num_heads ${N} is not a multiple of kv_num_heads ${Nkv}`);
  const window = attrInt(ctx.node, 'local_window_size', -1);
  const softcap = attrFloat(ctx.node, 'softcap', 0);
  const causal = attrInt(ctx.node, 'causal', 1) === 1;
  const smooth = attrInt(ctx.node, 'smooth_softmax', 0) === 1;
  const doRotary = attrInt(ctx.node, 'do_rotary', 0) === 1;
  const interleaved = attrInt(ctx.node, 'rotary_interleaved', 0) === 1;
  if (Qt.dims.length !== 3) fail(ctx, `query must be 3-D, got ${shapeStr(Qt.dims)}`);
  const [B, S, Dq] = Qt.dims as [number, number, number];
  const packed = !Kt;
  const H = packed ? Dq / (N + 2 * Nkv) : Dq / N;
  if (!Number.isInteger(H)) fail(ctx, `query width ${Dq} does not split into heads`);
  const rowQ = packed ? Dq : N * H;
  let qs = packed ? toBNSH(Qt.data, B, S, N, H, rowQ, 0) : toBNSH(Qt.data, B, S, N, H);
  let ks = packed ? toBNSH(Qt.data, B, S, Nkv, H, rowQ, N * H) : toBNSH(Kt!.data, B, S, Nkv, H);
  const vs = packed ? toBNSH(Qt.data, B, S, Nkv, H, rowQ, (N + Nkv) * H) : toBNSH(Vt!.data, B, S, Nkv, H);
  const P = pastK ? pastK.dims[2]! : 0;
  const firstPrompt = S === totalT;
  const pastLen = (b: number) => (firstPrompt ? 0 : seqlens.data[b]! + 1 - S);
  for (let b = 0; b < B; b++) {
    const pl = pastLen(b);
    if (pl < 0 || pl > P) fail(ctx, `seqlens_k[${b}] = ${seqlens.data[b]} implies a past length ${pl} outside the past buffer (${P})`);
  }
  if (doRotary) {
    if (!cos || !sin) fail(ctx, 'do_rotary needs cos_cache and sin_cache');
    const rd = cos.dims[1]! * 2;
    const maxPos = cos.dims[0]!;
    const row = (b: number, s: number) => {
      const p = posIds ? posIds.data[b * S + s]! : pastLen(b) + s;
      if (!(p >= 0 && p < maxPos)) fail(ctx, `position ${p} is outside the cos/sin cache (${maxPos} rows)`);
      return p * (rd / 2);
    };
    // The BNSH buffers are 4-D (B, N, S, H) in rotary terms.
    qs = applyRotary(qs, rotaryLayout(ctx, [B, N, S, H], N, undefined), rd, interleaved, cos.data, sin.data, row);
    ks = applyRotary(ks, rotaryLayout(ctx, [B, Nkv, S, H], Nkv, undefined), rd, interleaved, cos.data, sin.data, row);
  }
  const T = Math.max(totalT, P);
  const presentK = new Float64Array(B * Nkv * T * H);
  const presentV = new Float64Array(B * Nkv * T * H);
  for (let b = 0; b < B; b++) {
    const pl = pastLen(b);
    if (pl + S > T) fail(ctx, `past ${pl} + new ${S} tokens exceed total_sequence_length ${T}`);
    for (let h = 0; h < Nkv; h++) {
      const bn = b * Nkv + h;
      if (pastK && pl > 0) {
        presentK.set(pastK.data.subarray(bn * P * H, (bn * P + pl) * H), bn * T * H);
        presentV.set(pastV!.data.subarray(bn * P * H, (bn * P + pl) * H), bn * T * H);
      }
      presentK.set(ks.subarray(bn * S * H, (bn + 1) * S * H), (bn * T + pl) * H);
      presentV.set(vs.subarray(bn * S * H, (bn + 1) * S * H), (bn * T + pl) * H);
    }
  }
  const scale = hasAttr(ctx.node, 'scale') && attrFloat(ctx.node, 'scale') !== 0 ? attrFloat(ctx.node, 'scale') : 1 / Math.sqrt(H);
  const biasR = attnBias ? reader4d(ctx, attnBias, [B, N, S, T], 'attention_bias', false) : null;
  const out = attend({ B, Nq: N, Nkv, Sq: S, T, H, Hv: H, q: qs, k: presentK, v: presentV, scale }, (b, n, i, row) => {
    const total = seqlens.data[b]! + 1;
    const pos = pastLen(b) + i;
    const hi = causal ? Math.min(pos + 1, T) : Math.min(total, T);
    const lo = causal && window > 0 ? Math.max(0, pos - window) : 0;
    softcapRow(row, softcap);
    if (biasR) for (let j = 0; j < T; j++) row[j] = row[j]! + attnBias!.data[biasR.rowOffset(b, n, i) + j * biasR.colStride]!;
    softmaxRow(row, lo, hi, headSink ? headSink.data[n]! : smooth ? 0 : undefined);
  });
  return [
    result(Qt.dtype, [B, S, N * H], fromBNSH(out, B, N, S, H)),
    result(pastK?.dtype ?? Qt.dtype, [B, Nkv, T, H], presentK),
    result(pastV?.dtype ?? Qt.dtype, [B, Nkv, T, H], presentV),
  ];
};

export const attentionKernels: Record<string, Kernel> = { Attention: onnxAttention };
export const msAttentionKernels: Record<string, Kernel> = {
  MultiHeadAttention: msMultiHeadAttention,
  GroupQueryAttention: msGroupQueryAttention,
};
