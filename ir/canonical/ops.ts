// The canonical transformer op set, domain `fhec`: what a Llama-style model computes, independent of
// how an exporter spelled it. Raising passes (passes/canonical) produce these ops; FHE lowering
// consumes them. Each op has one definition below: its exact semantics (the reference kernels in
// runtime/reference/ops/canonical.ts implement exactly this), its attribute schema and its
// type/shape rule, registered with the graph-IR inference (ir/ops/infer.ts).
//
// Numerics, for every op: inputs are read as float64, the op is computed in float64 and each output
// is rounded once to its dtype (the dtype of the first float input). A raised graph therefore rounds
// less often than the exporter's decomposed graph; the difference is far below the test tolerances.

import type { DType } from '../dtype.js';
import { isFloat } from '../dtype.js';
import { FhecError, nodeLabel } from '../errors.js';
import type { AttrValue, Dim, Node, Shape } from '../graph/types.js';
import { BroadcastError, broadcastShapes } from '../ops/broadcast.js';
import { fmt, registerInferenceRule, type InferInput, type InferResult } from '../ops/infer.js';

export const FHEC_DOMAIN = 'fhec';

/** float32's lowest finite value: the fill PyTorch exports use for masked attention logits. */
export const FLOAT32_LOWEST = -3.4028234663852886e38;

export interface AttrSpec {
  name: string;
  kind: AttrValue['kind'];
  required: boolean;
  default?: number | number[] | string;
  doc: string;
}

export interface CanonicalOpDef {
  op: string;
  /** One line for listings; the doc comment on the definition holds the exact semantics. */
  summary: string;
  /** Input names in order; a trailing `?` marks an optional input. */
  inputs: string[];
  outputs: string[];
  attrs: AttrSpec[];
  infer(node: Node, inputs: (InferInput | null)[]): InferResult[];
}

// ---- helpers --------------------------------------------------------------------------------------

function req(node: Node, inputs: (InferInput | null)[], i: number, name: string): InferInput {
  const x = inputs[i];
  if (!x) throw new FhecError(`input ${i} (${name}) is required`, { node: nodeLabel(node) });
  return x;
}

function intAttr(node: Node, name: string, dflt: number): number {
  const a = node.attrs[name];
  if (!a) return dflt;
  if (a.kind !== 'int') throw new FhecError(`attribute '${name}' must be int, got ${a.kind}`, { node: nodeLabel(node) });
  return a.value;
}

function broadcast(node: Node, shapes: Shape[]): Shape {
  try {
    return broadcastShapes(shapes);
  } catch (e) {
    if (e instanceof BroadcastError) throw new FhecError(`${e.message} (input shapes ${shapes.map(fmt).join(', ')})`, { node: nodeLabel(node) });
    throw e;
  }
}

function floatType(node: Node, x: InferInput, what: string): DType {
  if (!isFloat(x.dtype)) throw new FhecError(`${what} must be a float tensor, got ${x.dtype}`, { node: nodeLabel(node) });
  return x.dtype;
}

const dimMul = (a: Dim, b: number): Dim => (typeof a === 'number' ? a * b : null);
const dimDiv = (a: Dim, b: number): Dim => (typeof a === 'number' && b > 0 ? a / b : null);
const dimAdd = (a: Dim, b: Dim): Dim => (typeof a === 'number' && typeof b === 'number' ? a + b : a === 0 ? b : b === 0 ? a : null);

// ---- the ops --------------------------------------------------------------------------------------

/**
 * `linear(x, weight, bias?) -> y`: y[..., n] = sum_k x[..., k] * weight[k, n] + bias[n].
 * weight is a constant [K, N] (the MatMul layout: input features first), bias a constant [N].
 * x has any rank >= 1 with last dim K; y has x's leading dims and last dim N.
 */
