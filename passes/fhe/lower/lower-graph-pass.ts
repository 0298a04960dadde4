// lower-graph{slots=S}: an arithmetic ONNX graph (every shape concrete) to one unmanaged FHE program
// (lower-graph.ts), every graph input encrypted, packed for S slots (default: the source's). The
// graph comes with the unit (graphSource); select-parameters{fit=depth} lowers it again if the ring grows.

import type { Graph } from '../../../ir/graph/types.js';
import type { Pass } from '../../pass.js';
import { fheCost } from '../analysis/cost.js';
import { lowerSource, setAttrs, type FheSource, type FheUnit } from '../pipeline/unit.js';
import { lowerGraph, type GraphLowering } from './lower-graph.js';

/** The unit source that lowers an arithmetic graph at any slot count. */
export function graphSource(graph: Graph, defaultSlots: number, file?: string): FheSource<GraphLowering> {
  return { kind: 'graph', name: file ?? graph.name, defaultSlots, lower: (slots) => lowerGraph(graph, { slots, file }) };
}

export const lowerGraphPass: Pass<FheUnit, { slots?: number }> = {
  name: 'lower-graph',
  summary: 'lower an arithmetic ONNX graph (MatMul, Gemm, elementwise, data movement) to an unmanaged FHE program',
  reads: 'graph',
  writes: 'fhe',
  options: [{ name: 'slots', type: 'int', help: 'slot count to pack for (N/2; default: the source\'s)' }],
  run(unit, o) {
    const lowered = lowerSource(unit, 'graph', 'lower-graph', o.slots);
    const c = fheCost(lowered.program);
    setAttrs(unit.program, { 'mgmt.depth': c.depth });
    return { changed: true, stats: { slots: lowered.program.slots, ops: lowered.program.ops.length, depth: c.depth, rotations: c.rotations }, notes: [], error: { maxAbs: 0, how: 'exact: arithmetic ops only' } };
  },
};
