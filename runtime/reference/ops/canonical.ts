// Float64 kernels of the canonical `fhec` ops. The semantics are defined in ir/canonical/ops.ts; these
// kernels implement exactly those definitions (one rounding to the output dtype per output).

import { FLOAT32_LOWEST } from '../../../ir/canonical/ops.js';
import { attrFloat, attrInt, attrInts } from '../../../ir/graph/attrs.js';
import { fail, input, normAxis, product, result, shapeStr, type Kernel } from '../kernel.js';
import { broadcastShapes, mapBinary } from '../strided.js';

const linear: Kernel = (ctx, ins) => {
  const x = input(ctx, ins, 0, 'x');
  const w = input(ctx, ins, 1, 'weight');
  const b = ins[2] ?? null;
  if (w.dims.length !== 2) fail(ctx, `weight must be 2-D [K, N], got ${shapeStr(w.dims)}`);
  const [K, N] = w.dims as [number, number];
  if (x.dims.length < 1 || x.dims[x.dims.length - 1] !== K) fail(ctx, `x ${shapeStr(x.dims)} does not match weight ${shapeStr(w.dims)}`);
  if (b && b.size !== N) fail(ctx, `bias ${shapeStr(b.dims)} must have ${N} elements`);
  const M = x.size / K;
  const out = new Float64Array(M * N);
  const xd = x.data, wd = w.data;
  for (let m = 0; m < M; m++) {
    const o = m * N;
    if (b) out.set(b.data, o);
    for (let k = 0; k < K; k++) {
      const a = xd[m * K + k]!;
      if (a === 0) continue;
      const wo = k * N;
      for (let n = 0; n < N; n++) out[o + n] += a * wd[wo + n]!;
    }
  }
  return [result(x.dtype, [...x.dims.slice(0, -1), N], out)];
};

const rmsNorm: Kernel = (ctx, ins) => {
  const x = input(ctx, ins, 0, 'x');
  const gamma = ins[1] ?? null;
  const eps = attrFloat(ctx.node, 'epsilon');
  const D = x.dims[x.dims.length - 1] ?? 1;
  if (gamma && gamma.size !== D) fail(ctx, `gamma ${shapeStr(gamma.dims)} must have ${D} elements`);
  const rows = x.size / D;
  const out = new Float64Array(x.size);
  for (let r = 0; r < rows; r++) {
    const o = r * D;
    let ss = 0;
    for (let j = 0; j < D; j++) ss += x.data[o + j]! ** 2;
    const inv = 1 / Math.sqrt(ss / D + eps);
    for (let j = 0; j < D; j++) out[o + j] = x.data[o + j]! * inv * (gamma ? gamma.data[j]! : 1);
  }
  return [result(x.dtype, x.dims, out)];
};

