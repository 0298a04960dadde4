// Raises matrix products with a constant weight to `fhec::linear` (weight [K, N], optional bias [N]):
// MatMul(x, W), MatMul(x, Transpose(W')) as opset-23 exports write torch-layout weights (the transpose
// is taken lazily, so large weights are not read here), Gemm without transA/alpha/beta scaling, and a
// following Add of a constant [N] as the bias.

import { attrFloat, attrInt } from '../../ir/graph/attrs.js';
import type { Graph, Value } from '../../ir/graph/types.js';
import { isFloat } from '../../ir/dtype.js';
import type { Pass } from '../pass.js';
import { concreteShape, producedBy, raised, Rewriter, sameDims, TransposedTensor, transposePerm, where } from './rewrite.js';

/** The constant [K, N] weight of a MatMul's second operand, seeing through a 2-D Transpose. */
function weightOf(rw: Rewriter, v: Value | null | undefined, transposed: boolean): Value | undefined {
  if (!v) return undefined;
  if (v.constant && v.constant.dims.length === 2) {
    return transposed ? rw.constant(`${v.name}.T`, new TransposedTensor(v.constant)) : v;
  }
  const t = producedBy(v, 'Transpose');
  const w = t?.inputs[0];
  if (t && w?.constant && w.constant.dims.length === 2 && sameDims(transposePerm(t), [1, 0]) && !transposed) {
    return rw.constant(`${w.name}.T`, new TransposedTensor(w.constant));
  }
  return undefined;
}

/** A constant [N] added to `out` by its only reader: the bias of the product `out`, and the sum. */
export function biasAddAfter(rw: Rewriter, out: Value, N: number): { bias: Value; out: Value } | undefined {
  const add = rw.soleUse(out);
  if (!add || add.op !== 'Add' || add.domain !== '') return undefined;
  const b = add.inputs[0] === out ? add.inputs[1] : add.inputs[0];
  if (!b?.constant || b.constant.dims.length !== 1 || b.constant.dims[0] !== N) return undefined;
  return { bias: b, out: add.outputs[0]! };
}

export const raiseLinearPass: Pass<Graph, Record<string, never>> = {
  name: 'raise-linear',
  summary: 'raise MatMul/Gemm with a constant weight (and a constant bias Add) to fhec::linear',
  reads: 'graph',
  writes: 'canonical',
  options: [],
  run(graph) {
    const rw = new Rewriter(graph);
    const notes: string[] = [];
    let count = 0;
    let biases = 0;
    for (const node of [...graph.nodes]) {
      if (node.domain !== '' || (node.op !== 'MatMul' && node.op !== 'Gemm')) continue;
      const x = node.inputs[0];
      if (!x || !isFloat(x.dtype) || (concreteShape(x)?.length ?? x.shape?.length ?? 0) < 1) continue;
      let bias: Value | null = null;
      let w: Value | undefined;
      if (node.op === 'Gemm') {
        if (attrInt(node, 'transA', 0) !== 0 || attrFloat(node, 'alpha', 1) !== 1 || attrFloat(node, 'beta', 1) !== 1) {
          notes.push(`${where(node)}: left alone: Gemm with transA or alpha/beta scaling`);
          continue;
        }
        w = weightOf(rw, node.inputs[1], attrInt(node, 'transB', 0) === 1);
        bias = node.inputs[2] ?? null;
      } else {
        w = weightOf(rw, node.inputs[1], false);
      }
      if (!w) continue;
      const N = w.constant!.dims[1]!;
      if (bias && !(bias.constant && bias.constant.dims.length === 1 && bias.constant.dims[0] === N)) {
        notes.push(`${where(node)}: left alone: Gemm's C is not a constant [${N}]`);
        continue;
      }
      let out: Value = node.outputs[0]!;
      const add = bias ? undefined : biasAddAfter(rw, out, N);
      if (add) {
        ({ bias, out } = add);
        biases++;
      }
      const lin = rw.canonical('linear', [x, w, bias], [{ name: `${node.name}.linear`, dtype: out.dtype, shape: out.shape }], {}, node);
      rw.replace(out, lin.outputs[0]!);
      count++;
    }
    rw.finish();
    return raised(count > 0, { raised: count, biases }, notes);
  },
};
