// Rotary position embedding: ONNX RotaryEmbedding (opset 23) and com.microsoft::RotaryEmbedding.
// Both rotate pairs (x1, x2) -> (x1 cos - x2 sin, x1 sin + x2 cos) over the first rotary_dim channels
// of each head; pairs are the two halves (interleaved=0) or adjacent channels (interleaved=1).

import { attrInt } from '../../../ir/graph/attrs.js';
import type { Tensor } from '../../../ir/tensor.js';
import { fail, input, result, shapeStr, type Kernel, type KernelContext } from '../kernel.js';

export interface RotaryLayout {
  batch: number;
  seq: number;
  heads: number;
  headSize: number;
  /** Element strides of the (batch, seq, head) axes; channels are contiguous. */
  sb: number;
  ss: number;
  sh: number;
}

/** Layout of a 3-D (B, S, N*H) or 4-D (B, N, S, H) tensor. */
export function rotaryLayout(ctx: KernelContext, d: readonly number[], heads: number, headSize: number | undefined): RotaryLayout {
  if (d.length === 4) {
    const [B, N, S, H] = d as [number, number, number, number];
    return { batch: B, seq: S, heads: N, headSize: H, sb: N * S * H, ss: H, sh: S * H };
  }
  if (d.length !== 3) fail(ctx, `input must be 3-D or 4-D, got ${shapeStr(d)}`);
  const [B, S, D] = d as [number, number, number];
  const H = headSize ?? (heads > 0 ? D / heads : NaN);
  const N = heads > 0 ? heads : D / H;
  if (!Number.isInteger(H) || !Number.isInteger(N) || N * H !== D) fail(ctx, `cannot split hidden size ${D} into heads (num_heads ${heads})`);
  return { batch: B, seq: S, heads: N, headSize: H, sb: S * D, ss: D, sh: H };
}

/**
 * Rotates x in the given layout. `cosSinRow(b, s)` gives the offset of the cos/sin row (half entries)
 * for batch b and position s.
 */
export function applyRotary(
  x: Float64Array,
  L: RotaryLayout,
  rotaryDim: number,
  interleaved: boolean,
  cos: Float64Array,
  sin: Float64Array,
  cosSinRow: (b: number, s: number) => number,
): Float64Array {
  const out = Float64Array.from(x);
  const half = rotaryDim / 2;
  for (let b = 0; b < L.batch; b++) {
    for (let s = 0; s < L.seq; s++) {
      const row = cosSinRow(b, s);
      for (let n = 0; n < L.heads; n++) {
        const o = b * L.sb + s * L.ss + n * L.sh;
        for (let i = 0; i < half; i++) {
          const c = cos[row + i]!;
          const sn = sin[row + i]!;
          const i1 = interleaved ? o + 2 * i : o + i;
          const i2 = interleaved ? i1 + 1 : i1 + half;
          const x1 = x[i1]!;
          const x2 = x[i2]!;
          out[i1] = x1 * c - x2 * sn;
          out[i2] = x1 * sn + x2 * c;
        }
      }
    }
  }
  return out;
}

function positionAt(ctx: KernelContext, pos: Tensor, idx: number, maxPos: number): number {
  const p = pos.data[idx]!;
  if (!(p >= 0 && p < maxPos)) fail(ctx, `position id ${p} is outside the cos/sin cache (${maxPos} rows)`);
  return p;
}

/** ONNX RotaryEmbedding-23: X, cos_cache, sin_cache, position_ids?. */
const onnxRotary: Kernel = (ctx, ins) => {
  const x = input(ctx, ins, 0, 'X');
  const cos = input(ctx, ins, 1, 'cos_cache');
  const sin = input(ctx, ins, 2, 'sin_cache');
  const pos = ins[3] ?? null;
  const L = rotaryLayout(ctx, x.dims, attrInt(ctx.node, 'num_heads', 0), undefined);
  const rd = attrInt(ctx.node, 'rotary_embedding_dim', 0) || L.headSize;
  const half = rd / 2;
  if (rd > L.headSize || rd % 2 !== 0) fail(ctx, `rotary_embedding_dim ${rd} does not fit head size ${L.headSize}`);
  if (cos.dims[cos.dims.length - 1] !== half || sin.dims[sin.dims.length - 1] !== half) {
    fail(ctx, `cos/sin caches ${shapeStr(cos.dims)} must end in rotary_dim/2 = ${half}`);
  }
  let row: (b: number, s: number) => number;
  if (pos) {
    const maxPos = cos.dims[0]!;
    row = (b, s) => positionAt(ctx, pos, b * L.seq + s, maxPos) * half;
  } else {
    if (cos.dims.length !== 3 || cos.dims[0] !== L.batch || cos.dims[1] !== L.seq) {
      fail(ctx, `without position_ids the caches must be [batch, seq, ${half}], got ${shapeStr(cos.dims)}`);
    }
    row = (b, s) => (b * L.seq + s) * half;
  }
  const y = applyRotary(x.data, L, rd, attrInt(ctx.node, 'interleaved', 0) === 1, cos.data, sin.data, row);
  return [result(x.dtype, x.dims, y)];
};

/** com.microsoft RotaryEmbedding: input, position_ids, cos_cache, sin_cache (scale is unused on CPU). */
const msRotary: Kernel = (ctx, ins) => {
  const x = input(ctx, ins, 0, 'input');
  const pos = input(ctx, ins, 1, 'position_ids');
  const cos = input(ctx, ins, 2, 'cos_cache');
  const sin = input(ctx, ins, 3, 'sin_cache');
  if (attrInt(ctx.node, 'is_packed_batching', 0) !== 0) fail(ctx, 'is_packed_batching is not supported', 'is_packed_batching');
  if (cos.dims.length !== 2) fail(ctx, `cos_cache must be 2-D, got ${shapeStr(cos.dims)}`);
  const numHeads = attrInt(ctx.node, 'num_heads', 0);
  const rdAttr = attrInt(ctx.node, 'rotary_embedding_dim', 0);
  // ORT: with rotary_embedding_dim 0 the head size is twice the cache width.
  const L = rotaryLayout(ctx, x.dims, numHeads, x.dims.length === 3 && rdAttr === 0 ? cos.dims[1]! * 2 : undefined);
  const rd = rdAttr || L.headSize;
  const half = rd / 2;
  if (cos.dims[1] !== half) fail(ctx, `cos_cache ${shapeStr(cos.dims)} must have ${half} columns`);
  const maxPos = cos.dims[0]!;
  const row =
    pos.size === 1
      ? (_b: number, s: number) => {
          const p = pos.data[0]! + s;
          if (p >= maxPos) fail(ctx, `position ${p} is outside the cos/sin cache (${maxPos} rows)`);
          return p * half;
        }
      : (b: number, s: number) => positionAt(ctx, pos, b * L.seq + s, maxPos) * half;
  const y = applyRotary(x.data, L, rd, attrInt(ctx.node, 'interleaved', 0) === 1, cos.data, sin.data, row);
  return [result(x.dtype, x.dims, y)];
};

export const rotaryKernels: Record<string, Kernel> = { RotaryEmbedding: onnxRotary };
export const msRotaryKernels: Record<string, Kernel> = { RotaryEmbedding: msRotary };
