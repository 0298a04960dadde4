// The canonical ops other than attention, lowered for lower-model.ts: the client-side embedding
// (an encrypted input), rms_norm, linear (split and swiglu consumers fused in), rope, silu/swiglu,
// and elementwise add/mul. Each reads its operands' activations and sets its outputs'.

import { FhecError, nodeLabel } from '../../../ir/errors.js';
import { attrFloat, attrInt } from '../../../ir/graph/attrs.js';
import type { Node, Value } from '../../../ir/graph/types.js';
import { applyApproximation } from '../approximate/approximation.js';
import { groupLayouts, rowBlocks, rowsOf, sameCuts, type Activation } from './activation.js';
import { invsqrtInterval, siluInterval } from './fit-intervals.js';
import { feedsLastTokenLinear, lastTokenOnly, lastTokenRow } from './last-token.js';
import { lowerLinearColumns, type LinearStats, type WeightReference, type WeightShape } from './linear.js';
import type { EmbeddingGroup } from './lower-model.js';
import { act, constTensor, fit, headSizeFor, kvGroup, partColumns, probe, rangeOf, TARGET_FIX, withColumns, type ModelLowering, type NodeLowering } from './model-context.js';
import { lowerRmsNormBlock } from './rms-norm.js';
import { lowerRopeBlock } from './rope.js';

/** A linear weight's dims and where it lives, without reading it (cost estimates). */
function weightShape(v: Value | null | undefined, node: Node): WeightShape {
  if (!v?.constant) throw new FhecError('linear weight must be a constant', { node: nodeLabel(node) });
  return { dims: v.constant.dims, location: v.constant.location };
}

/** A linear weight by reference to its external data, when it has a recipe (else undefined: read it). */
function weightReference(v: Value | null | undefined): WeightReference | undefined {
  const recipe = v?.constant?.recipe?.();
  return recipe && v?.constant ? { dims: v.constant.dims, recipe } : undefined;
}

export function lowerEmbedding(m: ModelLowering, node: Node): void {
  const out = node.outputs[0]!;
  const ids = node.inputs[0]!;
  if (!m.graph.inputs.includes(ids)) throw new FhecError('embedding ids must be a model input (the client looks them up)', { node: nodeLabel(node) });
  const tv = node.inputs[1];
  if (!tv?.constant) throw new FhecError('embedding table must be a constant', { node: nodeLabel(node) });
  // Kept lazy: a cost estimate never reads a 128k-row table.
  const table = tv.constant;
  const dims = out.shape as number[];
  m.tokens = dims[1]!;
  const d = dims[2]!;
  const groups = groupLayouts(m.grouping, d, m.slots);
  const inputs: EmbeddingGroup[] = groups.map((g, i) => ({ fhe: groups.length === 1 ? 'embeddings' : `embeddings#${i}`, ...g }));
  const xs = inputs.map((g) => m.b.input(g.fhe, g.layout, undefined, 'embeddings'));
  m.embedding = { ids: ids.name, table, fhe: inputs[0]!.fhe, layout: inputs[0]!.layout, ...(inputs.length > 1 ? { groups: inputs } : {}) };
  m.acts.set(out, rowBlocks(xs, d, m.grouping, m.slots));
}