export const linear: CanonicalOpDef = {
  op: 'linear',
  summary: 'x @ weight + bias with a constant weight [K, N]',
  inputs: ['x', 'weight', 'bias?'],
  outputs: ['y'],
  attrs: [],
  infer(node, inputs) {
    const x = req(node, inputs, 0, 'x');
    const w = req(node, inputs, 1, 'weight');
    const dtype = floatType(node, x, 'x');
    if (!x.shape || !w.shape) return [{ dtype, shape: undefined }];
    if (w.shape.length !== 2) throw new FhecError(`weight must be 2-D [K, N], got ${fmt(w.shape)}`, { node: nodeLabel(node) });
    const k = x.shape[x.shape.length - 1];
    if (typeof k === 'number' && typeof w.shape[0] === 'number' && k !== w.shape[0]) {
      throw new FhecError(`x ${fmt(x.shape)} does not match weight ${fmt(w.shape)}`, { node: nodeLabel(node) });
    }
    return [{ dtype, shape: [...x.shape.slice(0, -1), w.shape[1]!] }];
  },
};

/**
 * `rms_norm(x, gamma?) {epsilon} -> y`: over the last axis of x (length D),
 * y = x / sqrt(mean_j(x_j^2) + epsilon) * gamma, with gamma a constant [D] (omitted: all ones, as left
 * by folding the gain into the following linears). The statistics are computed in float64.
 */
export const rmsNorm: CanonicalOpDef = {
  op: 'rms_norm',
  summary: 'x / sqrt(mean(x^2, last axis) + epsilon) * gamma',
  inputs: ['x', 'gamma?'],
  outputs: ['y'],
  attrs: [{ name: 'epsilon', kind: 'float', required: true, doc: 'added to the mean of squares, inside the square root' }],
  infer(node, inputs) {
    const x = req(node, inputs, 0, 'x');
    return [{ dtype: floatType(node, x, 'x'), shape: x.shape && [...x.shape] }];
  },
};

/**
 * `rope(x, positions, cos_cache, sin_cache) {num_heads, interleaved, rotary_dim} -> y`: rotary
 * position embedding with explicit positions. x is [B, S, N*H] (3-D, N = num_heads) or [B, N, S, H]
 * (4-D, num_heads ignored); positions is int [B, S]; the caches are [R, rotary_dim/2] (R rows, one per
 * position). For each (b, s, head) with p = positions[b, s] (0 <= p < R, else an error) and each
 * i < rotary_dim/2, the pair (x1, x2) = (x[i], x[i + rotary_dim/2]) when interleaved = 0 (rotate-half
 * form) or (x[2i], x[2i+1]) when interleaved = 1 becomes
 *   (x1 * cos[p, i] - x2 * sin[p, i],  x1 * sin[p, i] + x2 * cos[p, i]);
 * channels at or beyond rotary_dim (default: the head size) pass through unchanged.
 * This is ONNX RotaryEmbedding-23 with position_ids.
 */
export const rope: CanonicalOpDef = {
  op: 'rope',
  summary: 'rotary embedding of each head at explicit positions (rotate-half or interleaved)',
  inputs: ['x', 'positions', 'cos_cache', 'sin_cache'],
  outputs: ['y'],
  attrs: [
    { name: 'num_heads', kind: 'int', required: false, default: 0, doc: 'heads in the last dim of a 3-D x' },
    { name: 'interleaved', kind: 'int', required: false, default: 0, doc: '0: rotate-half pairs (i, i + d/2); 1: adjacent pairs (2i, 2i+1)' },
    { name: 'rotary_dim', kind: 'int', required: false, default: 0, doc: 'channels rotated per head (0: the head size)' },
  ],
  infer(node, inputs) {
    const x = req(node, inputs, 0, 'x');
    req(node, inputs, 1, 'positions');
    const rank = x.shape?.length;
    if (rank !== undefined && rank !== 3 && rank !== 4) throw new FhecError(`x must be 3-D or 4-D, got ${fmt(x.shape)}`, { node: nodeLabel(node) });
    if (rank === 3 && intAttr(node, 'num_heads', 0) <= 0) throw new FhecError('a 3-D x needs num_heads > 0', { node: nodeLabel(node), field: 'num_heads' });
    return [{ dtype: floatType(node, x, 'x'), shape: x.shape && [...x.shape] }];
  },
};

