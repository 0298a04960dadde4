// Strided views and multidirectional (numpy) broadcasting over row-major Float64Array data.
// One odometer walks the output; the innermost dimension runs as a plain loop.

import { stridesOf } from '../../ir/tensor.js';
import { fail, shapeStr, type KernelContext } from './kernel.js';

/** Broadcast result of several shapes, or a node-naming error. */
export function broadcastShapes(ctx: KernelContext, shapes: readonly (readonly number[])[]): number[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const o = rank - s.length + i;
      const d = s[i]!;
      if (out[o] === 1) out[o] = d;
      else if (d !== 1 && d !== out[o]) {
        fail(ctx, `shapes ${shapes.map(shapeStr).join(' and ')} cannot be broadcast together`);
      }
    }
  }
  return out;
}

/** Element strides of `dims` read as `outDims` (0 along broadcast axes). */
export function broadcastStrides(dims: readonly number[], outDims: readonly number[]): number[] {
  const s = stridesOf(dims);
  const r = outDims.length;
  const out = new Array<number>(r).fill(0);
  for (let i = 0; i < dims.length; i++) {
    const o = r - dims.length + i;
    out[o] = dims[i] === 1 && outDims[o] !== 1 ? 0 : s[i]!;
  }
  return out;
}

/** Copies src[offset + sum(idx_k * strides_k)] for every index of outDims into a new array. */
export function gatherStrided(
  src: Float64Array,
  offset: number,
  strides: readonly number[],
  outDims: readonly number[],
): Float64Array {
  let n = 1;
  for (const d of outDims) n *= d;
  const out = new Float64Array(n);
  if (n === 0) return out;
  const r = outDims.length;
  if (r === 0) {
    out[0] = src[offset]!;
    return out;
  }
  const last = outDims[r - 1]!;
  const ls = strides[r - 1]!;
  const idx = new Array<number>(r).fill(0);
  let base = offset;
  for (let o = 0; o < n; o += last) {
    if (ls === 1) out.set(src.subarray(base, base + last), o);
    else for (let j = 0, p = base; j < last; j++, p += ls) out[o + j] = src[p]!;
    for (let k = r - 2; k >= 0; k--) {
      idx[k]++;
      base += strides[k]!;
      if (idx[k]! < outDims[k]!) break;
      base -= strides[k]! * outDims[k]!;
      idx[k] = 0;
    }
  }
  return out;
}

/** Materializes `data` (shape dims) broadcast to outDims; returns the same array when no copy is needed. */
export function broadcastTo(data: Float64Array, dims: readonly number[], outDims: readonly number[]): Float64Array {
  let n = 1;
  for (const d of outDims) n *= d;
  if (data.length === n) return data;
  return gatherStrided(data, 0, broadcastStrides(dims, outDims), outDims);
}

/** out[i] = f(a[i'], b[i'']) over the broadcast of the two shapes. */
export function mapBinary(
  a: Float64Array,
  aDims: readonly number[],
  b: Float64Array,
  bDims: readonly number[],
  outDims: readonly number[],
  f: (x: number, y: number) => number,
): Float64Array {
  let n = 1;
  for (const d of outDims) n *= d;
  const out = new Float64Array(n);
  if (n === 0) return out;
  if (a.length === n && b.length === n) {
    for (let i = 0; i < n; i++) out[i] = f(a[i]!, b[i]!);
    return out;
  }
  if (b.length === 1 && a.length === n) {
    const y = b[0]!;
    for (let i = 0; i < n; i++) out[i] = f(a[i]!, y);
    return out;
  }
  if (a.length === 1 && b.length === n) {
    const x = a[0]!;
    for (let i = 0; i < n; i++) out[i] = f(x, b[i]!);
    return out;
  }
  const r = outDims.length;
  const sa = broadcastStrides(aDims, outDims);
  const sb = broadcastStrides(bDims, outDims);
  const last = outDims[r - 1]!;
  const la = sa[r - 1]!;
  const lb = sb[r - 1]!;
  const idx = new Array<number>(r).fill(0);
  let oa = 0;
  let ob = 0;
  for (let o = 0; o < n; o += last) {
    for (let j = 0; j < last; j++) out[o + j] = f(a[oa + j * la]!, b[ob + j * lb]!);
    for (let k = r - 2; k >= 0; k--) {
      idx[k]++;
      oa += sa[k]!;
      ob += sb[k]!;
      if (idx[k]! < outDims[k]!) break;
      oa -= sa[k]! * outDims[k]!;
      ob -= sb[k]! * outDims[k]!;
      idx[k] = 0;
    }
  }
  return out;
}
