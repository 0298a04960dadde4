// Raises rotary position embeddings to `fhec::rope` (explicit positions, cos/sin tables [rows, d/2]):
//  - ONNX RotaryEmbedding (opset 23) and com.microsoft::RotaryEmbedding, which already have that form;
//  - PyTorch's decomposed rotate-half form x * cos + rotate_half(x) * sin, where rotate_half(x) =
//    Concat(-x[..., d/2:], x[..., :d/2]). Its cos/sin are either constants (positions computed in the
//    graph, folded after specialization) or computed from a position_ids input. In the second case the
//    cos/sin subgraph is proved to be a function of each token's position alone (cone.ts) and the
//    table is filled by evaluating that subgraph at positions 0..rows-1. A table whose two halves
//    differ is not a rotate-half RoPE and is left alone.
// When x is a head split of a [B, S, N*H] value, the rope is applied to that value (num_heads N) and
// the split is redone after it, so attention raising sees rope(q) in the canonical layout.

import { attrInt } from '../../ir/graph/attrs.js';
import type { Graph, Node, Value } from '../../ir/graph/types.js';
import { Tensor } from '../../ir/tensor.js';
import type { Pass } from '../pass.js';
import { coneOf, evalCone, trackLocality } from './cone.js';
import { matchHeadSplit } from './heads.js';
import { concreteShape, constTensor, lastAxisSlice, normAxis, onnxOpset, producedBy, raised, Rewriter, where } from './rewrite.js';

export interface RaiseRopeOptions {
  /** Rows of the table built for a position_ids input (positions 0..rows-1). */
  'table-rows': number;
}

interface Table {
  positions: Value | Tensor;
  cos: Tensor;
  sin: Tensor;
}

/** rotate_half(x) = Concat(Neg(x[..., h:]), x[..., :h]) along the last axis: returns x. */
function matchRotateHalf(v: Value, opset: number): Value | string | undefined {
  const cat = producedBy(v, 'Concat');
  if (!cat || cat.inputs.length !== 2) return undefined;
  const neg = producedBy(cat.inputs[0], 'Neg');
  const lo = producedBy(cat.inputs[1], 'Slice');
  const hi = producedBy(neg?.inputs[0], 'Slice');
  if (!neg || !lo || !hi || lo.inputs[0] !== hi.inputs[0]) return undefined;
  const x = lo.inputs[0]!;
  const shape = concreteShape(x);
  if (!shape) return undefined;
  const r = shape.length;
  if (normAxis(attrInt(cat, 'axis'), r) !== r - 1) return 'rotate_half concatenates along another axis';
  const d = shape[r - 1]!;
  const a = lastAxisSlice(hi, r, d, opset);
  const b = lastAxisSlice(lo, r, d, opset);
  if (!a || !b || d % 2 !== 0 || a[0] !== d / 2 || a[1] !== d || b[0] !== 0 || b[1] !== d / 2) {
    return `rotate_half slices [${a?.join(':')}] and [${b?.join(':')}] are not the two halves of ${d} channels`;
  }
  return x;
}

/** Both halves of each row equal (the rotate-half RoPE repeats its angles); returns [rows, d/2]. */
function halfTable(t: Tensor, rows: number, d: number): Tensor | undefined {
  const h = d / 2;
  const out = new Float64Array(rows * h);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < h; i++) {
      const a = t.data[r * d + i]!;
      if (a !== t.data[r * d + h + i]) return undefined;
      out[r * h + i] = a;
    }
  }
  return new Tensor(t.dtype, [rows, h], out);
}

/**
 * The table of a decomposed rope's cos and sin values (broadcast against x [B, N, S, H]): constants
 * give one row per (batch, token); a position_ids input gives rows 0..tableRows-1.
 */