/**
 * `attention(q, k, v, past_key?, past_value?, padding_mask?) {num_heads, kv_num_heads, scale, causal,
 * mask_value} -> (y, present_key?, present_value?)`: multi-head attention with grouped KV heads.
 * q is [B, S, N*H], k [B, S, Nkv*H], v [B, S, Nkv*Hv] (N = num_heads, Nkv = kv_num_heads, N a multiple
 * of Nkv; query head n uses KV head floor(n / (N / Nkv))). past_key/past_value are [B, Nkv, P, H] and
 * [B, Nkv, P, Hv] (P may be 0); the keys of a query are present = concat(past, new) along the sequence
 * axis, T = P + S of them, and present_key/present_value return exactly that. Query i sits at absolute
 * position P + i. Key j is masked for query i when causal = 1 and j > P + i, or when padding_mask (int
 * [B, T], values 0 or 1 only, else an error) is 0 at [b, j]. The logit of a masked key is mask_value
 * (replacing q.k * scale); the others are q.k * scale. Then softmax over the T keys (float64) and the
 * weighted sum of values. y is [B, S, N*Hv] in head-major order.
 * A row with no masked key is ordinary attention; with mask_value far below every logit (the default,
 * float32's lowest) a masked key gets weight exactly 0, which is what the exporters' additive masks
 * compute, and a row whose every key is masked averages V uniformly, as fp32 additive masks do.
 */
export const attention: CanonicalOpDef = {
  op: 'attention',
  summary: 'grouped-query attention with causal/padding masks and an optional KV cache',
  inputs: ['q', 'k', 'v', 'past_key?', 'past_value?', 'padding_mask?'],
  outputs: ['y', 'present_key?', 'present_value?'],
  attrs: [
    { name: 'num_heads', kind: 'int', required: true, doc: 'query heads N' },
    { name: 'kv_num_heads', kind: 'int', required: true, doc: 'key/value heads Nkv (N % Nkv == 0)' },
    { name: 'scale', kind: 'float', required: true, doc: 'multiplies q.k (usually 1/sqrt(head size))' },
    { name: 'causal', kind: 'int', required: false, default: 0, doc: '1: query i sees keys j <= P + i' },
    { name: 'mask_value', kind: 'float', required: false, default: FLOAT32_LOWEST, doc: 'logit of a masked key' },
  ],
  infer(node, inputs) {
    const q = req(node, inputs, 0, 'q');
    const k = req(node, inputs, 1, 'k');
    const v = req(node, inputs, 2, 'v');
    const past = inputs[3];
    const dtype = floatType(node, q, 'q');
    const N = intAttr(node, 'num_heads', 0);
    const Nkv = intAttr(node, 'kv_num_heads', 0);
    if (N <= 0 || Nkv <= 0 || N % Nkv !== 0) {
      throw new FhecError(`num_heads ${N} must be a positive multiple of kv_num_heads ${Nkv}`, { node: nodeLabel(node) });
    }
    for (const [t, name] of [[q, 'q'], [k, 'k'], [v, 'v']] as const) {
      if (t.shape && t.shape.length !== 3) throw new FhecError(`${name} must be 3-D [B, S, heads*head_size], got ${fmt(t.shape)}`, { node: nodeLabel(node) });
    }
    const B = q.shape?.[0] ?? null;
    const S = q.shape?.[1] ?? null;
    const H = dimDiv(k.shape?.[2] ?? null, Nkv);
    const Hv = dimDiv(v.shape?.[2] ?? null, Nkv);
    const P: Dim = past ? (past.shape?.[2] ?? null) : 0;
    const T = dimAdd(P, k.shape?.[1] ?? null);
    const res: InferResult[] = [{ dtype, shape: q.shape ? [B, S, dimMul(Hv, N)] : undefined }];
    if (node.outputs.length > 1) res.push({ dtype, shape: [B, Nkv, T, H] });
    if (node.outputs.length > 2) res.push({ dtype, shape: [B, Nkv, T, Hv] });
    return res;
  },
};

