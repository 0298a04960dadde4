// Structural checks of a graph: SSA (one definition per name), every use defined before it,
// producers linked, outputs defined. Passes run it between stages in tests.

import { FhecError, nodeLabel } from '../errors.js';
import type { Graph } from './types.js';

export function verifyGraph(graph: Graph): void {
  const defined = new Set<string>();
  const define = (name: string, what: string) => {
    if (defined.has(name)) throw new FhecError(`value '${name}' is defined twice (${what})`);
    defined.add(name);
  };
  for (const v of graph.inputs) {
    if (v.constant) throw new FhecError(`graph input '${v.name}' is marked constant`);
    define(v.name, 'graph input');
  }
  for (const v of graph.constants) {
    if (!v.constant) throw new FhecError(`constant '${v.name}' has no data`);
    define(v.name, 'constant');
  }
  const live = new Set([...graph.inputs, ...graph.constants]);
  for (const node of graph.nodes) {
    node.inputs.forEach((v, i) => {
      if (v === null) return;
      if (!live.has(v)) {
        throw new FhecError(`input ${i} '${v.name}' is used before it is defined (or not in the graph)`, {
          node: nodeLabel(node),
        });
      }
    });
    for (const o of node.outputs) {
      if (o.producer !== node) {
        throw new FhecError(`output '${o.name}' does not point back at its producer`, { node: nodeLabel(node) });
      }
      define(o.name, `output of ${node.name}`);
      live.add(o);
    }
  }
  for (const v of graph.outputs) {
    if (!live.has(v)) throw new FhecError(`graph output '${v.name}' is not defined`);
  }
}
