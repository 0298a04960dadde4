// Small helpers the raising and folding passes share: reading constants, following producers and
// consumers, building replacement nodes, and finishing a rewrite (re-sort, drop what became dead).

import { FhecError, nodeLabel } from '../../ir/errors.js';
import { attrInt, attrInts, hasAttr } from '../../ir/graph/attrs.js';
import { GraphBuilder } from '../../ir/graph/builder.js';
import { sortTopologically, usesOf } from '../../ir/graph/topo.js';
import type { AttrValue, Graph, LazyTensor, Node, Value } from '../../ir/graph/types.js';
export { TransposedTensor } from './lazy.js';
import { MaterializedTensor } from '../../ir/graph/types.js';
import { inferGraph } from '../../ir/ops/infer-graph.js';
import { Tensor } from '../../ir/tensor.js';
import { FHEC_DOMAIN } from '../../ir/canonical/ops.js';
import { eliminateDeadCode } from '../graph/dce.js';
import type { PassResult } from '../pass.js';

/** The ONNX opset version of the default domain. */
export function onnxOpset(graph: Graph): number {
  return graph.opsets[''] ?? graph.opsets['ai.onnx'] ?? 17;
}

/** The producing node of v if it is an ai.onnx `op` (or any of `ops`). */
export function producedBy(v: Value | null | undefined, ...ops: string[]): Node | undefined {
  const p = v?.producer;
  if (!p || (p.domain !== '' && p.domain !== 'ai.onnx')) return undefined;
  return ops.includes(p.op) ? p : undefined;
}

/** The producing node of v if it is a canonical `op`. */
export function producedByCanonical(v: Value | null | undefined, op: string): Node | undefined {
  const p = v?.producer;
  return p && p.domain === FHEC_DOMAIN && p.op === op ? p : undefined;
}

export function constTensor(v: Value | null | undefined): Tensor | undefined {
  return v?.constant ? v.constant.load() : undefined;
}

/** The value of a one-element constant. */
export function constScalar(v: Value | null | undefined): number | undefined {
  if (!v?.constant) return undefined;
  const n = v.constant.dims.reduce((a, d) => a * d, 1);
  return n === 1 ? v.constant.load().data[0] : undefined;
}

/** The concrete dims of v, or undefined if any is unknown. */
export function concreteShape(v: Value | null | undefined): number[] | undefined {
  if (!v?.shape || !v.shape.every((d) => typeof d === 'number')) return undefined;
  return v.shape as number[];
}

/** The last dim of v if it is concrete (enough for ops that work along the last axis). */
export function lastDim(v: Value | null | undefined): number | undefined {
  const d = v?.shape?.[v.shape.length - 1];
  return typeof d === 'number' ? d : undefined;
}

/** Whether two shapes are known to be equal (same rank, same dims, symbolic names included; no unknowns). */
export function sameShape(a: Value | null | undefined, b: Value | null | undefined): boolean {
  const x = a?.shape, y = b?.shape;
  return !!x && !!y && x.length === y.length && x.every((d, i) => d !== null && d === y[i]);
}

/** The integer-list operand of ops that moved it from an attribute to an input (axes, perm, ...). */
export function intsOperand(node: Node, inputIndex: number, attrName: string): number[] | undefined {
  if (hasAttr(node, attrName)) return attrInts(node, attrName);
  const t = constTensor(node.inputs[inputIndex]);
  return t ? t.toNumbers() : undefined;
}

/** The `perm` of a Transpose (default: reversed axes). */
export function transposePerm(node: Node): number[] | undefined {
  if (hasAttr(node, 'perm')) return attrInts(node, 'perm');
  const r = node.inputs[0]?.shape?.length;
  return r === undefined ? undefined : Array.from({ length: r }, (_, i) => r - 1 - i);
}

/** Normalized axis (or undefined if out of range). */
export function normAxis(axis: number, rank: number): number | undefined {
  const a = axis < 0 ? axis + rank : axis;
  return a >= 0 && a < rank ? a : undefined;
}

/** The softmax axis of a Softmax node as a positive index, if it reduces only the last axis. */
export function softmaxIsLastAxis(node: Node, opset: number): boolean {
  const r = node.inputs[0]?.shape?.length;
  if (r === undefined) return false;
  const axis = hasAttr(node, 'axis') ? attrInt(node, 'axis') : opset < 13 ? 1 : -1;
  return normAxis(axis, r) === r - 1;
}

/**
 * The range [start, end) of axis `axis` (length `dim`) a Slice keeps with step 1, when every other
 * axis it names is kept whole; undefined when the bounds are not constants or it cuts otherwise.
 */