/** `silu(x) -> y`: y = x * sigmoid(x) = x / (1 + exp(-x)), elementwise. */
export const silu: CanonicalOpDef = {
  op: 'silu',
  summary: 'x * sigmoid(x)',
  inputs: ['x'],
  outputs: ['y'],
  attrs: [],
  infer(node, inputs) {
    const x = req(node, inputs, 0, 'x');
    return [{ dtype: floatType(node, x, 'x'), shape: x.shape && [...x.shape] }];
  },
};

/**
 * `swiglu(gate, up) -> y`: y = silu(gate) * up, elementwise with broadcasting.
 * With one input (gate and up concatenated along the last axis, as a merged gate/up linear leaves
 * them), gate is the first half and up the second half of the last axis.
 */
export const swiglu: CanonicalOpDef = {
  op: 'swiglu',
  summary: 'silu(gate) * up (one input: the halves of the last axis)',
  inputs: ['gate', 'up?'],
  outputs: ['y'],
  attrs: [],
  infer(node, inputs) {
    const g = req(node, inputs, 0, 'gate');
    const dtype = floatType(node, g, 'gate');
    const u = inputs[1];
    if (u) return [{ dtype, shape: broadcast(node, [g.shape, u.shape]) }];
    if (!g.shape) return [{ dtype, shape: undefined }];
    const last = g.shape[g.shape.length - 1]!;
    if (typeof last === 'number' && last % 2 !== 0) throw new FhecError(`a fused gate/up input needs an even last dim, got ${fmt(g.shape)}`, { node: nodeLabel(node) });
    return [{ dtype, shape: [...g.shape.slice(0, -1), dimDiv(last, 2)] }];
  },
};

/**
 * `embedding(ids, table) -> y`: y[..., d] = table[i, d] with i = ids[...] (i + V when negative, as ONNX
 * Gather); table is a constant [V, D]; ids are integers in [-V, V), anything else is an error.
 */
export const embedding: CanonicalOpDef = {
  op: 'embedding',
  summary: 'rows of a constant table [V, D] at integer ids',
  inputs: ['ids', 'table'],
  outputs: ['y'],
  attrs: [],
  infer(node, inputs) {
    const ids = req(node, inputs, 0, 'ids');
    const t = req(node, inputs, 1, 'table');
    if (isFloat(ids.dtype) || ids.dtype === 'bool') throw new FhecError(`ids must be integers, got ${ids.dtype}`, { node: nodeLabel(node) });
    if (t.shape && t.shape.length !== 2) throw new FhecError(`table must be 2-D [V, D], got ${fmt(t.shape)}`, { node: nodeLabel(node) });
    return [{ dtype: t.dtype, shape: ids.shape && t.shape ? [...ids.shape, t.shape[1]!] : undefined }];
  },
};

function binary(op: string, what: string): CanonicalOpDef {
  return {
    op,
    summary: `a ${what} b, elementwise with numpy broadcasting`,
    inputs: ['a', 'b'],
    outputs: ['y'],
    attrs: [],
    infer(node, inputs) {
      const a = req(node, inputs, 0, 'a');
      const b = req(node, inputs, 1, 'b');
      return [{ dtype: floatType(node, a, 'a'), shape: broadcast(node, [a.shape, b.shape]) }];
    },
  };
}

/** `add(a, b) -> y`: y = a + b, float tensors, numpy broadcasting (residual connections, biases). */
export const add = binary('add', '+');
/** `mul(a, b) -> y`: y = a * b, float tensors, numpy broadcasting. */
export const mul = binary('mul', '*');

