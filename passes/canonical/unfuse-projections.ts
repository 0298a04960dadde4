// Exporters that fuse projections (Q/K/V, or gate/up) write one MatMul with the weights side by side
// and cut its output along the last axis: a Split with sizes (unequal under GQA, in any order), or
// Slices. After raise-linear that is one `fhec::linear` whose output is only cut; this pass gives each
// part its own linear with the weight's (and bias's) columns of that part, so rope, attention and
// swiglu raising see the unfused form. merge-projections later merges them again where the cost model
// says so, exactly as for a model exported unfused. Exact: each part is the same sum as before.

import { attrInt, hasAttr } from '../../ir/graph/attrs.js';
import type { Graph, Node, Value } from '../../ir/graph/types.js';
import { FHEC_DOMAIN } from '../../ir/canonical/ops.js';
import type { Pass } from '../pass.js';
import { ColumnSliceTensor } from './lazy.js';
import { biasAddAfter } from './raise-linear.js';
import { lastAxisSlice, normAxis, onnxOpset, raised, Rewriter, where } from './rewrite.js';

/** One part of a cut: the value that holds columns [start, start + width) of the linear's output. */
interface Part {
  out: Value;
  start: number;
  width: number;
  reader: Node;
  /** Names the part's linear after the cut that made it. */
  label: string;
}

/** The parts an ONNX Split or Slice reading `y` (last dim N) cuts along the last axis, or why not. */
function cutsOf(reader: Node, y: Value, N: number, opset: number): Part[] | string {
  const rank = y.shape?.length;
  if (reader.domain !== '' || reader.inputs[0] !== y || rank === undefined) return `read by ${where(reader)}`;
  if (reader.op === 'Split') {
    const axis = normAxis(hasAttr(reader, 'axis') ? attrInt(reader, 'axis') : 0, rank);
    if (axis !== rank - 1) return `${where(reader)} splits another axis`;
    // Shape inference already applied Split's size rule (ir/ops/split-sizes.ts) to the outputs.
    const widths = reader.outputs.map((o) => o.shape?.[rank - 1]);
    if (widths.some((w) => typeof w !== 'number')) return `${where(reader)} has unknown sizes`;
    let start = 0;
    return reader.outputs.map((out, i) => {
      const part = { out, start, width: widths[i] as number, reader, label: `${reader.name}.${i}` };
      start += part.width;
      return part;
    });
  }
  if (reader.op === 'Slice') {
    const range = lastAxisSlice(reader, rank, N, opset);
    if (!range) return `${where(reader)} is not a constant step-1 cut of the last axis`;
    return [{ out: reader.outputs[0]!, start: range[0], width: Math.max(0, range[1] - range[0]), reader, label: reader.name }];
  }
  return `read by ${where(reader)}`;
}

export const unfuseProjectionsPass: Pass<Graph, Record<string, never>> = {
  name: 'unfuse-projections',
  summary: 'give each part of a linear whose output is only cut along its last axis (Split, Slice) its own linear',
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
    for (const node of [...graph.nodes]) {
      if (node.domain !== FHEC_DOMAIN || node.op !== 'linear') continue;
      const y = node.outputs[0]!;
      const readers = rw.usesOf(y);
      if (readers.length === 0 || rw.isGraphOutput(y) || !readers.some((r) => r.op === 'Split' || r.op === 'Slice')) continue;
      const [x, w, b] = node.inputs as [Value, Value, Value | undefined];
      const N = w.constant!.dims[1]!;
      const cuts = readers.map((r) => cutsOf(r, y, N, opset));
      const why = cuts.find((c): c is string => typeof c === 'string');
      if (why !== undefined) {
        notes.push(`${where(node)}: left fused: ${why}`);
        continue;
      }
      for (const p of (cuts as Part[][]).flat()) {
        const cols = `${p.start}:${p.start + p.width}`;
        const wPart = rw.constant(`${w.name}[:, ${cols}]`, new ColumnSliceTensor(w.constant!, p.start, p.width));
        let bias = b ? rw.constant(`${b.name}[${cols}]`, new ColumnSliceTensor(b.constant!, p.start, p.width)) : null;
        let out = p.out;
        // A bias added after the cut (per part) belongs to that part's linear.
        const add = bias ? undefined : biasAddAfter(rw, out, p.width);
        if (add) {
          ({ bias, out } = add);
          biases++;
        }
        const lin = rw.canonical('linear', [x, wPart, bias], [{ name: `${p.out.name}.linear`, dtype: out.dtype, shape: out.shape }], {}, p.reader);
        lin.name = `${p.label}:linear`;
        rw.replace(out, lin.outputs[0]!);
        parts++;
      }
      fused++;
    }
    rw.finish();
    return raised(fused > 0, { fused, parts, biases }, notes);
  },
};
