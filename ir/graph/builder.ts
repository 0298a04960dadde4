// Builds graphs value by value. Importers, raising passes and tests use it;
// it keeps names unique and links producers, so the result verifies.

import type { DType } from '../dtype.js';
import { Tensor } from '../tensor.js';
import { MaterializedTensor } from './types.js';
import type { AttrValue, Graph, LazyTensor, Node, Shape, Value } from './types.js';

export class GraphBuilder {
  readonly graph: Graph;
  private readonly names = new Set<string>();
  private counter = 0;

  constructor(name = 'main', opsets: Record<string, number> = { '': 17 }) {
    this.graph = { name, opsets: { ...opsets }, inputs: [], outputs: [], constants: [], nodes: [], metadata: {} };
  }

  /** Continue building on an existing graph (names already used stay reserved). */
  static on(graph: Graph): GraphBuilder {
    const b = new GraphBuilder(graph.name, graph.opsets);
    (b as { graph: Graph }).graph = graph;
    for (const v of graph.inputs) b.names.add(v.name);
    for (const v of graph.constants) b.names.add(v.name);
    for (const n of graph.nodes) for (const o of n.outputs) b.names.add(o.name);
    return b;
  }

  /** A fresh value name based on `hint`. */
  freshName(hint = 'v'): string {
    let name = hint;
    while (this.names.has(name)) name = `${hint}_${++this.counter}`;
    this.names.add(name);
    return name;
  }

  input(name: string, dtype: DType, shape: Shape): Value {
    const v: Value = { name: this.freshName(name), dtype, shape };
    this.graph.inputs.push(v);
    return v;
  }

  constant(name: string, data: LazyTensor | Tensor): Value {
    const lazy = data instanceof Tensor ? new MaterializedTensor(data) : data;
    const v: Value = { name: this.freshName(name), dtype: lazy.dtype, shape: [...lazy.dims], constant: lazy };
    this.graph.constants.push(v);
    return v;
  }

  /**
   * Append a node. `outputs` gives each output's name hint, dtype and shape (shape may be undefined
   * and filled in later by shape inference).
   */
  node(
    op: string,
    inputs: (Value | null)[],
    outputs: { name?: string; dtype: DType; shape?: Shape }[],
    attrs: Record<string, AttrValue> = {},
    opts: { domain?: string; name?: string } = {},
  ): Node {
    const node: Node = {
      name: opts.name ?? `${op}_${this.graph.nodes.length}`,
      op,
      domain: opts.domain ?? '',
      inputs,
      outputs: [],
      attrs,
    };
    node.outputs = outputs.map((o) => ({
      name: this.freshName(o.name ?? `${op.toLowerCase()}_out`),
      dtype: o.dtype,
      shape: o.shape,
      producer: node,
    }));
    this.graph.nodes.push(node);
    return node;
  }

  /** Shorthand for a one-output node; returns the output value. */
  op1(
    op: string,
    inputs: (Value | null)[],
    dtype: DType,
    shape?: Shape,
    attrs: Record<string, AttrValue> = {},
    opts: { domain?: string; name?: string; outName?: string } = {},
  ): Value {
    return this.node(op, inputs, [{ name: opts.outName, dtype, shape }], attrs, opts).outputs[0]!;
  }

  output(v: Value): void {
    this.graph.outputs.push(v);
  }
}

export const attr = {
  int: (value: number): AttrValue => ({ kind: 'int', value }),
  float: (value: number): AttrValue => ({ kind: 'float', value }),
  string: (value: string): AttrValue => ({ kind: 'string', value }),
  ints: (value: number[]): AttrValue => ({ kind: 'ints', value }),
  floats: (value: number[]): AttrValue => ({ kind: 'floats', value }),
  strings: (value: string[]): AttrValue => ({ kind: 'strings', value }),
  tensor: (value: LazyTensor | Tensor): AttrValue => ({
    kind: 'tensor',
    value: value instanceof Tensor ? new MaterializedTensor(value) : value,
  }),
};
