// Split with explicit, unknown and num_outputs sizes: shape inference and the reference kernel follow
// one rule (ir/ops/split-sizes.ts), so every inferred shape is the shape the interpreter computes.
import { describe, expect, it } from 'vitest';
import { attr, GraphBuilder } from '../ir/graph/builder.js';
import type { AttrValue, Value } from '../ir/graph/types.js';
import { inferGraph } from '../ir/ops/infer-graph.js';
import { Tensor } from '../ir/tensor.js';
import { runGraph } from '../runtime/reference/interpreter.js';

interface Case {
  opset: number;
  dims: number[];
  axis?: number;
  outputs: number;
  /** sizes as a constant input (opset >= 13) or attribute (opset < 13) */
  sizes?: number[];
  numOutputs?: number;
}

/** A graph x -> Split -> outputs, inferred; returns the outputs and the interpreter's results. */
function split(c: Case): { outs: Value[]; run: () => Tensor[] } {
  const b = new GraphBuilder('g', { '': c.opset });
  const x = b.input('x', 'float32', c.dims);
  const attrs: Record<string, AttrValue> = {};
  if (c.axis !== undefined) attrs['axis'] = attr.int(c.axis);
  if (c.numOutputs !== undefined) attrs['num_outputs'] = attr.int(c.numOutputs);
  const ins: Value[] = [x];
  if (c.sizes && c.opset >= 13) ins.push(b.constant('sizes', Tensor.from('int64', [c.sizes.length], c.sizes)));
  if (c.sizes && c.opset < 13) attrs['split'] = attr.ints(c.sizes);
  const outs = b.node('Split', ins, Array.from({ length: c.outputs }, () => ({ dtype: 'float32' as const })), attrs, { name: 'qkv_split' }).outputs;
  outs.forEach((o) => b.output(o));
  inferGraph(b.graph);
  const n = c.dims.reduce((a, d) => a * d, 1);
  const data = Tensor.from('float32', c.dims, Array.from({ length: n }, (_, i) => i));
  return { outs, run: () => outs.map((o) => runGraph(b.graph, { x: data })[o.name]!) };
}

describe('Split shapes', () => {
  const cases: [string, Case, number[][]][] = [
    ['GQA sizes [q, k, v] as an input (opset 13)', { opset: 13, dims: [1, 5, 128], axis: -1, outputs: 3, sizes: [64, 32, 32] }, [[1, 5, 64], [1, 5, 32], [1, 5, 32]]],
    ['sizes in another order (opset 18)', { opset: 18, dims: [1, 5, 128], axis: 2, outputs: 3, sizes: [32, 64, 32] }, [[1, 5, 32], [1, 5, 64], [1, 5, 32]]],
    ['sizes as an attribute (opset 11)', { opset: 11, dims: [2, 6], axis: 1, outputs: 2, sizes: [2, 4] }, [[2, 2], [2, 4]]],
    ['a zero-size part', { opset: 13, dims: [2, 8], axis: 1, outputs: 2, sizes: [8, 0] }, [[2, 8], [2, 0]]],
    ['equal parts without sizes (opset 13)', { opset: 13, dims: [6, 2], outputs: 3 }, [[2, 2], [2, 2], [2, 2]]],
    ['num_outputs with a smaller last chunk (opset 18)', { opset: 18, dims: [7], outputs: 4, numOutputs: 4 }, [[2], [2], [2], [1]]],
  ];
  it.each(cases)('%s', (_, c, want) => {
    const { outs, run } = split(c);
    expect(outs.map((o) => o.shape)).toEqual(want);
    expect(run().map((t) => t.dims)).toEqual(want);
  });

  it('sizes given as a graph input are unknown until bound, and keep the recorded shapes', () => {
    const b = new GraphBuilder('g', { '': 13 });
    const x = b.input('x', 'float32', [2, 6]);
    const s = b.input('s', 'int64', [2]);
    const [p, q] = b.node('Split', [x, s], [{ dtype: 'float32' }, { dtype: 'float32', shape: [2, 4] }], { axis: attr.int(1) }).outputs;
    b.output(p!);
    b.output(q!);
    inferGraph(b.graph);
    expect(p!.shape).toEqual([2, null]);
    expect(q!.shape).toEqual([2, 4]);
    const got = runGraph(b.graph, { x: Tensor.zeros('float32', [2, 6]), s: Tensor.from('int64', [2], [2, 4]) });
    expect([got[p!.name]!.dims, got[q!.name]!.dims]).toEqual([[2, 2], [2, 4]]);
  });

  const bad: [string, Case, RegExp][] = [
    ['sizes that do not add up to the axis', { opset: 13, dims: [1, 128], axis: 1, outputs: 3, sizes: [64, 32, 16] }, /add up to 112, not to the axis length 128/],
    ['more sizes than outputs', { opset: 11, dims: [6], outputs: 2, sizes: [2, 2, 2] }, /3 sizes \[2, 2, 2\] for 2 outputs/],
    ['an uneven equal split before opset 18', { opset: 13, dims: [7], outputs: 2 }, /axis length 7 does not split into 2 equal parts/],
    ['num_outputs that leaves no last chunk', { opset: 18, dims: [4], outputs: 3, numOutputs: 3 }, /axis length 4 leaves no last chunk for num_outputs 3/],
    ['num_outputs unlike the outputs', { opset: 18, dims: [4], outputs: 2, numOutputs: 4 }, /num_outputs 4 differs from the node's 2 outputs/],
  ];
  it.each(bad)('rejects %s, in inference and in the kernel', (_, c, msg) => {
    expect(() => split(c)).toThrowError(msg);
    expect(() => split(c)).toThrowError(expect.objectContaining({ where: expect.objectContaining({ node: expect.stringContaining('qkv_split') }) }));
    // The kernel says the same on a graph whose inference was skipped.
    const b = new GraphBuilder('g', { '': c.opset });
    const x = b.input('x', 'float32', c.dims);
    const attrs: Record<string, AttrValue> = {};
    if (c.axis !== undefined) attrs['axis'] = attr.int(c.axis);
    if (c.numOutputs !== undefined) attrs['num_outputs'] = attr.int(c.numOutputs);
    const ins: Value[] = [x];
    if (c.sizes && c.opset >= 13) ins.push(b.constant('sizes', Tensor.from('int64', [c.sizes.length], c.sizes)));
    if (c.sizes && c.opset < 13) attrs['split'] = attr.ints(c.sizes);
    b.node('Split', ins, Array.from({ length: c.outputs }, () => ({ dtype: 'float32' as const })), attrs, { name: 'qkv_split' }).outputs.forEach((o) => b.output(o));
    expect(() => runGraph(b.graph, { x: Tensor.zeros('float32', c.dims) })).toThrowError(msg);
  });
});
