// Plaintext subgraphs that feed a pattern (attention masks from attention_mask, RoPE tables from
// position_ids) are checked by what they compute, not by how they are spelled:
//  - `coneOf` collects the nodes a value depends on and the non-constant values they start from;
//  - `trackLocality` proves that every element of the result depends on one element of the source
//    (the same batch row and token), by following the source's indexed axes through each op;
//  - `evalCone` evaluates the subgraph on probe inputs with the reference interpreter.
// Together they turn "the mask is causal-plus-padding" into a finite check: with locality, probing
// with all-ones and all-zeros masks decides every element for every 0/1 mask.

import { attrInt, hasAttr } from '../../ir/graph/attrs.js';
import type { Graph, Node, Value } from '../../ir/graph/types.js';
import type { Tensor } from '../../ir/tensor.js';
import { evalNode } from '../../runtime/reference/interpreter.js';
import { concreteShape, constTensor, intsOperand, normAxis, onnxOpset, transposePerm } from './rewrite.js';

export interface Cone {
  /** The nodes `target` depends on through non-constant values, in graph order. */
  nodes: Node[];
  /** Non-constant values the cone starts from (graph inputs, or outputs of nodes outside `stopAt`). */
  leaves: Value[];
}

/** Walks back from `target` through producers; `stop(v)` ends the walk at v (v becomes a leaf). */
export function coneOf(graph: Graph, target: Value, stop: (v: Value) => boolean = () => false): Cone {
  const inCone = new Set<Node>();
  const leaves = new Set<Value>();
  const stack = [target];
  const seen = new Set<Value>();
  while (stack.length) {
    const v = stack.pop()!;
    if (seen.has(v)) continue;
    seen.add(v);
    if (v.constant) continue;
    if (!v.producer || stop(v)) {
      leaves.add(v);
      continue;
    }
    inCone.add(v.producer);
    for (const u of v.producer.inputs) if (u) stack.push(u);
  }
  return { nodes: graph.nodes.filter((n) => inCone.has(n)), leaves: [...leaves] };
}

/** Evaluates the cone's nodes with `feeds` for its leaves; returns every computed value. */
export function evalCone(graph: Graph, cone: Cone, feeds: Map<Value, Tensor>): Map<Value, Tensor> {
  const env = new Map(feeds);
  const get = (v: Value): Tensor => {
    const t = env.get(v) ?? constTensor(v);
    if (!t) throw new Error(`no value for '${v.name}' while probing`);
    return t;
  };
  for (const n of cone.nodes) {
    const opset = n.domain === '' || n.domain === 'ai.onnx' ? onnxOpset(graph) : graph.opsets[n.domain];
    const outs = evalNode(n, n.inputs.map((v) => (v ? get(v) : null)), opset);
    n.outputs.forEach((o, i) => env.set(o, outs[i]!));
  }
  return env;
}

/** Axis labels of the source (e.g. ['b', 'j'] for attention_mask [B, T]) mapped to axis positions. */
export type AxisMap = Record<string, number>;

export interface LocalityOptions {
  /**
   * Whether constants may vary along the tracked axes. A mask may (the causal part varies with the key
   * index); a RoPE table may not (its rows must be a function of the position value alone).
   */
  constantsMayVary: boolean;
}

const UNARY = new Set(['Cast', 'Neg', 'Not', 'Cos', 'Sin', 'Sqrt', 'Reciprocal', 'Exp', 'Log', 'Abs', 'Identity', 'Sigmoid', 'Tanh', 'Floor', 'Ceil', 'Round', 'Sign', 'IsNaN', 'IsInf', 'Relu']);
const BROADCAST = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'And', 'Or', 'Xor', 'Where', 'Max', 'Min', 'Mod']);

/**
 * Proves that each element of `target` depends on exactly one element of `source`, at the source
 * index found by reading the tracked axes (and that no tracked axis is broadcast, reduced or mixed).
 * Returns the tracked axes' positions in `target`, or the reason the proof fails.
 */
export function trackLocality(graph: Graph, cone: Cone, source: Value, sourceAxes: AxisMap, target: Value, opts: LocalityOptions): AxisMap | string {
  const axes = new Map<Value, AxisMap>([[source, sourceAxes]]);
  const opset = onnxOpset(graph);
  for (const n of cone.nodes) {
    const tracked = n.inputs.map((v) => (v ? axes.get(v) : undefined));
    if (!tracked.some((t) => t)) continue;
    if (n.domain !== '' && n.domain !== 'ai.onnx') return `op ${n.domain}::${n.op} (${n.name})`;
    const out = n.outputs[0]!;
    const outShape = concreteShape(out);
    const mapped = step(n, tracked, outShape, opts, opset);
    if (typeof mapped === 'string') return `${n.op} '${n.name}': ${mapped}`;
    // No tracked axis may be broadcast: the output keeps the source's extent along it.
    const srcShape = concreteShape(source);
    if (!srcShape || !outShape) return `unknown shape at '${out.name}'`;
    for (const [label, ax] of Object.entries(mapped)) {
      if (outShape[ax] !== srcShape[sourceAxes[label]!]) return `${n.op} '${n.name}' changes the extent of the ${label} axis`;
    }
    axes.set(out, mapped);
  }
  const m = axes.get(target);
  return m ?? 'the target does not depend on the source';
}

