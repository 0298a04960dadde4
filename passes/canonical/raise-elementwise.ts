// Raises the remaining float Add and Mul to `fhec::add` / `fhec::mul` (residuals, scalings) and
// last-axis Softmax to `fhec::softmax`. Runs after the pattern passes, so it only sees what they left.

import { hasAttr } from '../../ir/graph/attrs.js';
import { isFloat } from '../../ir/dtype.js';
import type { AttrValue, Graph } from '../../ir/graph/types.js';
import type { Pass } from '../pass.js';
import { onnxOpset, raised, Rewriter, softmaxIsLastAxis } from './rewrite.js';

export const raiseElementwisePass: Pass<Graph, Record<string, never>> = {
  name: 'raise-elementwise',
  summary: 'raise float Add/Mul to fhec::add/mul and last-axis Softmax to fhec::softmax',
  reads: 'graph',
  writes: 'canonical',
  options: [],
  run(graph) {
    const rw = new Rewriter(graph);
    const opset = onnxOpset(graph);
    const stats = { add: 0, mul: 0, softmax: 0 };
    for (const node of [...graph.nodes]) {
      if (node.domain !== '') continue;
      const y = node.outputs[0]!;
      if (!isFloat(y.dtype) || node.inputs.some((v) => !v || !isFloat(v.dtype) || v.dtype !== y.dtype)) continue;
      let op: 'add' | 'mul' | 'softmax' | undefined;
      const attrs: Record<string, AttrValue> = {};
      if (node.op === 'Add') op = 'add';
      else if (node.op === 'Mul') op = 'mul';
      else if (node.op === 'Softmax' && softmaxIsLastAxis(node, opset)) {
        op = 'softmax';
        if (hasAttr(node, 'axis')) attrs['axis'] = { kind: 'int', value: -1 };
      }
      if (!op) continue;
      const n = rw.canonical(op, node.inputs, [{ name: `${node.name}.${op}`, dtype: y.dtype, shape: y.shape }], attrs, node);
      rw.replace(y, n.outputs[0]!);
      stats[op]++;
    }
    rw.finish();
    return raised(stats.add + stats.mul + stats.softmax > 0, stats);
  },
};