export function lowerRmsNorm(m: ModelLowering, n: NodeLowering): void {
  const node = n.node;
  const out = node.outputs[0]!;
  const x = act(m, node.inputs[0]!, node);
  if (x.columns) throw new FhecError('rms_norm of a value held with padded heads', { node: nodeLabel(node) });
  const r = rangeOf(out, 'rms_norm', node, 'norm_arg');
  const d = x.length;
  const invsqrt = fit(node, 'invsqrt', invsqrtInterval(d, r), { maxRelError: m.targets.invsqrtRel }, {
    what: `its input (sum of squares + d eps over ${d} features, mean square ${r.lo.toPrecision(3)}..${r.hi.toPrecision(3)})`,
    calibrated: [d * r.lo, d * r.hi],
    fix: TARGET_FIX,
  });
  const gamma = node.inputs[1] ? constTensor(node.inputs[1], node, 'rms_norm gain').data : undefined;
  // Before an lm_head held for the last position only, the gain zeroes every other token (no level).
  const lastOnly = feedsLastTokenLinear(m.graph, m.opts.logits, m.uses.get(out) ?? []);
  if (lastOnly) m.lastTokenZeroed.add(out);
  const lastToken = x.tokens - 1;
  const ys = rowsOf(x, 'rms_norm').map((blk) => {
    const keep = lastOnly ? (t: number) => blk.tokenStart + t === lastToken : undefined;
    const res = lowerRmsNormBlock(m.b, blk.value, blk.layout, attrFloat(node, 'epsilon', 1e-5), gamma, invsqrt, keep);
    probe(m, n, '1/sqrt(sum x^2 + d eps)', invsqrt, res.arg, res.inv, [d * r.min, d * r.max], res.realSlots, { outputScale: res.invScale });
    return res.value;
  });
  m.acts.set(out, rowBlocks(ys, d, m.grouping, m.slots));
}

/** A linear whose only consumer is a split or a one-input swiglu is lowered per part, for that consumer. */
export function lowerLinear(m: ModelLowering, node: Node): void {
  const out = node.outputs[0]!;
  const stats: LinearStats = { rotations: 0, plainMultiplications: 0 };
  // Logits of the last position only (a generation prefill): the product runs on that row alone.
  const x = lastTokenOnly(m.graph, m.opts.logits, out)
    ? lastTokenRow(m.b, act(m, node.inputs[0]!, node), m.lastTokenZeroed.has(node.inputs[0]!), stats)
    : act(m, node.inputs[0]!, node);
  const w = m.opts.weights === 'shapes' ? weightShape(node.inputs[1], node) : (m.opts.weights === 'references' && weightReference(node.inputs[1])) || constTensor(node.inputs[1], node, 'linear weight');
  const bias = node.inputs[2] ? constTensor(node.inputs[2], node, 'linear bias') : undefined;
  const consumers = m.uses.get(out) ?? [];
  const N = w.dims[1]!;
  const isGraphOutput = m.graph.outputs.includes(out);
  if (consumers.length === 1 && consumers[0]!.op === 'split' && !isGraphOutput) {
    const split = consumers[0]!;
    let start = 0;
    split.outputs.forEach((part) => {
      const size = part.shape![2] as number;
      const g = kvGroup(m, part);
      const cols = partColumns(start, size, g, headSizeFor(m, part));
      m.acts.set(part, lowerLinearColumns(m.b, x, w, bias, cols, { replicate: true, partStart: start }, stats));
      if (g > 1) m.expanded.set(part, g);
      start += size;
    });
  } else if (consumers.length === 1 && consumers[0]!.op === 'swiglu' && !consumers[0]!.inputs[1] && !isGraphOutput) {
    const half = N / 2;
    const cols = (s: number) => Array.from({ length: half }, (_, i) => s + i);
    m.pendingSwiglu.set(consumers[0]!, {
      gate: lowerLinearColumns(m.b, x, w, bias, cols(0), { replicate: true }, stats),
      up: lowerLinearColumns(m.b, x, w, bias, cols(half), { replicate: true, partStart: half }, stats),
    });
  } else {
    const g = kvGroup(m, out);
    const cols = partColumns(0, N, g, headSizeFor(m, out));
    const needsReplication = consumers.length > 0;
    m.acts.set(out, lowerLinearColumns(m.b, x, w, bias, cols, { replicate: needsReplication }, stats));
    if (g > 1) m.expanded.set(out, g);
  }
}

export function checkSplit(m: ModelLowering, node: Node): void {
  for (const o of node.outputs) if (!m.acts.has(o)) throw new FhecError('split of a value that is not a linear output', { node: nodeLabel(node) });
}

