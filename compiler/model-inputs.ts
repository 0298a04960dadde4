// Checks user-supplied input tensors against a graph's declared inputs and derives the bindings
// of symbolic dims from them (so `fhec eval` needs no --bind when the inputs say it all).

import { FhecError } from '../ir/errors.js';
import type { Graph } from '../ir/graph/types.js';
import type { Tensor } from '../ir/tensor.js';
import { fmt } from '../ir/ops/infer.js';

export function bindingsFromInputs(
  graph: Graph,
  inputs: Record<string, Tensor>,
  file: string,
  given: Record<string, number> = {},
): Record<string, number> {
  const declared = new Map(graph.inputs.map((v) => [v.name, v]));
  const missing = graph.inputs.filter((v) => !(v.name in inputs)).map((v) => v.name);
  const extra = Object.keys(inputs).filter((n) => !declared.has(n));
  if (missing.length || extra.length) {
    const parts = [];
    if (missing.length) parts.push(`missing input(s) ${missing.map((n) => `'${n}'`).join(', ')}`);
    if (extra.length) parts.push(`unknown input(s) ${extra.map((n) => `'${n}'`).join(', ')} (the model's inputs: ${graph.inputs.map((v) => v.name).join(', ')})`);
    throw new FhecError(parts.join('; '), { file });
  }
  const bindings: Record<string, number> = { ...given };
  const boundBy: Record<string, string> = {};
  for (const v of graph.inputs) {
    const t = inputs[v.name]!;
    const field = `inputs.${v.name}`;
    if (t.dtype !== v.dtype) throw new FhecError(`dtype is ${t.dtype} but the model expects ${v.dtype}`, { file, field });
    if (!v.shape) continue;
    if (t.dims.length !== v.shape.length) {
      throw new FhecError(`dims [${t.dims.join(', ')}] have rank ${t.dims.length} but the model expects ${fmt(v.shape)}`, { file, field });
    }
    v.shape.forEach((d, i) => {
      const actual = t.dims[i]!;
      if (typeof d === 'number') {
        if (d !== actual) throw new FhecError(`dims [${t.dims.join(', ')}] do not match the model's ${fmt(v.shape)}`, { file, field });
      } else if (typeof d === 'string') {
        if (d in bindings && bindings[d] !== actual) {
          const by = boundBy[d] ? `input '${boundBy[d]}'` : '--bind';
          throw new FhecError(`dim '${d}' is ${actual} here but ${bindings[d]} in ${by}`, { file, field });
        }
        bindings[d] = actual;
        boundBy[d] ??= v.name;
      }
    });
  }
  return bindings;
}
