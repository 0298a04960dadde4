// Rewrites an imported ONNX graph the way exporters with fused projections write it: MatMuls that
// read the same input (Q/K/V, gate/up) become one MatMul with the weights side by side (in a chosen
// order), an optional bias Add, and a cut of the result along the last axis: a Split with the part
// sizes (input since opset 13, attribute before) or one Slice per part. Used to check that a fused
// export raises to the same canonical ops as the unfused one.

import { attr, GraphBuilder } from '../../ir/graph/builder.js';
import { sortTopologically, usesOf } from '../../ir/graph/topo.js';
import type { Graph, Node, Value } from '../../ir/graph/types.js';
import { inferGraph } from '../../ir/ops/infer-graph.js';
import { Tensor } from '../../ir/tensor.js';
import { eliminateDeadCode } from '../../passes/graph/dce.js';

export interface FuseOptions {
  /** How the result is cut. */
  cut: 'split' | 'slice';
  /** Order of a group's parts in the fused weight, as indices into the group (graph order); default as is. */
  order?: (parts: number) => number[];
  /**
   * 'heads': where every projection of a group is only viewed as heads (Reshape [..., n, D]), fuse
   * those views too: one Reshape of the fused output to [..., G, D] (G = sum of n), cut along G.
   */
  view?: 'heads';
}

export interface FusedGroup {
  input: string;
  /** Widths of the parts, in fused order. */
  sizes: number[];
  bias: boolean;
  /** Heads per part when cut by heads. */
  heads?: number[];
}

/** A projection: MatMul(x, W) with a constant 2-D W, and the constant [N] added to it, if any. */
interface Projection {
  matmul: Node;
  weight: Tensor;
  bias?: Tensor;
  /** The value the rest of the graph reads (the MatMul's output, or the bias Add's). */
  out: Value;
  /** Its only reader when that is a head view Reshape [..., n, D]: the view's output, n and D. */
  heads?: { out: Value; n: number; d: number };
}

function projections(graph: Graph): Map<Value, Projection[]> {
  const uses = usesOf(graph);
  const groups = new Map<Value, Projection[]>();
  for (const n of graph.nodes) {
    const w = n.inputs[1];
    if (n.op !== 'MatMul' || n.domain !== '' || !w?.constant || w.constant.dims.length !== 2) continue;
    const x = n.inputs[0]!;
    const N = w.constant.dims[1]!;
    const y = n.outputs[0]!;
    const readers = uses.get(y) ?? [];
    const add = readers.length === 1 && readers[0]!.op === 'Add' ? readers[0]! : undefined;
    const b = add && (add.inputs[0] === y ? add.inputs[1] : add.inputs[0]);
    const hasBias = !!b?.constant && b.constant.dims.length === 1 && b.constant.dims[0] === N;
    const p: Projection = { matmul: n, weight: w.constant.load(), out: hasBias ? add!.outputs[0]! : y, bias: hasBias ? b!.constant!.load() : undefined };
    const view = uses.get(p.out)?.length === 1 ? uses.get(p.out)![0]! : undefined;
    const vs = view?.op === 'Reshape' ? view.outputs[0]!.shape : undefined;
    const [nh, d] = vs ? vs.slice(-2) : [];
    if (vs && typeof nh === 'number' && typeof d === 'number' && nh * d === N && vs.length === (p.out.shape?.length ?? 0) + 1) p.heads = { out: view!.outputs[0]!, n: nh, d };
    groups.set(x, [...(groups.get(x) ?? []), p]);
  }
  return groups;
}

