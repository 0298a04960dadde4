// Exporters that fuse projections (Q/K/V, or gate/up) write one MatMul with the weights side by side
// and cut its output: a Split with sizes (unequal under GQA, in any order) or Slices along the last
// axis, or along an axis of a view of it (Reshape [B, S, N] -> [B, S, G, D], then a cut of the G heads,
// or of D within each head as interleaved layouts do; or a 2-D [B*S, N] product reshaped to [B, S, N]). After raise-linear that is one `fhec::linear`
// whose output is only cut; this pass gives each part its own linear with the weight's (and bias's)
// columns of that part (and the part's view, as a Reshape), so rope, attention and swiglu raising see
// the unfused form. merge-projections later merges them again where the cost model says so, exactly
// as for a model exported unfused. Exact: each part is the same sums as before.

import { attrInt, hasAttr } from '../../ir/graph/attrs.js';
import type { Graph, Node, Value } from '../../ir/graph/types.js';
import { FHEC_DOMAIN } from '../../ir/canonical/ops.js';
import { Tensor } from '../../ir/tensor.js';
import type { Pass } from '../pass.js';
import { ColumnSelectTensor } from './lazy.js';
import { biasAddAfter } from './raise-linear.js';
import { axisSlice, concreteShape, normAxis, onnxOpset, raised, Rewriter, where } from './rewrite.js';

/** One part of a cut: the value holding the given columns of the linear's output (in its view's shape). */
interface Part {
  out: Value;
  columns: number[];
  /** The part's shape when the cut was of a view; undefined when of the linear's output itself. */
  view?: number[];
  /** Names the part's linear after the cut that made it. */
  label: string;
}

/** The [start, end) ranges a Split or Slice of `v` takes along one axis at or after `from`, with the outputs. */
function rangesOf(cut: Node, v: Value, shape: number[], from: number, opset: number): { axis: number; parts: { out: Value; range: [number, number]; label: string }[] } | string {
  const rank = shape.length;
  if (cut.domain !== '' || cut.inputs[0] !== v) return `read by ${where(cut)}`;
  if (cut.op === 'Split') {
    const axis = normAxis(hasAttr(cut, 'axis') ? attrInt(cut, 'axis') : 0, rank);
    if (axis === undefined || axis < from) return `${where(cut)} splits another axis`;
    // Shape inference already applied Split's size rule (ir/ops/split-sizes.ts) to the outputs.
    const widths = cut.outputs.map((o) => o.shape?.[axis]);
    if (widths.some((w) => typeof w !== 'number')) return `${where(cut)} has unknown sizes`;
    let start = 0;
    return {
      axis,
      parts: cut.outputs.map((out, i) => {
        const range: [number, number] = [start, (start += widths[i] as number)];
        return { out, range, label: `${cut.name}.${i}` };
      }),
    };
  }
  if (cut.op === 'Slice') {
    for (let axis = from; axis < rank; axis++) {
      const range = axisSlice(cut, rank, axis, shape[axis]!, opset);
      if (range && !(range[0] === 0 && range[1] === shape[axis])) return { axis, parts: [{ out: cut.outputs[0]!, range: [range[0], Math.max(range[0], range[1])], label: cut.name }] };
    }
    return `${where(cut)} is not a constant step-1 cut of one axis`;
  }
  return `read by ${where(cut)}`;
}

/** The columns of a [..., N] output that land at coordinate [lo, hi) of axis `axis` of its view `tail` (row-major). */
function columnsOf(tail: number[], axis: number, lo: number, hi: number): number[] {
  const stride = tail.slice(axis + 1).reduce((a, d) => a * d, 1);
  const N = tail.reduce((a, d) => a * d, 1);
  const cols: number[] = [];
  for (let c = 0; c < N; c++) {
    const k = Math.floor(c / stride) % tail[axis]!;
    if (k >= lo && k < hi) cols.push(c);
  }
  return cols;
}