const rope: Kernel = (ctx, ins) => {
  const x = input(ctx, ins, 0, 'x');
  const pos = input(ctx, ins, 1, 'positions');
  const cos = input(ctx, ins, 2, 'cos_cache');
  const sin = input(ctx, ins, 3, 'sin_cache');
  // Element strides of the (batch, seq, head) axes; channels are contiguous in both layouts.
  let B: number, S: number, N: number, H: number, sb: number, ss: number, sh: number;
  if (x.dims.length === 4) {
    [B, N, S, H] = x.dims as [number, number, number, number];
    [sb, ss, sh] = [N * S * H, H, S * H];
  } else if (x.dims.length === 3) {
    N = attrInt(ctx.node, 'num_heads');
    [B, S] = x.dims as [number, number];
    H = x.dims[2]! / N;
    if (!(N > 0) || !Number.isInteger(H)) fail(ctx, `last dim of ${shapeStr(x.dims)} does not split into ${N} heads`);
    [sb, ss, sh] = [S * N * H, N * H, H];
  } else fail(ctx, `x must be 3-D or 4-D, got ${shapeStr(x.dims)}`);
  const rd = attrInt(ctx.node, 'rotary_dim', 0) || H;
  if (rd > H || rd % 2 !== 0) fail(ctx, `rotary_dim ${rd} does not fit head size ${H}`);
  const half = rd / 2;
  if (cos.dims.length !== 2 || cos.dims[1] !== half || sin.dims.length !== 2 || sin.dims[1] !== half || sin.dims[0] !== cos.dims[0]) {
    fail(ctx, `cos/sin caches ${shapeStr(cos.dims)}, ${shapeStr(sin.dims)} must both be [rows, ${half}]`);
  }
  if (pos.size !== B * S) fail(ctx, `positions ${shapeStr(pos.dims)} must be [${B}, ${S}]`);
  const rows = cos.dims[0]!;
  const interleaved = attrInt(ctx.node, 'interleaved', 0) === 1;
  const y = Float64Array.from(x.data);
  for (let b = 0; b < B; b++) {
    for (let s = 0; s < S; s++) {
      const p = pos.data[b * S + s]!;
      if (!(Number.isInteger(p) && p >= 0 && p < rows)) fail(ctx, `position ${p} is outside the cos/sin cache (${rows} rows)`);
      for (let n = 0; n < N; n++) {
        const o = b * sb + s * ss + n * sh;
        for (let i = 0; i < half; i++) {
          const c = cos.data[p * half + i]!;
          const sn = sin.data[p * half + i]!;
          const i1 = interleaved ? o + 2 * i : o + i;
          const i2 = interleaved ? i1 + 1 : i1 + half;
          const x1 = x.data[i1]!;
          const x2 = x.data[i2]!;
          y[i1] = x1 * c - x2 * sn;
          y[i2] = x1 * sn + x2 * c;
        }
      }
    }
  }
  return [result(x.dtype, x.dims, y)];
};

/** (B, S, N*H) -> (B, N, S, H). */
function headsFirst(x: Float64Array, B: number, S: number, N: number, H: number): Float64Array {
  const out = new Float64Array(B * N * S * H);
  for (let b = 0; b < B; b++)
    for (let s = 0; s < S; s++)
      for (let n = 0; n < N; n++) {
        const from = ((b * S + s) * N + n) * H;
        out.set(x.subarray(from, from + H), ((b * N + n) * S + s) * H);
      }
  return out;
}

/** past (B, N, P, H) ++ cur (B, N, S, H) along the sequence axis. */
function appendSeq(past: Float64Array | null, P: number, cur: Float64Array, S: number, BN: number, H: number): Float64Array {
  const T = P + S;
  const out = new Float64Array(BN * T * H);
  for (let bn = 0; bn < BN; bn++) {
    if (past && P > 0) out.set(past.subarray(bn * P * H, (bn + 1) * P * H), bn * T * H);
    out.set(cur.subarray(bn * S * H, (bn + 1) * S * H), (bn * T + P) * H);
  }
  return out;
}