/** Fuses every group of two or more projections reading one input; returns what it fused. */
export function fuseProjections(graph: Graph, opts: FuseOptions): FusedGroup[] {
  if (opts.view) inferGraph(graph);
  const b = GraphBuilder.on(graph);
  const opset = graph.opsets[''] ?? 17;
  const done: FusedGroup[] = [];
  for (const [x, group] of projections(graph)) {
    if (group.length < 2) continue;
    const K = group[0]!.weight.dims[0]!;
    if (group.some((p) => p.weight.dims[0] !== K)) continue;
    const parts = (opts.order?.(group.length) ?? group.map((_, i) => i)).map((i) => group[i]!);
    const sizes = parts.map((p) => p.weight.dims[1]!);
    const total = sizes.reduce((a, s) => a + s, 0);
    const w = new Float64Array(K * total);
    const bias = new Float64Array(total);
    let off = 0;
    for (const p of parts) {
      const N = p.weight.dims[1]!;
      for (let k = 0; k < K; k++) w.set(p.weight.data.subarray(k * N, (k + 1) * N), k * total + off);
      if (p.bias) bias.set(p.bias.data, off);
      off += N;
    }
    const dtype = group[0]!.weight.dtype;
    const name = group[0]!.matmul.name.replace(/[^/]*\/MatMul$/, 'fused_proj');
    const wV = b.constant(`${name}.weight`, new Tensor(dtype, [K, total], w));
    const shapeOf = (v: Value, n: number) => (v.shape ? [...v.shape.slice(0, -1), n] : undefined);
    let y = b.node('MatMul', [x, wV], [{ name: `${name}/MatMul_output_0`, dtype, shape: shapeOf(group[0]!.out, total) }], {}, { name: `${name}/MatMul` }).outputs[0]!;
    const hasBias = group.some((p) => p.bias);
    if (hasBias) {
      const bV = b.constant(`${name}.bias`, new Tensor(dtype, [total], bias));
      y = b.node('Add', [y, bV], [{ name: `${name}/Add_output_0`, dtype, shape: y.shape }], {}, { name: `${name}/Add` }).outputs[0]!;
    }
    const i64 = (n: string, data: number[]) => b.constant(`${name}.${n}`, Tensor.from('int64', [data.length], data));
    // Cut by heads when every part is viewed as heads of one size; else along the last axis.
    const D = parts[0]!.heads?.d;
    const byHeads = opts.view === 'heads' && parts.every((p) => p.heads && p.heads.d === D);
    const replaced = parts.map((p) => (byHeads ? p.heads!.out : p.out));
    const widths = byHeads ? parts.map((p) => p.heads!.n) : sizes;
    let cut = y;
    if (byHeads) {
      const rank = (y.shape?.length ?? 3) + 1;
      const target = [...new Array<number>(rank - 2).fill(0), widths.reduce((a, n) => a + n, 0), D!];
      cut = b.node('Reshape', [y, i64('heads', target)], [{ name: `${name}/Reshape_output_0`, dtype }], {}, { name: `${name}/Reshape` }).outputs[0]!;
    }
    let cutOuts: Value[];
    if (opts.cut === 'split') {
      const axis = byHeads ? -2 : -1;
      const outs = replaced.map((v, i) => ({ name: `${name}/Split_output_${i}`, dtype, shape: v.shape }));
      const node = opset >= 13
        ? b.node('Split', [cut, i64('split', widths)], outs, { axis: attr.int(axis) }, { name: `${name}/Split` })
        : b.node('Split', [cut], outs, { axis: attr.int(axis), split: attr.ints(widths) }, { name: `${name}/Split` });
      cutOuts = node.outputs;
    } else {
      let start = 0;
      cutOuts = replaced.map((v, i) => {
        const s = start;
        start += widths[i]!;
        const ins = [cut, i64(`starts_${i}`, [s]), i64(`ends_${i}`, [start]), i64(`axes_${i}`, [byHeads ? -2 : -1])];
        return b.node('Slice', ins, [{ name: `${name}/Slice_${i}_output_0`, dtype, shape: v.shape }], {}, { name: `${name}/Slice_${i}` }).outputs[0]!;
      });
    }
    const uses = usesOf(graph);
    replaced.forEach((v, i) => {
      for (const n of uses.get(v) ?? []) n.inputs = n.inputs.map((u) => (u === v ? cutOuts[i]! : u));
      graph.outputs = graph.outputs.map((o) => (o === v ? cutOuts[i]! : o));
    });
    done.push({ input: x.name, sizes, bias: hasBias, heads: byHeads ? widths : undefined });
  }
  sortTopologically(graph);
  eliminateDeadCode(graph);
  return done;
}

/** Adds a small deterministic bias [N] after every MatMul with a constant 2-D weight (for the bias form). */
export function addProjectionBiases(graph: Graph, seed = 1): number {
  const b = GraphBuilder.on(graph);
  let s = seed >>> 0;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5) * 0.1;
  const uses = usesOf(graph);
  let count = 0;
  for (const n of [...graph.nodes]) {
    const w = n.inputs[1];
    if (n.op !== 'MatMul' || n.domain !== '' || !w?.constant || w.constant.dims.length !== 2) continue;
    const y = n.outputs[0]!;
    const N = w.constant.dims[1]!;
    const bV = b.constant(`${n.name}.bias`, Tensor.from(w.constant.dtype, [N], Array.from({ length: N }, rnd)));
    const add = b.node('Add', [y, bV], [{ name: `${y.name}.biased`, dtype: y.dtype, shape: y.shape }], {}, { name: `${n.name}/bias_add` });
    for (const r of uses.get(y) ?? []) r.inputs = r.inputs.map((v) => (v === y ? add.outputs[0]! : v));
    graph.outputs = graph.outputs.map((o) => (o === y ? add.outputs[0]! : o));
    count++;
  }
  sortTopologically(graph);
  return count;
}