function deriveTable(graph: Graph, cosV: Value, sinV: Value, x: number[], tableRows: number): Table | string {
  const [B, , S, H] = x as [number, number, number, number];
  for (const v of [cosV, sinV]) {
    const s = concreteShape(v);
    if (!s || s.length > 4) return `unknown or unsupported shape of '${v.name}'`;
    const d = [...new Array<number>(4 - s.length).fill(1), ...s];
    if (d[1] !== 1) return `'${v.name}' varies across heads`;
    if (d[2] !== S || d[3] !== H || (d[0] !== 1 && d[0] !== B)) return `'${v.name}' [${s.join(', ')}] is not a per-token table for x [${x.join(', ')}]`;
  }
  const cosT = constTensor(cosV);
  const sinT = constTensor(sinV);
  if (cosT && sinT) {
    const rows = cosT.size / H;
    const cos = halfTable(cosT, rows, H);
    const sin = halfTable(sinT, rows, H);
    if (!cos || !sin) return 'cos/sin halves differ: not a rotate-half rotary embedding';
    const perBatch = rows === S;
    const pos = Array.from({ length: B * S }, (_, k) => (perBatch ? k % S : k));
    return { positions: Tensor.from('int64', [B, S], pos), cos, sin };
  }
  const cones = [coneOf(graph, cosV), coneOf(graph, sinV)];
  const src = cones[0]!.leaves[0];
  if (!src || cones.some((c) => c.leaves.length !== 1 || c.leaves[0] !== src) || !graph.inputs.includes(src)) {
    return 'cos/sin do not depend on exactly one graph input (position_ids)';
  }
  const ps = concreteShape(src);
  if (!ps || ps.length !== 2 || ps[0] !== B || ps[1] !== S || src.dtype === 'bool' || src.dtype.startsWith('float')) {
    return `'${src.name}' is not an integer [${B}, ${S}] position input`;
  }
  for (const [c, v] of [[cones[0]!, cosV], [cones[1]!, sinV]] as const) {
    const loc = trackLocality(graph, c, src, { b: 0, s: 1 }, v, { constantsMayVary: false });
    if (typeof loc === 'string') return `'${v.name}' is not a function of each token's position: ${loc}`;
    const shift = 4 - concreteShape(v)!.length;
    if (loc['s']! + shift !== 2) return `'${src.name}' does not map to the token axis of '${v.name}'`;
  }
  // Fill the table S positions at a time (the subgraph is specialized to S tokens).
  const rows = Math.max(tableRows, S);
  const cos = new Float64Array(rows * H);
  const sin = new Float64Array(rows * H);
  const merged = { nodes: graph.nodes.filter((n) => cones[0]!.nodes.includes(n) || cones[1]!.nodes.includes(n)), leaves: [src] };
  for (let start = 0; start < rows; start += S) {
    const pos = Array.from({ length: B * S }, (_, k) => Math.min(start + (k % S), rows - 1));
    const env = evalCone(graph, merged, new Map([[src, Tensor.from(src.dtype, [B, S], pos)]]));
    const c = env.get(cosV)!, s = env.get(sinV)!;
    for (let k = 0; k < S && start + k < rows; k++) {
      cos.set(c.data.subarray(k * H, (k + 1) * H), (start + k) * H);
      sin.set(s.data.subarray(k * H, (k + 1) * H), (start + k) * H);
    }
  }
  const cosH = halfTable(new Tensor(cosV.dtype, [rows, H], cos), rows, H);
  const sinH = halfTable(new Tensor(sinV.dtype, [rows, H], sin), rows, H);
  if (!cosH || !sinH) return 'cos/sin halves differ: not a rotate-half rotary embedding';
  return { positions: src, cos: cosH, sin: sinH };
}

/** Root Add(Mul(x, cos), Mul(rotate_half(x), sin)) in any operand order. */
function matchDecomposed(node: Node, opset: number): { x: Value; cos: Value; sin: Value } | string | undefined {
  if (node.op !== 'Add' || node.domain !== '') return undefined;
  const [m1, m2] = [producedBy(node.inputs[0], 'Mul'), producedBy(node.inputs[1], 'Mul')];
  if (!m1 || !m2) return undefined;
  for (const [a, b] of [[m1, m2], [m2, m1]] as const) {
    for (const [ri, si] of [[0, 1], [1, 0]] as const) {
      const rot = matchRotateHalf(b.inputs[ri]!, opset);
      if (rot === undefined) continue;
      if (typeof rot === 'string') return rot;
      const x = rot;
      const ci = a.inputs[0] === x ? 1 : a.inputs[1] === x ? 0 : -1;
      if (ci < 0) return `the cos term does not multiply the rotated value '${x.name}'`;
      return { x, cos: a.inputs[ci]!, sin: b.inputs[si]! };
    }
  }
  return undefined;
}