/** `softmax(x) {axis} -> y`: y = exp(x - max) / sum(exp(x - max)) along `axis` (default -1), in float64. */
export const softmax: CanonicalOpDef = {
  op: 'softmax',
  summary: 'softmax along one axis',
  inputs: ['x'],
  outputs: ['y'],
  attrs: [{ name: 'axis', kind: 'int', required: false, default: -1, doc: 'the normalized axis' }],
  infer(node, inputs) {
    const x = req(node, inputs, 0, 'x');
    return [{ dtype: floatType(node, x, 'x'), shape: x.shape && [...x.shape] }];
  },
};

/**
 * `split(x) {sizes} -> y0, y1, ...`: consecutive slices of the last axis with the given sizes (their
 * sum is the last dim). Separates the outputs of a merged linear (Q|K|V, gate|up).
 */
export const split: CanonicalOpDef = {
  op: 'split',
  summary: 'consecutive slices of the last axis',
  inputs: ['x'],
  outputs: ['y...'],
  attrs: [{ name: 'sizes', kind: 'ints', required: true, doc: 'length of each slice' }],
  infer(node, inputs) {
    const x = req(node, inputs, 0, 'x');
    const a = node.attrs['sizes'];
    if (!a || a.kind !== 'ints') throw new FhecError("attribute 'sizes' (ints) is required", { node: nodeLabel(node) });
    const sizes = a.value;
    if (sizes.length !== node.outputs.length) throw new FhecError(`${sizes.length} sizes for ${node.outputs.length} outputs`, { node: nodeLabel(node) });
    const last = x.shape?.[x.shape.length - 1];
    const total = sizes.reduce((s, n) => s + n, 0);
    if (typeof last === 'number' && last !== total) throw new FhecError(`sizes sum to ${total} but the last dim is ${last}`, { node: nodeLabel(node) });
    return sizes.map((n) => ({ dtype: x.dtype, shape: x.shape ? [...x.shape.slice(0, -1), n] : undefined }));
  },
};

/** Every canonical op, by name. */
export const CANONICAL_OPS: ReadonlyMap<string, CanonicalOpDef> = new Map(
  [linear, rmsNorm, rope, attention, silu, swiglu, embedding, add, mul, softmax, split].map((d) => [d.op, d]),
);

for (const def of CANONICAL_OPS.values()) registerInferenceRule(FHEC_DOMAIN, def.op, (node, inputs) => def.infer(node, inputs));

export function isCanonical(node: Pick<Node, 'domain'>): boolean {
  return node.domain === FHEC_DOMAIN;
}

/** Checks a `fhec` node against its definition: known op, input count, attribute kinds, required attributes. */
export function checkCanonicalNode(node: Node): void {
  const def = CANONICAL_OPS.get(node.op);
  if (!def) throw new FhecError(`unknown canonical op '${node.op}' (known: ${[...CANONICAL_OPS.keys()].join(', ')})`, { node: nodeLabel(node) });
  const required = def.inputs.filter((n) => !n.endsWith('?')).length;
  if (node.inputs.length < required || node.inputs.length > def.inputs.length) {
    throw new FhecError(`takes ${required}..${def.inputs.length} inputs, got ${node.inputs.length}`, { node: nodeLabel(node) });
  }
  def.inputs.forEach((n, i) => {
    if (!n.endsWith('?') && !node.inputs[i]) throw new FhecError(`input ${i} (${n}) is required`, { node: nodeLabel(node) });
  });
  for (const [name, a] of Object.entries(node.attrs)) {
    const spec = def.attrs.find((s) => s.name === name);
    if (!spec) throw new FhecError(`unknown attribute '${name}' (known: ${def.attrs.map((s) => s.name).join(', ') || 'none'})`, { node: nodeLabel(node) });
    if (a.kind !== spec.kind && !(spec.kind === 'float' && a.kind === 'int')) {
      throw new FhecError(`attribute '${name}' must be ${spec.kind}, got ${a.kind}`, { node: nodeLabel(node), field: name });
    }
  }
  for (const spec of def.attrs) {
    if (spec.required && !node.attrs[spec.name]) throw new FhecError(`required attribute '${spec.name}' is missing`, { node: nodeLabel(node) });
  }
}
