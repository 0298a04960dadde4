// Derived weights that stay lazy: a transposed, row-scaled or column-concatenated view of constants
// computes its values on load(), so raising and folding a large model reads no weight bytes.

import type { DType } from '../../ir/dtype.js';
import type { LazyTensor } from '../../ir/graph/types.js';
import { castArray } from '../../ir/numeric.js';
import { Tensor } from '../../ir/tensor.js';
import type { WeightRecipe } from '../../ir/weights/recipe.js';

/** A 2-D constant, transposed. */
export class TransposedTensor implements LazyTensor {
  constructor(private readonly base: LazyTensor) {}
  get dtype(): DType {
    return this.base.dtype;
  }
  get dims(): readonly number[] {
    return [this.base.dims[1]!, this.base.dims[0]!];
  }
  get location(): string {
    return `transpose(${this.base.location})`;
  }
  get byteLength(): number {
    return this.base.byteLength;
  }
  recipe(): WeightRecipe | undefined {
    const of = this.base.recipe?.();
    return of && { op: 'transpose', of };
  }
  load(): Tensor {
    const t = this.base.load();
    const [R, C] = t.dims as [number, number];
    const out = new Float64Array(R * C);
    for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) out[c * R + r] = t.data[r * C + c]!;
    return new Tensor(t.dtype, [C, R], out);
  }
}

/** Row k of a [K, N] constant times scale[k], rounded to the constant's dtype. */
export class RowScaledTensor implements LazyTensor {
  constructor(private readonly base: LazyTensor, private readonly scale: Float64Array) {}
  get dtype(): DType {
    return this.base.dtype;
  }
  get dims(): readonly number[] {
    return this.base.dims;
  }
  get location(): string {
    return `scale_rows(${this.base.location})`;
  }
  get byteLength(): number {
    return this.base.byteLength;
  }
  recipe(): WeightRecipe | undefined {
    const of = this.base.recipe?.();
    return of && { op: 'scale_rows', of, scale: Array.from(this.scale) };
  }
  /** The exact products, before rounding to the dtype. */
  exact(): Float64Array {
    const t = this.base.load();
    const [K, N] = t.dims as [number, number];
    const out = new Float64Array(K * N);
    for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) out[k * N + n] = this.scale[k]! * t.data[k * N + n]!;
    return out;
  }
  load(): Tensor {
    return new Tensor(this.dtype, this.dims, castArray(this.exact(), this.dtype));
  }
}

/** [K, N1], [K, N2], ... side by side: [K, N1 + N2 + ...]. */
export class ColumnConcatTensor implements LazyTensor {
  constructor(private readonly parts: readonly LazyTensor[]) {}
  get dtype(): DType {
    return this.parts[0]!.dtype;
  }
  get dims(): readonly number[] {
    return [this.parts[0]!.dims[0]!, this.parts.reduce((a, p) => a + p.dims[p.dims.length - 1]!, 0)];
  }
  get location(): string {
    return `concat_columns(${this.parts.map((p) => p.location).join(', ')})`;
  }
  get byteLength(): number {
    return this.parts.reduce((a, p) => a + p.byteLength, 0);
  }
  recipe(): WeightRecipe | undefined {
    const parts = this.parts.map((p) => p.recipe?.());
    return parts.every((p) => p !== undefined) ? { op: 'concat_columns', parts: parts as WeightRecipe[] } : undefined;
  }
  load(): Tensor {
    const [K, total] = this.dims as [number, number];
    const out = new Float64Array(K * total);
    let off = 0;
    for (const p of this.parts) {
      const t = p.load();
      const N = t.dims[t.dims.length - 1]!;
      const rows = t.size / N;
      for (let k = 0; k < rows; k++) out.set(t.data.subarray(k * N, (k + 1) * N), k * total + off);
      off += N;
    }
    return new Tensor(this.dtype, this.dims, out);
  }
}

/** The given columns of a [K, N] constant, in order (or entries of an [N] one, for biases). */
export class ColumnSelectTensor implements LazyTensor {
  constructor(private readonly base: LazyTensor, private readonly columns: readonly number[]) {}
  get dtype(): DType {
    return this.base.dtype;
  }
  get dims(): readonly number[] {
    return [...this.base.dims.slice(0, -1), this.columns.length];
  }
  get location(): string {
    const c = this.columns;
    const contiguous = c.every((v, i) => v === c[0]! + i);
    return `columns(${this.base.location}, ${contiguous && c.length ? `${c[0]}:${c[0]! + c.length}` : `${c.length} of ${this.base.dims[this.base.dims.length - 1]}`})`;
  }
  get byteLength(): number {
    return Math.round((this.base.byteLength * this.columns.length) / this.base.dims[this.base.dims.length - 1]!);
  }
  recipe(): WeightRecipe | undefined {
    const of = this.base.recipe?.();
    return of && { op: 'select_columns', of, columns: [...this.columns] };
  }
  load(): Tensor {
    const t = this.base.load();
    const N = t.dims[t.dims.length - 1]!;
    const rows = t.size / N;
    const W = this.columns.length;
    const out = new Float64Array(rows * W);
    for (let k = 0; k < rows; k++) for (let j = 0; j < W; j++) out[k * W + j] = t.data[k * N + this.columns[j]!]!;
    return new Tensor(t.dtype, this.dims, out);
  }
}