export const raiseRopePass: Pass<Graph, RaiseRopeOptions> = {
  name: 'raise-rope',
  summary: 'raise RotaryEmbedding (ONNX 23, com.microsoft) and decomposed rotate-half RoPE to fhec::rope',
  reads: 'graph',
  writes: 'canonical',
  options: [{ name: 'table-rows', type: 'int', help: 'cos/sin rows built for a position_ids input', default: 2048 }],
  run(graph, opts) {
    const rw = new Rewriter(graph);
    const opset = onnxOpset(graph);
    const notes: string[] = [];
    const stats = { onnx: 0, microsoft: 0, decomposed: 0, headSplitsAbsorbed: 0 };
    const tables = new Map<string, { pos: Value; cos: Value; sin: Value }>();
    for (const node of [...graph.nodes]) {
      const y = node.outputs[0]!;
      if (node.op === 'RotaryEmbedding' && (node.domain === '' || node.domain === 'com.microsoft')) {
        const ms = node.domain === 'com.microsoft';
        const [x, pos, cos, sin] = ms ? [node.inputs[0], node.inputs[1], node.inputs[2], node.inputs[3]] : [node.inputs[0], node.inputs[3], node.inputs[1], node.inputs[2]];
        // Symbolic batch/sequence dims are fine; the hidden size must be known.
        const xs = x?.shape;
        const cs = concreteShape(cos);
        const psh = pos?.shape;
        if (!x || !cos || !sin || !xs || !cs || (xs.length !== 3 && xs.length !== 4) || typeof xs[xs.length - 1] !== 'number') {
          notes.push(`${where(node)}: left alone: unknown input or cache shape`);
          continue;
        }
        const seqDim = xs[xs.length === 4 ? 2 : 1];
        if (!pos || !psh || psh.length !== 2 || psh[0] === null || psh[0] !== xs[0] || seqDim === null || psh[1] !== seqDim) {
          notes.push(`${where(node)}: left alone: needs position_ids of shape [batch, sequence] (got ${psh ? `[${psh.join(', ')}]` : 'none'})`);
          continue;
        }
        if (cs.length !== 2) {
          notes.push(`${where(node)}: left alone: cos cache [${cs}] is not [rows, d/2]`);
          continue;
        }
        if (ms && attrInt(node, 'is_packed_batching', 0) !== 0) {
          notes.push(`${where(node)}: left alone: is_packed_batching`);
          continue;
        }
        let heads = attrInt(node, 'num_heads', 0);
        const rd = attrInt(node, 'rotary_embedding_dim', 0);
        if (xs.length === 3 && heads === 0) {
          // ORT: without num_heads the head size is the full rotary width (twice the cache width).
          if (rd !== 0) {
            notes.push(`${where(node)}: left alone: rotary_embedding_dim without num_heads`);
            continue;
          }
          heads = (xs[2] as number) / (2 * cs[1]!);
          if (!Number.isInteger(heads)) {
            notes.push(`${where(node)}: left alone: hidden size ${xs[2]} is not a multiple of ${2 * cs[1]!}`);
            continue;
          }
        }
        const attrs = { num_heads: { kind: 'int' as const, value: xs.length === 3 ? heads : 0 }, interleaved: { kind: 'int' as const, value: attrInt(node, 'interleaved', 0) }, rotary_dim: { kind: 'int' as const, value: rd } };
        const r = rw.canonical('rope', [x, pos, cos, sin], [{ name: `${y.name}.rope`, dtype: y.dtype, shape: y.shape }], attrs, node);
        rw.replace(y, r.outputs[0]!);
        ms ? stats.microsoft++ : stats.onnx++;
        continue;
      }
      const m = matchDecomposed(node, opset);
      if (m === undefined) continue;
      if (typeof m === 'string') {
        notes.push(`${where(node)}: rotary-like pattern left alone: ${m}`);
        continue;
      }
      const xs = concreteShape(m.x);
      if (!xs || xs.length !== 4) {
        notes.push(`${where(node)}: rotary-like pattern left alone: x is not [B, N, S, H]`);
        continue;
      }
      // Q and K of every layer usually share one cos/sin pair: derive (and store) its table once.
      const key = `${m.cos.name}\u0000${m.sin.name}\u0000${xs[0]}`;
      let tv = tables.get(key);
      if (!tv) {
        const table = deriveTable(graph, m.cos, m.sin, xs, opts['table-rows']);
        if (typeof table === 'string') {
          notes.push(`${where(node)}: rotary-like pattern left alone: ${table}`);
          continue;
        }
        const base = m.cos.name.replace(/_output_0$|\/output_0$/, '');
        tv = {
          pos: table.positions instanceof Tensor ? rw.constant(`${base}.positions`, table.positions) : table.positions,
          cos: rw.constant(`${base}.cos_cache`, table.cos),
          sin: rw.constant(`${base}.sin_cache`, table.sin),
        };
        tables.set(key, tv);
      }
      const { pos: posV, cos: cosV, sin: sinV } = tv;
      const split = matchHeadSplit(m.x);
      let out: Value;
      if (split) {
        const r3 = rw.canonical('rope', [split.x3, posV, cosV, sinV], [{ name: `${node.name}.rope`, dtype: split.x3.dtype, shape: split.x3.shape }], { num_heads: { kind: 'int', value: split.heads } }, node);
        const re = rw.b.node('Reshape', [r3.outputs[0]!, split.reshape.inputs[1]!], [{ dtype: y.dtype, shape: split.reshape.outputs[0]!.shape }], split.reshape.attrs, { name: `${node.name}.split_heads` });
        out = rw.b.node('Transpose', [re.outputs[0]!], [{ dtype: y.dtype, shape: y.shape }], split.transpose.attrs, { name: `${node.name}.heads_first` }).outputs[0]!;
        stats.headSplitsAbsorbed++;
      } else {
        out = rw.canonical('rope', [m.x, posV, cosV, sinV], [{ name: `${node.name}.rope`, dtype: y.dtype, shape: y.shape }], {}, node).outputs[0]!;
      }
      rw.replace(y, out);
      stats.decomposed++;
    }
    rw.finish();
    const total = stats.onnx + stats.microsoft + stats.decomposed;
    return raised(total > 0, stats, notes);
  },
};
