// Verifier for canonical graphs: the structural graph checks plus each `fhec` node against its definition.

import type { Graph } from '../graph/types.js';
import { verifyGraph } from '../graph/verify.js';
import { checkCanonicalNode, FHEC_DOMAIN } from './ops.js';

export function verifyCanonicalGraph(graph: Graph): void {
  verifyGraph(graph);
  for (const n of graph.nodes) if (n.domain === FHEC_DOMAIN) checkCanonicalNode(n);
}
