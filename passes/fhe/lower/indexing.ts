// Element index maps between tensors of concrete shapes: numpy broadcasting and transposition.
// Lowerings move requirements from an op's output to its operands with them.

import { FhecError } from '../../../ir/errors.js';
import { numel, stridesOf } from '../../../ir/tensor.js';

/** index[e] = the element of a tensor of `dims` that feeds element e of `outDims` under broadcasting. */
export function broadcastIndex(outDims: readonly number[], dims: readonly number[]): Int32Array {
  const rank = outDims.length;
  if (dims.length > rank) throw new FhecError(`cannot broadcast [${dims.join(', ')}] to [${outDims.join(', ')}]`);
  const pad = rank - dims.length;
  const inStrides = stridesOf(dims);
  const stride = outDims.map((d, i) => {
    const k = i - pad;
    if (k < 0) return 0;
    const dk = dims[k]!;
    if (dk === d) return inStrides[k]!;
    if (dk === 1) return 0;
    throw new FhecError(`cannot broadcast [${dims.join(', ')}] to [${outDims.join(', ')}]`);
  });
  return broadcastLike(outDims, stride);
}

/** Output dims of numpy broadcasting of concrete shapes. */
export function broadcastDims(a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1;
    const y = b[b.length - rank + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) throw new FhecError(`cannot broadcast [${a.join(', ')}] and [${b.join(', ')}]`);
    out.push(x === 1 ? y : x);
  }
  return out;
}

/** index[e] = the element of the input that lands at element e of Transpose(input, perm). */
export function transposeIndex(dims: readonly number[], perm: readonly number[]): Int32Array {
  const outDims = perm.map((p) => dims[p]!);
  const inStrides = stridesOf(dims);
  return broadcastLike(outDims, perm.map((p) => inStrides[p]!));
}

function broadcastLike(outDims: readonly number[], stride: readonly number[]): Int32Array {
  const n = numel(outDims);
  const out = new Int32Array(n);
  const idx = new Array<number>(outDims.length).fill(0);
  let at = 0;
  for (let e = 0; e < n; e++) {
    out[e] = at;
    for (let i = outDims.length - 1; i >= 0; i--) {
      idx[i]!++;
      at += stride[i]!;
      if (idx[i]! < outDims[i]!) break;
      at -= stride[i]! * idx[i]!;
      idx[i] = 0;
    }
  }
  return out;
}