const attention: Kernel = (ctx, ins) => {
  const q = input(ctx, ins, 0, 'q');
  const k = input(ctx, ins, 1, 'k');
  const v = input(ctx, ins, 2, 'v');
  const pastK = ins[3] ?? null;
  const pastV = ins[4] ?? null;
  const pad = ins[5] ?? null;
  const N = attrInt(ctx.node, 'num_heads');
  const Nkv = attrInt(ctx.node, 'kv_num_heads');
  const scale = attrFloat(ctx.node, 'scale');
  const causal = attrInt(ctx.node, 'causal', 0) === 1;
  const maskValue = attrFloat(ctx.node, 'mask_value', FLOAT32_LOWEST);
  if (N <= 0 || Nkv <= 0 || N % Nkv !== 0) fail(ctx, `num_heads ${N} must be a positive multiple of kv_num_heads ${Nkv}`);
  for (const [t, name] of [[q, 'q'], [k, 'k'], [v, 'v']] as const) if (t.dims.length !== 3) fail(ctx, `${name} must be 3-D, got ${shapeStr(t.dims)}`);
  const [B, S] = q.dims as [number, number, number];
  const H = q.dims[2]! / N;
  const Hv = v.dims[2]! / Nkv;
  if (!Number.isInteger(H) || k.dims[2] !== Nkv * H || !Number.isInteger(Hv)) {
    fail(ctx, `q ${shapeStr(q.dims)}, k ${shapeStr(k.dims)}, v ${shapeStr(v.dims)} do not split into ${N}/${Nkv} heads`);
  }
  if (k.dims[0] !== B || v.dims[0] !== B || k.dims[1] !== S || v.dims[1] !== S) fail(ctx, `q, k and v must share batch and sequence length`);
  if (!pastK !== !pastV) fail(ctx, 'past_key and past_value must be given together');
  const P = pastK ? pastK.dims[2]! : 0;
  if (pastK && (pastK.dims.length !== 4 || pastK.dims[0] !== B || pastK.dims[1] !== Nkv || pastK.dims[3] !== H)) {
    fail(ctx, `past_key ${shapeStr(pastK.dims)} does not match [${B}, ${Nkv}, past, ${H}]`);
  }
  if (pastV && (pastV.dims.length !== 4 || pastV.dims[0] !== B || pastV.dims[1] !== Nkv || pastV.dims[2] !== P || pastV.dims[3] !== Hv)) {
    fail(ctx, `past_value ${shapeStr(pastV.dims)} does not match [${B}, ${Nkv}, ${P}, ${Hv}]`);
  }
  const T = P + S;
  if (pad) {
    if (pad.size !== B * T) fail(ctx, `padding_mask ${shapeStr(pad.dims)} must be [${B}, ${T}]`);
    for (const m of pad.data) if (m !== 0 && m !== 1) fail(ctx, `padding_mask values must be 0 or 1, got ${m}`);
  }
  const Q = headsFirst(q.data, B, S, N, H);
  const presentK = appendSeq(pastK?.data ?? null, P, headsFirst(k.data, B, S, Nkv, H), S, B * Nkv, H);
  const presentV = appendSeq(pastV?.data ?? null, P, headsFirst(v.data, B, S, Nkv, Hv), S, B * Nkv, Hv);
  const group = N / Nkv;
  const y = new Float64Array(B * S * N * Hv);
  const row = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let n = 0; n < N; n++) {
      const kv = (b * Nkv + Math.floor(n / group)) * T;
      for (let i = 0; i < S; i++) {
        const qo = ((b * N + n) * S + i) * H;
        let max = -Infinity;
        for (let j = 0; j < T; j++) {
          let s: number;
          if ((causal && j > P + i) || (pad && pad.data[b * T + j] === 0)) s = maskValue;
          else {
            s = 0;
            const ko = (kv + j) * H;
            for (let h = 0; h < H; h++) s += Q[qo + h]! * presentK[ko + h]!;
            s *= scale;
          }
          row[j] = s;
          if (s > max) max = s;
        }
        let sum = 0;
        for (let j = 0; j < T; j++) {
          const e = Math.exp(row[j]! - max);
          row[j] = e;
          sum += e;
        }
        const yo = ((b * S + i) * N + n) * Hv;
        for (let j = 0; j < T; j++) {
          const w = row[j]! / sum;
          if (w === 0) continue;
          const vo = (kv + j) * Hv;
          for (let h = 0; h < Hv; h++) y[yo + h] += w * presentV[vo + h]!;
        }
      }
    }
  }
  return [
    result(q.dtype, [B, S, N * Hv], y),
    result(pastK?.dtype ?? k.dtype, [B, Nkv, T, H], presentK),
    result(pastV?.dtype ?? v.dtype, [B, Nkv, T, Hv], presentV),
  ];
};

const siluOf = (x: number): number => x / (1 + Math.exp(-x));

const silu: Kernel = (ctx, ins) => {
  const x = input(ctx, ins, 0, 'x');
  return [result(x.dtype, x.dims, x.data.map(siluOf))];
};

