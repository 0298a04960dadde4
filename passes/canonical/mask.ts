// Decides what an attention mask computes. The mask is an additive bias on the scaled scores
// [B, heads, S, T] (broadcast). It is raised only when proved to be exactly "causal (offset by the
// past length P) and/or key padding from a 0/1 attention_mask": every element must be 0 (attend) or a
// large negative fill (masked), laid out as that rule says.
//  - A constant mask (specialized and folded) is compared element by element.
//  - A mask computed from a graph input (attention_mask) is proved local in that input (cone.ts), then
//    probed with an all-ones and an all-zeros mask: by locality each element depends on one mask bit,
//    so the two probes decide the result for every 0/1 attention_mask.

import type { Graph, Value } from '../../ir/graph/types.js';
import { FLOAT32_LOWEST } from '../../ir/canonical/ops.js';
import { Tensor } from '../../ir/tensor.js';
import { coneOf, evalCone, trackLocality } from './cone.js';
import { concreteShape, constTensor } from './rewrite.js';

/** A bias at or below this masks its key: exp(-1e4 + anything sane) is exactly 0 in float64. */
const MASKED_AT_MOST = -1e4;

export interface MaskGeometry {
  B: number;
  heads: number;
  S: number;
  /** Past length: query i sits at absolute position P + i. */
  P: number;
  T: number;
}

export interface MaskProof {
  causal: boolean;
  /** The 0/1 key-padding input (a graph input), if the mask depends on one. */
  padding: Value | null;
  /** The fill value of masked keys (the largest one, if the exporter used several). */
  maskValue: number;
}

export type MaskVerdict = MaskProof | { reason: string };

type Cell = 'attend' | 'masked';

/** Reads a [.., T] tensor broadcast right-aligned to [B, heads, S, T] and classifies each element. */
function classify(t: Tensor, g: MaskGeometry): { cells: (b: number, n: number, i: number, j: number) => Cell; fill: number } | { reason: string } {
  const target = [g.B, g.heads, g.S, g.T];
  if (t.dims.length > 4) return { reason: `mask of rank ${t.dims.length}` };
  const dims = [...new Array<number>(4 - t.dims.length).fill(1), ...t.dims];
  for (let a = 0; a < 4; a++) {
    if (dims[a] !== 1 && dims[a] !== target[a]) return { reason: `mask [${t.dims.join(', ')}] does not broadcast to [${target.join(', ')}]` };
  }
  if (dims[3] !== g.T) return { reason: `mask has ${dims[3]} key columns, attention has ${g.T}` };
  const strides = [0, 0, 0, 0];
  let acc = 1;
  for (let a = 3; a >= 0; a--) {
    strides[a] = dims[a] === 1 ? 0 : acc;
    acc *= dims[a]!;
  }
  let fill = -Infinity;
  for (const v of t.data) {
    if (v === 0) continue;
    if (!(v <= MASKED_AT_MOST)) return { reason: `mask value ${v} is neither 0 nor a fill <= ${MASKED_AT_MOST} (a bias on the scores, not a mask)` };
    fill = Math.max(fill, v);
  }
  return {
    cells: (b, n, i, j) => (t.data[b * strides[0]! + n * strides[1]! + i * strides[2]! + j * strides[3]!] === 0 ? 'attend' : 'masked'),
    fill,
  };
}

/** Whether the cells are causal (offset P), empty, or neither. */
function causality(cells: (b: number, n: number, i: number, j: number) => Cell, g: MaskGeometry): { causal: boolean } | { reason: string } {
  let causalOk = true;
  let emptyOk = true;
  let first = '';
  for (let b = 0; b < g.B; b++)
    for (let n = 0; n < g.heads; n++)
      for (let i = 0; i < g.S; i++)
        for (let j = 0; j < g.T; j++) {
          const c = cells(b, n, i, j);
          const wantCausal: Cell = j > g.P + i ? 'masked' : 'attend';
          if (c !== wantCausal) {
            causalOk = false;
            first ||= `query ${i} key ${j} is ${c}`;
          }
          if (c !== 'attend') emptyOk = false;
        }
  if (causalOk) return { causal: true };
  if (emptyOk) return { causal: false };
  return { reason: `mask is neither causal with past offset ${g.P} nor empty (${first})` };
}

export function analyzeMask(graph: Graph, mask: Value, g: MaskGeometry): MaskVerdict {
  const t = constTensor(mask);
  if (t) {
    const c = classify(t, g);
    if ('reason' in c) return c;
    const k = causality(c.cells, g);
    if ('reason' in k) return k;
    return { causal: k.causal, padding: null, maskValue: c.fill === -Infinity ? FLOAT32_LOWEST : c.fill };
  }
  const cone = coneOf(graph, mask);
  const sources = cone.leaves;
  const src = sources[0];
  if (sources.length !== 1 || !src || !graph.inputs.includes(src)) {
    return { reason: `mask depends on ${sources.map((v) => `'${v.name}'`).join(', ')}, not on one graph input` };
  }
  const srcShape = concreteShape(src);
  if (!srcShape || srcShape.length !== 2 || srcShape[0] !== g.B || srcShape[1] !== g.T) {
    return { reason: `mask source '${src.name}' is not a [${g.B}, ${g.T}] key mask` };
  }
  const maskShape = concreteShape(mask);
  if (!maskShape) return { reason: 'mask shape unknown' };
  const loc = trackLocality(graph, cone, src, { b: 0, j: 1 }, mask, { constantsMayVary: true });
  if (typeof loc === 'string') return { reason: `mask is not elementwise in '${src.name}': ${loc}` };
  const shift = 4 - maskShape.length;
  if (loc['b']! + shift !== 0 || loc['j']! + shift !== 3) return { reason: `'${src.name}' does not map to the batch and key axes of the mask` };
  const probe = (value: number) => {
    const feed = Tensor.from(src.dtype, srcShape, new Array<number>(g.B * g.T).fill(value));
    return evalCone(graph, cone, new Map([[src, feed]])).get(mask)!;
  };
  const ones = classify(probe(1), g);
  if ('reason' in ones) return { reason: `with an all-ones ${src.name}: ${ones.reason}` };
  const k = causality(ones.cells, g);
  if ('reason' in k) return { reason: `with an all-ones ${src.name}: ${k.reason}` };
  const zeros = classify(probe(0), g);
  if ('reason' in zeros) return { reason: `with an all-zeros ${src.name}: ${zeros.reason}` };
  for (let b = 0; b < g.B; b++)
    for (let n = 0; n < g.heads; n++)
      for (let i = 0; i < g.S; i++)
        for (let j = 0; j < g.T; j++) {
          if (zeros.cells(b, n, i, j) !== 'masked') return { reason: `a 0 in '${src.name}' does not mask key ${j} for query ${i}` };
        }
  return { causal: k.causal, padding: src, maskValue: Math.max(ones.fill, zeros.fill) };
}
