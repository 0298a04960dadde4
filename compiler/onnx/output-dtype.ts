// Element type of a node output that the ONNX file gives no type for (exporters often write no
// value_info). The IR needs a dtype on every value; this is the rule ONNX's type constraints give
// for the ops we meet, and "same as the first input" otherwise. Shape inference refines it later.

import { dtypeFromOnnx, type DType } from '../../ir/dtype.js';
import type { Node } from '../../ir/graph/types.js';

const ALWAYS_INT64 = new Set(['Shape', 'Size', 'NonZero', 'ArgMax', 'ArgMin']);
const ALWAYS_BOOL = new Set([
  'Equal', 'Greater', 'GreaterOrEqual', 'Less', 'LessOrEqual', 'And', 'Or', 'Xor', 'Not', 'IsNaN', 'IsInf',
]);

/** dtype of output `index` of `node`; inputs must already have their dtypes. */
export function inferOutputDtype(node: Node, index: number): DType {
  const first = node.inputs.find((v) => v !== null)?.dtype ?? 'float32';
  if (node.domain !== '') return first;
  const op = node.op;
  if (ALWAYS_INT64.has(op)) return 'int64';
  if (ALWAYS_BOOL.has(op)) return 'bool';
  switch (op) {
    case 'Cast': {
      const to = node.attrs['to'];
      return (to?.kind === 'int' ? dtypeFromOnnx(to.value) : undefined) ?? first;
    }
    case 'CastLike': return node.inputs[1]?.dtype ?? first;
    case 'ConstantOfShape': {
      const v = node.attrs['value'];
      return v?.kind === 'tensor' ? v.value.dtype : 'float32';
    }
    case 'Where': return node.inputs[1]?.dtype ?? first;
    case 'TopK': return index === 1 ? 'int64' : first;
    case 'Unique': return index === 0 ? first : 'int64';
    case 'LayerNormalization': return index === 0 ? first : 'float32';
    case 'DequantizeLinear': return node.inputs[1]?.dtype ?? 'float32';
    default: return first;
  }
}
