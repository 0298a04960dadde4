// Binds symbolic dims (batch, sequence, past length, ...) to numbers everywhere they appear,
// so that `infer-shapes` and `fold-constants` after it can make every shape concrete.

import { FhecError } from '../../ir/errors.js';
import type { Dim, Graph } from '../../ir/graph/types.js';
import { result, type Pass } from '../pass.js';

export interface SpecializeOptions {
  /** Dim name -> size, e.g. { sequence_length: 16, past_sequence_length: 0 }. */
  bindings: Record<string, number>;
}

export function symbolicDims(graph: Graph): Set<string> {
  const names = new Set<string>();
  for (const v of [...graph.inputs, ...graph.outputs]) for (const d of v.shape ?? []) if (typeof d === 'string') names.add(d);
  return names;
}

export const specializePass: Pass<Graph, SpecializeOptions> = {
  name: 'specialize',
  summary: 'bind symbolic dims to sizes',
  reads: 'graph',
  writes: 'graph',
  options: [{ name: 'bindings', type: 'bindings', help: 'dim=size pairs', default: {} }],
  run(graph, { bindings }) {
    const known = symbolicDims(graph);
    for (const [name, size] of Object.entries(bindings)) {
      if (!known.has(name)) {
        throw new FhecError(`'${name}' is not a symbolic dim of this model (it has ${[...known].map((d) => `'${d}'`).join(', ') || 'none'})`, { field: '--bind' });
      }
      if (!Number.isInteger(size) || size < 0) throw new FhecError(`binding ${name}=${size} is not a non-negative integer`, { field: `--bind ${name}` });
    }
    const bind = (d: Dim): Dim => (typeof d === 'string' && d in bindings ? bindings[d]! : d);
    let bound = 0;
    const values = [...graph.inputs, ...graph.outputs, ...graph.nodes.flatMap((n) => n.outputs)];
    for (const v of values) {
      if (!v.shape) continue;
      const next = v.shape.map(bind);
      bound += next.filter((d, i) => d !== v.shape![i]).length;
      v.shape = next;
    }
    return result(bound > 0, { boundDims: bound });
  },
};