const swiglu: Kernel = (ctx, ins) => {
  const g = input(ctx, ins, 0, 'gate');
  const u = ins[1] ?? null;
  if (u) {
    const dims = broadcastShapes(ctx, [g.dims, u.dims]);
    return [result(g.dtype, dims, mapBinary(g.data, g.dims, u.data, u.dims, dims, (a, b) => siluOf(a) * b))];
  }
  const D = g.dims[g.dims.length - 1] ?? 0;
  if (D % 2 !== 0) fail(ctx, `a fused gate/up input needs an even last dim, got ${shapeStr(g.dims)}`);
  const half = D / 2;
  const rows = g.size / D;
  const out = new Float64Array(rows * half);
  for (let r = 0; r < rows; r++) for (let j = 0; j < half; j++) out[r * half + j] = siluOf(g.data[r * D + j]!) * g.data[r * D + half + j]!;
  return [result(g.dtype, [...g.dims.slice(0, -1), half], out)];
};

const embedding: Kernel = (ctx, ins) => {
  const ids = input(ctx, ins, 0, 'ids');
  const table = input(ctx, ins, 1, 'table');
  if (table.dims.length !== 2) fail(ctx, `table must be 2-D, got ${shapeStr(table.dims)}`);
  const [V, D] = table.dims as [number, number];
  const out = new Float64Array(ids.size * D);
  ids.data.forEach((id, i) => {
    if (!(Number.isInteger(id) && id >= -V && id < V)) fail(ctx, `id ${id} is outside the table (${V} rows)`);
    const row = id < 0 ? id + V : id;
    out.set(table.data.subarray(row * D, (row + 1) * D), i * D);
  });
  return [result(table.dtype, [...ids.dims, D], out)];
};

function binary(f: (a: number, b: number) => number): Kernel {
  return (ctx, ins) => {
    const a = input(ctx, ins, 0, 'a');
    const b = input(ctx, ins, 1, 'b');
    const dims = broadcastShapes(ctx, [a.dims, b.dims]);
    return [result(a.dtype, dims, mapBinary(a.data, a.dims, b.data, b.dims, dims, f))];
  };
}

const softmax: Kernel = (ctx, ins) => {
  const x = input(ctx, ins, 0, 'x');
  if (x.dims.length === 0) return [result(x.dtype, [], Float64Array.of(1))];
  const axis = normAxis(ctx, attrInt(ctx.node, 'axis', -1), x.dims.length);
  const outer = product(x.dims, 0, axis);
  const n = x.dims[axis]!;
  const inner = product(x.dims, axis + 1);
  const out = new Float64Array(x.size);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < inner; j++) {
      const base = o * n * inner + j;
      let max = -Infinity;
      for (let k = 0; k < n; k++) max = Math.max(max, x.data[base + k * inner]!);
      let sum = 0;
      for (let k = 0; k < n; k++) sum += out[base + k * inner] = Math.exp(x.data[base + k * inner]! - max);
      for (let k = 0; k < n; k++) out[base + k * inner] = out[base + k * inner]! / sum;
    }
  }
  return [result(x.dtype, x.dims, out)];
};

const split: Kernel = (ctx, ins) => {
  const x = input(ctx, ins, 0, 'x');
  const sizes = attrInts(ctx.node, 'sizes');
  const D = x.dims[x.dims.length - 1] ?? 0;
  if (sizes.reduce((a, n) => a + n, 0) !== D) fail(ctx, `sizes [${sizes.join(', ')}] do not sum to the last dim of ${shapeStr(x.dims)}`);
  const rows = x.size / D;
  let offset = 0;
  return sizes.map((w) => {
    const out = new Float64Array(rows * w);
    for (let r = 0; r < rows; r++) out.set(x.data.subarray(r * D + offset, r * D + offset + w), r * w);
    offset += w;
    return result(x.dtype, [...x.dims.slice(0, -1), w], out);
  });
};

/** Kernels of the `fhec` domain, by op name. */
export const canonicalKernels: Record<string, Kernel> = {
  linear,
  rms_norm: rmsNorm,
  rope,
  attention,
  silu,
  swiglu,
  embedding,
  add: binary((a, b) => a + b),
  mul: binary((a, b) => a * b),
  softmax,
  split,
};
