// Walks a graph in order and applies the per-op inference rules, merging what they find with
// the shapes the importer recorded (value_info). A definite conflict is a user error.

import { FhecError, nodeLabel } from '../errors.js';
import { isInteger } from '../dtype.js';
import type { Dim, Graph, Shape, Value } from '../graph/types.js';
import { fmt, inferNode, type InferInput, type KnownValue } from './infer.js';

/** Constants up to this many elements are tracked as known values (shape arithmetic). */
const KNOWN_VALUE_LIMIT = 64;

export interface InferGraphResult {
  /** Known values of small integer tensors (shape arithmetic), by value. */
  known: Map<Value, KnownValue>;
  /** Nodes whose op has no inference rule (their outputs keep the importer's types). */
  unknownOps: Set<string>;
}

export function inferGraph(graph: Graph): InferGraphResult {
  const known = new Map<Value, KnownValue>();
  const unknownOps = new Set<string>();
  for (const c of graph.constants) {
    const t = c.constant!;
    const n = t.dims.reduce((a, d) => a * d, 1);
    if ((isInteger(t.dtype) || t.dtype === 'bool') && n <= KNOWN_VALUE_LIMIT) {
      const loaded = t.load();
      known.set(c, { dims: [...loaded.dims], data: Array.from(loaded.data) });
    }
  }
  for (const node of graph.nodes) {
    const ins: (InferInput | null)[] = node.inputs.map((v) => (v ? { dtype: v.dtype, shape: v.shape, value: known.get(v) } : null));
    const opset = graph.opsets[node.domain === '' ? '' : node.domain] ?? graph.opsets[''] ?? 17;
    const res = inferNode(node, ins, opset);
    if (!res) {
      unknownOps.add(node.domain ? `${node.domain}::${node.op}` : node.op);
      continue;
    }
    node.outputs.forEach((out, i) => {
      const r = res[i];
      if (!r) return;
      out.dtype = r.dtype;
      out.shape = mergeShapes(out.shape, r.shape, () => nodeLabel(node), out.name);
      if (r.value && r.value.data.length <= KNOWN_VALUE_LIMIT) known.set(out, r.value);
    });
  }
  return { known, unknownOps };
}

/** Combine a recorded shape with an inferred one, preferring concrete dims; conflicts are errors. */
export function mergeShapes(recorded: Shape, inferred: Shape, node: () => string, name: string): Shape {
  if (!inferred) return recorded;
  if (!recorded) return inferred;
  if (recorded.length !== inferred.length) {
    throw new FhecError(`contradictory shapes for '${name}': recorded ${fmt(recorded)}, inferred ${fmt(inferred)}`, { node: node() });
  }
  return recorded.map((r, i): Dim => {
    const s = inferred[i]!;
    if (typeof r === 'number' && typeof s === 'number') {
      if (r !== s) {
        throw new FhecError(`contradictory shapes for '${name}': recorded ${fmt(recorded)}, inferred ${fmt(inferred)}`, { node: node() });
      }
      return r;
    }
    if (typeof s === 'number') return s;
    if (typeof r === 'number') return r;
    return s ?? r;
  });
}