function step(n: Node, tracked: (AxisMap | undefined)[], outShape: number[] | undefined, opts: LocalityOptions, opset: number): AxisMap | string {
  const x = tracked[0];
  if (UNARY.has(n.op)) return x ?? 'unexpected tracked input';
  if (!outShape) return 'unknown output shape';
  const r = outShape.length;
  if (BROADCAST.has(n.op)) {
    let result: AxisMap | undefined;
    for (let i = 0; i < n.inputs.length; i++) {
      const v = n.inputs[i];
      if (!v) continue;
      const shape = concreteShape(v);
      if (!shape) return `unknown shape of '${v.name}'`;
      const shift = r - shape.length;
      const t = tracked[i];
      if (t) {
        const m: AxisMap = Object.fromEntries(Object.entries(t).map(([k, a]) => [k, a + shift]));
        if (result && Object.entries(m).some(([k, a]) => result![k] !== a)) return 'tracked axes of two inputs disagree';
        result = m;
      } else if (!v.constant) {
        return `input '${v.name}' is neither constant nor derived from the source`;
      }
    }
    if (!opts.constantsMayVary) {
      for (let i = 0; i < n.inputs.length; i++) {
        const v = n.inputs[i];
        if (!v || tracked[i]) continue;
        const shape = concreteShape(v)!;
        const shift = r - shape.length;
        for (const a of Object.values(result!)) if ((shape[a - shift] ?? 1) !== 1) return `constant '${v.name}' varies along a tracked axis`;
      }
    }
    return result!;
  }
  switch (n.op) {
    case 'Unsqueeze': {
      const axesList = intsOperand(n, 1, 'axes');
      if (!axesList || !x) return 'unknown axes';
      const norm = axesList.map((a) => normAxis(a, r)!).sort((a, b) => a - b);
      const map: AxisMap = {};
      for (const [k, a] of Object.entries(x)) {
        let pos = a;
        for (const u of norm) if (u <= pos) pos++;
        map[k] = pos;
      }
      return map;
    }
    case 'Squeeze': {
      const inShape = concreteShape(n.inputs[0]);
      const axesList = intsOperand(n, 1, 'axes') ?? inShape?.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0);
      if (!axesList || !x || !inShape) return 'unknown axes';
      const norm = axesList.map((a) => normAxis(a, inShape.length)!);
      const map: AxisMap = {};
      for (const [k, a] of Object.entries(x)) {
        if (norm.includes(a)) return 'squeezes a tracked axis';
        map[k] = a - norm.filter((u) => u < a).length;
      }
      return map;
    }
    case 'Transpose': {
      const perm = transposePerm(n);
      if (!perm || !x) return 'unknown perm';
      return Object.fromEntries(Object.entries(x).map(([k, a]) => [k, perm.indexOf(a)]));
    }
    case 'Expand':
    case 'Tile': {
      if (!x || tracked.slice(1).some((t) => t)) return 'tracked shape operand';
      if (!n.inputs[1]?.constant) return 'non-constant shape operand';
      const inRank = concreteShape(n.inputs[0])?.length;
      if (inRank === undefined) return 'unknown input shape';
      const shift = r - inRank;
      return Object.fromEntries(Object.entries(x).map(([k, a]) => [k, a + shift]));
    }
    case 'Concat': {
      const axis = normAxis(attrInt(n, 'axis'), r);
      if (axis === undefined) return 'bad axis';
      if (tracked.some((t) => !t)) return 'concatenates constants with derived values';
      const first = tracked[0]!;
      if (tracked.some((t) => Object.entries(t!).some(([k, a]) => first[k] !== a))) return 'inputs are tracked differently';
      if (Object.values(first).includes(axis)) return 'concatenates along a tracked axis';
      return first;
    }
    case 'Slice': {
      if (!x || tracked.slice(1).some((t) => t)) return 'tracked slice bounds';
      const inRank = concreteShape(n.inputs[0])?.length ?? r;
      const sliced = opset >= 10 ? intsOperand(n, 3, '__none__') ?? Array.from({ length: inRank }, (_, i) => i) : hasAttr(n, 'axes') ? intsOperand(n, -1, 'axes')! : Array.from({ length: inRank }, (_, i) => i);
      const norm = sliced.map((a) => normAxis(a, inRank));
      if (Object.values(x).some((a) => norm.includes(a))) return 'slices a tracked axis';
      return x;
    }
    case 'MatMul': {
      const [ta, tb] = tracked;
      if (ta && tb) return 'both operands derived from the source';
      const other = n.inputs[ta ? 1 : 0];
      if (!other?.constant) return 'the other operand is not constant';
      const t = (ta ?? tb)!;
      const shape = concreteShape(n.inputs[ta ? 0 : 1]);
      if (!shape || shape.length < 2) return 'operand rank below 2';
      const rank = shape.length;
      const contracted = ta ? rank - 1 : rank - 2;
      if (Object.values(t).includes(contracted)) return 'contracts a tracked axis';
      const shift = r - rank;
      const mapped: AxisMap = Object.fromEntries(Object.entries(t).map(([k, a]) => [k, a + shift]));
      if (!opts.constantsMayVary) {
        const cs = concreteShape(other);
        if (!cs) return 'unknown constant shape';
        // Batch dims of the constant, right-aligned against the output; its matrix dims never meet a tracked axis.
        for (const a of Object.values(mapped)) {
          const k = a - (r - cs.length);
          if (a < r - 2 && k >= 0 && cs[k] !== 1) return `constant '${other.name}' varies along a tracked axis`;
        }
      }
      return mapped;
    }
    default:
      return 'op not allowed in a plaintext mask/position subgraph';
  }
}
