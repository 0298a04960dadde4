// A weight that only declares its dtype and dims: enough to build, inspect and export
// (with sparse external data) a full-size model graph without allocating its weights.

import { byteSize, type DType } from '../../ir/dtype.js';
import { FhecError } from '../../ir/errors.js';
import { numel, type Tensor } from '../../ir/tensor.js';
import type { LazyTensor } from '../../ir/graph/types.js';

export class DeclaredTensor implements LazyTensor {
  readonly dims: readonly number[];
  readonly byteLength: number;
  readonly location = 'declared';

  constructor(
    readonly dtype: DType,
    dims: readonly number[],
    /** Name for the error when someone asks for the values. */
    readonly name = '',
  ) {
    this.dims = [...dims];
    this.byteLength = numel(dims) * byteSize(dtype);
  }

  load(): Tensor {
    throw new FhecError('the tensor is declared only (dtype and dims), it has no values', {
      field: this.name ? `tensor '${this.name}'` : undefined,
    });
  }
}
