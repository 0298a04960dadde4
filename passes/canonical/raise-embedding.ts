// Raises Gather(constant table [V, D], integer ids) along axis 0 to `fhec::embedding(ids, table)`.

import { attrInt } from '../../ir/graph/attrs.js';
import { isInteger } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph/types.js';
import type { Pass } from '../pass.js';
import { raised, Rewriter } from './rewrite.js';

export const raiseEmbeddingPass: Pass<Graph, Record<string, never>> = {
  name: 'raise-embedding',
  summary: 'raise Gather of a constant 2-D table by integer ids to fhec::embedding',
  reads: 'graph',
  writes: 'canonical',
  options: [],
  run(graph) {
    const rw = new Rewriter(graph);
    let count = 0;
    for (const node of [...graph.nodes]) {
      if (node.op !== 'Gather' || node.domain !== '') continue;
      const [table, ids] = node.inputs;
      if (!table?.constant || table.constant.dims.length !== 2 || !ids || ids.constant || !isInteger(ids.dtype)) continue;
      if (attrInt(node, 'axis', 0) !== 0) continue;
      const y = node.outputs[0]!;
      const e = rw.canonical('embedding', [ids, table], [{ name: `${node.name}.embedding`, dtype: y.dtype, shape: y.shape }], {}, node);
      rw.replace(y, e.outputs[0]!);
      count++;
    }
    rw.finish();
    return raised(count > 0, { raised: count });
  },
};
