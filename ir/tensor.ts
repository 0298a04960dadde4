// A dense tensor value: dtype, concrete dims, row-major data held as float64.
// int64 index tensors are exact up to 2^53, which covers every shape and index we meet.

import { castArray } from './numeric.js';
import type { DType } from './dtype.js';

export class Tensor {
  constructor(
    readonly dtype: DType,
    readonly dims: readonly number[],
    readonly data: Float64Array,
  ) {
    const n = numel(dims);
    if (data.length !== n) {
      throw new Error(`tensor data has ${data.length} elements but dims [${dims.join(', ')}] need ${n}`);
    }
  }

  get size(): number {
    return this.data.length;
  }

  get rank(): number {
    return this.dims.length;
  }

  /** New tensor with values rounded/wrapped to `dtype`. */
  static from(dtype: DType, dims: readonly number[], values: ArrayLike<number>): Tensor {
    return new Tensor(dtype, [...dims], castArray(Float64Array.from(values), dtype));
  }

  static scalar(dtype: DType, value: number): Tensor {
    return Tensor.from(dtype, [], [value]);
  }

  static zeros(dtype: DType, dims: readonly number[]): Tensor {
    return new Tensor(dtype, [...dims], new Float64Array(numel(dims)));
  }

  /** Same data, other dims (no copy). */
  reshape(dims: readonly number[]): Tensor {
    return new Tensor(this.dtype, [...dims], this.data);
  }

  /** Integer values as a plain array (shape tensors, axes, indices). */
  toNumbers(): number[] {
    return Array.from(this.data);
  }
}

export function numel(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

export function stridesOf(dims: readonly number[]): number[] {
  const s = new Array<number>(dims.length);
  let acc = 1;
  for (let i = dims.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= dims[i]!;
  }
  return s;
}
