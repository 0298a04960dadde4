// Topological ordering of nodes (some exporters write nodes out of order; ORT accepts them).

import { FhecError, nodeLabel } from '../errors.js';
import type { Graph, Node, Value } from './types.js';

/** Reorders graph.nodes so every value is defined before use (stable for already-sorted graphs). */
export function sortTopologically(graph: Graph): void {
  const producerOf = new Map<Value, Node>();
  for (const n of graph.nodes) for (const o of n.outputs) producerOf.set(o, n);
  const state = new Map<Node, 1 | 2>(); // 1 = on stack, 2 = done
  const order: Node[] = [];
  for (const root of graph.nodes) {
    if (state.has(root)) continue;
    // Iterative DFS (graphs of big models are deep).
    const stack: { node: Node; next: number }[] = [{ node: root, next: 0 }];
    state.set(root, 1);
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      if (top.next < top.node.inputs.length) {
        const v = top.node.inputs[top.next++];
        const p = v ? producerOf.get(v) : undefined;
        if (!p) continue;
        const s = state.get(p);
        if (s === 1) throw new FhecError('graph has a cycle', { node: nodeLabel(p) });
        if (s === undefined) {
          state.set(p, 1);
          stack.push({ node: p, next: 0 });
        }
      } else {
        state.set(top.node, 2);
        order.push(top.node);
        stack.pop();
      }
    }
  }
  graph.nodes = order;
}

/** For each value, the nodes that read it. */
export function usesOf(graph: Graph): Map<Value, Node[]> {
  const uses = new Map<Value, Node[]>();
  for (const n of graph.nodes) {
    for (const v of n.inputs) {
      if (!v) continue;
      const list = uses.get(v);
      if (list) list.push(n);
      else uses.set(v, [n]);
    }
  }
  return uses;
}

/** Replace every use of `from` (node inputs and graph outputs) by `to`. */
export function replaceAllUses(graph: Graph, from: Value, to: Value): void {
  for (const n of graph.nodes) {
    for (let i = 0; i < n.inputs.length; i++) if (n.inputs[i] === from) n.inputs[i] = to;
  }
  for (let i = 0; i < graph.outputs.length; i++) if (graph.outputs[i] === from) graph.outputs[i] = to;
}
