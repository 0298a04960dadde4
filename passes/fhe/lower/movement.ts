// Identity, Reshape, Flatten, Squeeze, Unsqueeze and Transpose move no data under encryption: the
// lowering tracks which element every slot holds, so these ops only relabel elements (free, no FHE op).

import { Tensor, numel } from '../../../ir/tensor.js';
import type { EncOperand, Operand } from './context.js';
import { transposeIndex } from './indexing.js';

/** Same elements in the same row-major order, other dims. */
export function lowerReshape(x: Operand, outDims: number[]): Operand {
  if (x.kind === 'plain') return { kind: 'plain', tensor: x.tensor.reshape(outDims) };
  return { ...x, dims: outDims };
}

export function lowerTranspose(x: Operand, perm: number[]): Operand {
  const dims = x.kind === 'plain' ? [...x.tensor.dims] : x.dims;
  const outDims = perm.map((p) => dims[p]!);
  // src[e] = input element at output element e.
  const src = transposeIndex(dims, perm);
  if (x.kind === 'plain') {
    const values = new Float64Array(src.length);
    for (let e = 0; e < src.length; e++) values[e] = x.tensor.data[src[e]!]!;
    return { kind: 'plain', tensor: new Tensor(x.tensor.dtype, outDims, values) };
  }
  if (x.kind === 'input') {
    const source = new Int32Array(src.length);
    for (let e = 0; e < src.length; e++) source[e] = x.source[src[e]!]!;
    return { kind: 'input', dims: outDims, input: x.input, source };
  }
  const newOf = new Int32Array(numel(dims));
  for (let e = 0; e < src.length; e++) newOf[src[e]!] = e;
  const blocks = x.blocks.map((b) => ({ ct: b.ct, holds: b.holds.map((h) => (h >= 0 ? newOf[h]! : h)) }));
  return { kind: 'enc', dims: outDims, blocks } satisfies EncOperand;
}
