// Dead-code elimination: drops nodes none of whose outputs reach a graph output, and unused constants.

import type { Graph, Value } from '../../ir/graph/types.js';
import { result, type Pass } from '../pass.js';

export function eliminateDeadCode(graph: Graph): { nodes: number; constants: number } {
  const live = new Set<Value>(graph.outputs);
  const kept = [];
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const n = graph.nodes[i]!;
    if (!n.outputs.some((o) => live.has(o))) continue;
    kept.push(n);
    for (const v of n.inputs) if (v) live.add(v);
  }
  kept.reverse();
  const removedNodes = graph.nodes.length - kept.length;
  graph.nodes = kept;
  const before = graph.constants.length;
  graph.constants = graph.constants.filter((c) => live.has(c));
  return { nodes: removedNodes, constants: before - graph.constants.length };
}

export const dcePass: Pass<Graph, Record<string, never>> = {
  name: 'dce',
  summary: 'remove nodes and constants that no graph output depends on',
  reads: 'graph',
  writes: 'graph',
  options: [],
  run(graph) {
    const r = eliminateDeadCode(graph);
    return result(r.nodes + r.constants > 0, { removedNodes: r.nodes, removedConstants: r.constants });
  },
};