export function axisSlice(node: Node, rank: number, axis: number, dim: number, opset: number): [number, number] | undefined {
  const ints = (i: number, name: string): number[] | undefined =>
    opset >= 10 ? (node.inputs[i] ? constTensor(node.inputs[i])?.toNumbers() : undefined) : hasAttr(node, name) ? attrInts(node, name) : undefined;
  const starts = ints(1, 'starts');
  const ends = ints(2, 'ends');
  const axes = ints(3, 'axes') ?? starts?.map((_, i) => i);
  const steps = ints(4, 'steps') ?? starts?.map(() => 1);
  if (!starts || !ends || !axes || !steps || ends.length !== starts.length || axes.length !== starts.length || steps.length !== starts.length) return undefined;
  const shape = concreteShape(node.inputs[0]);
  let cut: [number, number] = [0, dim];
  for (let i = 0; i < axes.length; i++) {
    const a = normAxis(axes[i]!, rank);
    if (a === undefined || steps[i] !== 1) return undefined;
    const n = a === axis ? dim : shape?.[a];
    if (n === undefined) return undefined;
    const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + n : v, 0), n);
    const range: [number, number] = [clamp(starts[i]!), clamp(ends[i]!)];
    if (a === axis) cut = range;
    else if (range[0] !== 0 || range[1] !== n) return undefined;
  }
  return cut;
}

/** axisSlice of the last axis. */
export function lastAxisSlice(node: Node, rank: number, dim: number, opset: number): [number, number] | undefined {
  return axisSlice(node, rank, rank - 1, dim, opset);
}

export function sameDims(a: readonly number[] | undefined, b: readonly number[] | undefined): boolean {
  return !!a && !!b && a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * One rewrite session over a graph: a builder for new nodes, the use lists at the start, and the
 * bookkeeping to finish (re-sort so new nodes sit before their readers, drop dead nodes, re-infer).
 */
export class Rewriter {
  readonly b: GraphBuilder;
  readonly uses: Map<Value, Node[]>;
  private readonly outputs: Set<Value>;
  /** Nodes already consumed by a rewrite in this session (a node is raised at most once). */
  readonly claimed = new Set<Node>();

  constructor(readonly graph: Graph) {
    this.b = GraphBuilder.on(graph);
    this.uses = usesOf(graph);
    this.outputs = new Set(graph.outputs);
  }

  usesOf(v: Value): Node[] {
    return this.uses.get(v) ?? [];
  }

  isGraphOutput(v: Value): boolean {
    return this.outputs.has(v);
  }

  /** The only reader of v, if v has exactly one and is not a graph output. */
  soleUse(v: Value): Node | undefined {
    const u = this.usesOf(v);
    return u.length === 1 && !this.isGraphOutput(v) ? u[0] : undefined;
  }

  /** A canonical node; `like` names it after the node it replaces (so messages keep exporter names). */
  canonical(op: string, inputs: (Value | null)[], outputs: { name?: string; dtype: Value['dtype']; shape?: Value['shape'] }[], attrs: Record<string, AttrValue>, like: Node): Node {
    const base = like.domain === FHEC_DOMAIN ? like.name.replace(/:[a-z_]+$/, '') : like.name;
    const n = this.b.node(op, trimTrailingNulls(inputs), outputs, attrs, { domain: FHEC_DOMAIN, name: `${base}:${op}` });
    for (const v of n.inputs) if (v) this.uses.set(v, [...this.usesOf(v), n]);
    return n;
  }

  constant(name: string, t: Tensor | LazyTensor): Value {
    return this.b.constant(name, t instanceof Tensor ? new MaterializedTensor(t) : t);
  }

  /**
   * Make every reader of `from` read `to` instead. A graph output keeps its name: `to` takes it over
   * (it must be a fresh node output), so callers see the same output names.
   */
  replace(from: Value, to: Value): void {
    for (const n of this.usesOf(from)) {
      for (let i = 0; i < n.inputs.length; i++) if (n.inputs[i] === from) n.inputs[i] = to;
      this.uses.set(to, [...this.usesOf(to), n]);
    }
    this.uses.delete(from);
    if (this.outputs.has(from)) {
      if (!to.producer || this.outputs.has(to)) {
        throw new FhecError(`cannot move graph output '${from.name}' onto '${to.name}'`, { node: to.producer ? nodeLabel(to.producer) : undefined });
      }
      const name = from.name;
      from.name = `${name}.replaced`;
      to.name = name;
      this.graph.outputs = this.graph.outputs.map((o) => (o === from ? to : o));
      this.outputs.delete(from);
      this.outputs.add(to);
    }
  }

  /** Re-sort, drop dead nodes and constants, re-infer shapes. */
  finish(): void {
    sortTopologically(this.graph);
    eliminateDeadCode(this.graph);
    inferGraph(this.graph);
  }
}

function trimTrailingNulls(inputs: (Value | null)[]): (Value | null)[] {
  const out = [...inputs];
  while (out.length && out[out.length - 1] === null) out.pop();
  return out;
}

/** `name (op)` of a node, for notes. */
export function where(node: Node): string {
  return nodeLabel(node);
}

/** A number for notes: float32 constants shown at float32 precision (1.702, not 1.7020000219345093). */
export function shortNum(x: number): string {
  return Math.fround(x) === x ? String(Number(x.toPrecision(7))) : String(x);
}

/** The result of a raising pass: the same function, computed with one rounding per canonical op. */
export function raised(changed: boolean, stats: Record<string, number>, notes: string[] = []): PassResult {
  return {
    changed,
    stats,
    notes,
    error: { maxAbs: 0, how: 'same function; the canonical op rounds its result once instead of after every exported op' },
  };
}
