// Drops casts that do not change anything: Cast to the dtype the value already has (PyTorch's RMSNorm
// export wraps its body in two fp32->fp32 casts), Cast-Cast chains that only widen and come back, and
// Identity. Readers then see the real value, which is what the pattern matchers expect.

import type { Graph, Node, Value } from '../../ir/graph/types.js';
import { dtypeFromOnnx, type DType } from '../../ir/dtype.js';
import { attrInt } from '../../ir/graph/attrs.js';
import { result, type Pass } from '../pass.js';
import { Rewriter } from './rewrite.js';

function castTarget(node: Node): DType | undefined {
  return dtypeFromOnnx(attrInt(node, 'to'));
}

/** Types whose every value converts exactly to float64 and back (so x -> wide -> x is the identity). */
const EXACT_IN: Record<string, readonly DType[]> = {
  float16: ['float16', 'float32', 'float64'],
  bfloat16: ['bfloat16', 'float32', 'float64'],
  float32: ['float32', 'float64'],
  int32: ['int32', 'int64', 'float64'],
  int8: ['int8', 'int16', 'int32', 'int64', 'float32', 'float64'],
};

/** The value a no-op node passes through, or undefined. */
function passedThrough(node: Node): Value | undefined {
  if (node.domain !== '' && node.domain !== 'ai.onnx') return undefined;
  const x = node.inputs[0];
  if (!x) return undefined;
  if (node.op === 'Identity') return x;
  if (node.op !== 'Cast') return undefined;
  const to = castTarget(node);
  if (to === x.dtype) return x;
  // Cast(Cast(y, wide), back) with y's type exactly representable in `wide`: the identity on y.
  const inner = x.producer;
  if (inner && inner.op === 'Cast' && (inner.domain === '' || inner.domain === 'ai.onnx')) {
    const y = inner.inputs[0];
    if (y && to === y.dtype && EXACT_IN[y.dtype]?.includes(x.dtype)) return y;
  }
  return undefined;
}

export const dropNoopCastsPass: Pass<Graph, Record<string, never>> = {
  name: 'drop-noop-casts',
  summary: 'remove Cast to the same dtype, exact widen-and-back Cast pairs, and Identity',
  reads: 'graph',
  writes: 'graph',
  options: [],
  run(graph) {
    const rw = new Rewriter(graph);
    let dropped = 0;
    const notes: string[] = [];
    for (const node of graph.nodes) {
      const y = node.outputs[0]!;
      const x = passedThrough(node);
      if (!x) continue;
      if (rw.isGraphOutput(y) && (!x.producer || rw.isGraphOutput(x))) {
        // A graph input or another output passed straight through: the node must stay to keep both names.
        notes.push(`kept ${node.op} '${node.name}': it forwards '${x.name}' to graph output '${y.name}'`);
        continue;
      }
      rw.replace(y, x);
      dropped++;
    }
    rw.finish();
    return result(dropped > 0, { dropped }, notes);
  },
};