/** The parts one reader of the linear's output `y` [...rows, N] cuts it into, or why it is no cut. */
function partsOf(rw: Rewriter, reader: Node, y: Value, opset: number): Part[] | string {
  const ys = concreteShape(y);
  if (!ys) return 'unknown output shape';
  const N = ys[ys.length - 1]!;
  let shape = ys;
  let from = ys.length - 1;
  let v = y;
  let cuts = [reader];
  const viewed = reader.op === 'Reshape' && reader.domain === '' && reader.inputs[0] === y;
  if (viewed) {
    // A view keeps rows and columns apart: its leading axes hold the rows (B*S, however shaped), its
    // trailing axes the N columns (as they are, or as heads [G, D]).
    v = reader.outputs[0]!;
    const vs = concreteShape(v);
    const prod = (d: number[]) => d.reduce((a, b) => a * b, 1);
    from = vs ? vs.findIndex((_, k) => prod(vs.slice(k)) === N && prod(vs.slice(0, k)) === prod(ys.slice(0, -1))) : -1;
    if (!vs || from < 0 || from === vs.length) return `${where(reader)} mixes rows and columns`;
    shape = vs;
    cuts = rw.usesOf(v);
    if (cuts.length === 0 || rw.isGraphOutput(v)) return `${where(reader)} is not cut`;
  }
  const tail = shape.slice(from);
  const parts: Part[] = [];
  for (const cut of cuts) {
    const r = rangesOf(cut, v, shape, from, opset);
    if (typeof r === 'string') return r;
    for (const p of r.parts) {
      const view = viewed ? shape.map((d, i) => (i === r.axis ? p.range[1] - p.range[0] : d)) : undefined;
      parts.push({ out: p.out, columns: columnsOf(tail, r.axis - from, p.range[0], p.range[1]), view, label: p.label });
    }
  }
  return parts;
}

export const unfuseProjectionsPass: Pass<Graph, Record<string, never>> = {
  name: 'unfuse-projections',
  summary: 'give each part of a linear whose output is only cut (Split, Slice, also of a Reshape view) its own linear',
  reads: 'canonical',
  writes: 'canonical',
  options: [],
  run(graph) {
    const rw = new Rewriter(graph);
    const opset = onnxOpset(graph);
    const notes: string[] = [];
    let fused = 0;
    let parts = 0;
    let biases = 0;
    const isCut = (n: Node) => n.domain === '' && (n.op === 'Split' || n.op === 'Slice');
    for (const node of [...graph.nodes]) {
      if (node.domain !== FHEC_DOMAIN || node.op !== 'linear') continue;
      const y = node.outputs[0]!;
      const readers = rw.usesOf(y);
      const cutSeen = readers.some((r) => isCut(r) || (r.op === 'Reshape' && rw.usesOf(r.outputs[0]!).some(isCut)));
      if (readers.length === 0 || rw.isGraphOutput(y) || !cutSeen) continue;
      const [x, w, b] = node.inputs as [Value, Value, Value | undefined];
      const found = readers.map((r) => partsOf(rw, r, y, opset));
      const why = found.find((c): c is string => typeof c === 'string') ?? (found.some((ps) => (ps as Part[]).some((p) => p.columns.length === 0)) ? 'a part is empty' : undefined);
      if (why !== undefined) {
        notes.push(`${where(node)}: left fused: ${why}`);
        continue;
      }
      for (const p of (found as Part[][]).flat()) {
        const cols = p.columns.length && p.columns.every((c, i) => c === p.columns[0]! + i) ? `${p.columns[0]}:${p.columns[0]! + p.columns.length}` : `${p.columns.length} of ${w.constant!.dims[1]}`;
        const wPart = rw.constant(`${w.name}[:, ${cols}]`, new ColumnSelectTensor(w.constant!, p.columns));
        let bias = b ? rw.constant(`${b.name}[${cols}]`, new ColumnSelectTensor(b.constant!, p.columns)) : null;
        let out = p.out;
        // A bias added after the cut (per part, not through a view) belongs to that part's linear.
        const add = bias || p.view ? undefined : biasAddAfter(rw, out, p.columns.length);
        if (add) {
          ({ bias, out } = add);
          biases++;
        }
        const flat = p.view ? [...y.shape!.slice(0, -1), p.columns.length] : out.shape;
        const lin = rw.canonical('linear', [x, wPart, bias], [{ name: `${p.out.name}.linear`, dtype: out.dtype, shape: flat }], {}, node);
        lin.name = `${p.label}:linear`;
        let result = lin.outputs[0]!;
        if (p.view) {
          // The part's view, as the unfused export writes it after its projection.
          const target = rw.constant(`${p.out.name}.view`, Tensor.from('int64', [p.view.length], p.view));
          result = rw.b.node('Reshape', [result, target], [{ name: `${p.out.name}.viewed`, dtype: out.dtype, shape: p.view }], {}, { name: `${p.label}/Reshape` }).outputs[0]!;
        }
        rw.replace(out, result);
        parts++;
      }
      fused++;
    }
    rw.finish();
    return raised(fused > 0, { fused, parts, biases }, notes);
  },
};
