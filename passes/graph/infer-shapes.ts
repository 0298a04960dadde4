// Runs the per-op type and shape rules over the whole graph (see ir/ops/infer.ts).

import type { Graph } from '../../ir/graph/types.js';
import { inferGraph } from '../../ir/ops/infer-graph.js';
import { result, type Pass } from '../pass.js';

export const inferShapesPass: Pass<Graph, Record<string, never>> = {
  name: 'infer-shapes',
  summary: 'infer the dtype and (symbolic) shape of every value',
  reads: 'graph',
  writes: 'graph',
  options: [],
  run(graph) {
    const { unknownOps } = inferGraph(graph);
    const values = graph.nodes.flatMap((n) => n.outputs);
    const concrete = values.filter((v) => v.shape?.every((d) => typeof d === 'number')).length;
    const notes = unknownOps.size ? [`no shape rule for: ${[...unknownOps].join(', ')}`] : [];
    return result(false, { values: values.length, concrete, symbolicOrUnknown: values.length - concrete }, notes);
  },
};
