// The float64 reference interpreter: runs a graph node by node with the kernels of registry.ts.
// It is the oracle every compiler pass is checked against, so it follows the ONNX reference
// semantics (onnx/reference/ops) and ORT's CPU kernels for contrib ops.

import { FhecError, nodeLabel } from '../../ir/errors.js';
import type { Graph, Node, Value } from '../../ir/graph/types.js';
import { Tensor } from '../../ir/tensor.js';
import { shapeStr } from './kernel.js';
import { kernelFor } from './registry.js';

export interface RunOptions {
  /**
   * Called after each node with its computed outputs (e.g. to record activation ranges). Tensors are
   * shared with the interpreter (Identity/Reshape outputs alias their inputs): treat them as read-only.
   */
  onNode?: (node: Node, outputs: Tensor[]) => void;
}

/** Latest ai.onnx opset the kernels follow when a graph does not say. */
const DEFAULT_OPSET = 25;

/** Evaluates one node. `opset` is the version of the node's domain (default: latest). */
export function evalNode(node: Node, inputs: (Tensor | null)[], opset?: number): Tensor[] {
  const kernel = kernelFor(node.domain, node.op);
  if (!kernel) {
    const op = node.domain ? `${node.domain}::${node.op}` : node.op;
    throw new FhecError(`operator ${op} is not supported by the reference interpreter`, { node: nodeLabel(node) });
  }
  const outs = kernel({ node, opset: opset ?? (node.domain === '' || node.domain === 'ai.onnx' ? DEFAULT_OPSET : 1) }, inputs);
  const result: Tensor[] = [];
  for (let i = 0; i < node.outputs.length; i++) {
    const t = outs[i];
    if (!t) {
      // An optional output the kernel does not compute: an empty placeholder of the declared type.
      result.push(Tensor.zeros(node.outputs[i]!.dtype, [0]));
      continue;
    }
    result.push(t);
  }
  return result;
}

function opsetFor(graph: Graph, node: Node): number | undefined {
  const d = node.domain === 'ai.onnx' ? '' : node.domain;
  return graph.opsets[d] ?? (d === '' ? undefined : graph.opsets['']);
}

/**
 * Runs the graph on `inputs` (by graph input name) and returns the graph outputs by name.
 * Constants are loaded on first use; intermediate values are dropped after their last use.
 */
export function runGraph(graph: Graph, inputs: Record<string, Tensor>, opts: RunOptions = {}): Record<string, Tensor> {
  const env = new Map<Value, Tensor>();
  for (const v of graph.inputs) {
    const t = inputs[v.name];
    if (!t) throw new FhecError(`graph input '${v.name}' was not given`, { field: v.name });
    if (t.dtype !== v.dtype) {
      throw new FhecError(`graph input '${v.name}' must be ${v.dtype}, got ${t.dtype}`, { field: v.name });
    }
    if (v.shape) {
      const bad = v.shape.length !== t.dims.length || v.shape.some((d, i) => typeof d === 'number' && d !== t.dims[i]);
      if (bad) {
        const want = `[${v.shape.map((d) => d ?? '?').join(', ')}]`;
        throw new FhecError(`graph input '${v.name}' must have shape ${want}, got ${shapeStr(t.dims)}`, { field: v.name });
      }
    }
    env.set(v, t);
  }
  // Last reader of each value, so intermediates can be freed; graph outputs are never freed.
  const lastUse = new Map<Value, Node>();
  for (const n of graph.nodes) for (const v of n.inputs) if (v) lastUse.set(v, n);
  const keep = new Set(graph.outputs);

  const valueOf = (v: Value, reader: Node): Tensor => {
    const t = env.get(v);
    if (t) return t;
    if (v.constant) {
      const c = v.constant.load();
      env.set(v, c);
      return c;
    }
    throw new FhecError(`input '${v.name}' has no value (is the graph topologically sorted?)`, { node: nodeLabel(reader) });
  };

  for (const node of graph.nodes) {
    const args = node.inputs.map((v) => (v ? valueOf(v, node) : null));
    let outs: Tensor[];
    try {
      outs = evalNode(node, args, opsetFor(graph, node));
    } catch (e) {
      if (e instanceof FhecError) throw e;
      throw new FhecError(`evaluation failed: ${(e as Error).message}`, { node: nodeLabel(node) });
    }
    node.outputs.forEach((v, i) => env.set(v, outs[i]!));
    opts.onNode?.(node, outs);
    for (const v of node.inputs) {
      if (v && lastUse.get(v) === node && !keep.has(v)) env.delete(v);
    }
    // Outputs nobody reads (and that are not graph outputs) need not be kept either.
    for (const v of node.outputs) if (!lastUse.has(v) && !keep.has(v)) env.delete(v);
  }
  const result: Record<string, Tensor> = {};
  for (const v of graph.outputs) {
    const t = env.get(v) ?? (v.constant ? v.constant.load() : undefined);
    if (!t) throw new FhecError(`graph output '${v.name}' was not computed`, { field: v.name });
    result[v.name] = t;
  }
  return result;
}