export function lowerRope(m: ModelLowering, node: Node): void {
  const out = node.outputs[0]!;
  const xv = node.inputs[0]!;
  const x = act(m, xv, node);
  if (xv.shape?.length !== 3) throw new FhecError('rope lowering takes [B, S, N*H] inputs', { node: nodeLabel(node) });
  const heads = attrInt(node, 'num_heads', 0);
  const H = (xv.shape[2] as number) / heads;
  // Held heads (GQA-expanded, padded): the tables depend only on the channel within a held head.
  const held = x.length / (heads * (m.expanded.get(xv) ?? 1));
  // Positions from a model input (position_ids): a prefill plan fixes them to 0..S-1 (the session checks).
  const posv = node.inputs[1];
  const fromInput = posv !== null && posv !== undefined && m.graph.inputs.includes(posv);
  const positions = fromInput ? Array.from({ length: x.tokens }, (_, i) => m.pastLength + i) : constTensor(posv, node, 'rope positions').data;
  const ys = rowsOf(x, 'rope').map((blk) =>
    lowerRopeBlock(m.b, blk.value, blk.layout, {
      headSize: held,
      rotaryDim: attrInt(node, 'rotary_dim', 0) || H,
      interleaved: attrInt(node, 'interleaved', 0) === 1,
      positions: Array.from(positions).slice(blk.tokenStart, blk.tokenStart + blk.layout.tokens),
      cos: constTensor(node.inputs[2], node, 'rope cos table'),
      sin: constTensor(node.inputs[3], node, 'rope sin table'),
    }, fromInput && m.pastLength > 0 ? m.pastConstants : undefined),
  );
  m.acts.set(out, withColumns(rowBlocks(ys, x.length, m.grouping, m.slots), x));
  if (m.expanded.has(xv)) m.expanded.set(out, m.expanded.get(xv)!);
}

/** silu(gate), times up for swiglu (gate and up from the fused linear, or two inputs). */
export function lowerSwiglu(m: ModelLowering, n: NodeLowering): void {
  const node = n.node;
  let gate: Activation;
  let up: Activation | undefined;
  const pending = m.pendingSwiglu.get(node);
  if (pending) ({ gate, up } = pending);
  else {
    gate = act(m, node.inputs[0]!, node);
    if (node.op === 'swiglu') {
      if (!node.inputs[1]) throw new FhecError('one-input swiglu must follow a linear', { node: nodeLabel(node) });
      up = act(m, node.inputs[1], node);
    }
  }
  const r = rangeOf(node.inputs[0]!, 'silu input', node);
  const silu = fit(node, 'silu', siluInterval(r), { maxAbsError: m.targets.siluAbs }, { what: 'the gate', calibrated: [r.lo, r.hi], fix: TARGET_FIX });
  if (up && !sameCuts(gate, up)) throw new FhecError('swiglu gate and up are cut differently', { node: nodeLabel(node) });
  const blocks = gate.blocks.map((blk, i) => {
    const s = applyApproximation(m.b, blk.value, silu).value;
    const stride = blk.layout.stride;
    probe(m, n, 'silu', silu, blk.value, s, r, (u) => Math.floor(u / stride) < blk.layout.tokens && (u % stride) % blk.layout.period < blk.layout.length);
    return { ...blk, value: up ? m.b.mul(s, up.blocks[i]!.value) : s };
  });
  m.acts.set(node.outputs[0]!, { tokens: gate.tokens, length: gate.length, blocks, ...(gate.columns ? { columns: gate.columns } : {}) });
}

export function lowerAddMul(m: ModelLowering, node: Node): void {
  const [x, y] = [act(m, node.inputs[0]!, node), act(m, node.inputs[1]!, node)];
  if (!sameCuts(x, y) || x.tokens !== y.tokens) throw new FhecError(`${node.op} of differently packed operands`, { node: nodeLabel(node) });
  const blocks = x.blocks.map((blk, i) => ({ ...blk, value: node.op === 'add' ? m.b.add(blk.value, y.blocks[i]!.value) : m.b.mul(blk.value, y.blocks[i]!.value) }));
  const out = node.outputs[0]!;
  m.acts.set(out, { tokens: x.tokens, length: x.length, blocks, ...(x.columns ? { columns: x.columns } : {}) });
  if (m.expanded.has(node.inputs[0]!)) m.expanded.set(out, m.expanded.get(node.inputs[0]!)!);
}
