// Shared by the lower-canonical kernel tests (test/fhe-lower-*.test.ts): slot-vector helpers, the
// canonical model A with calibrated ranges and the activations of one window, the float64 reference
// kernels, and the approximations lower-model.ts fits for each op (same intervals, same targets).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { textCalibrationSets } from '../../compiler/calibration-data.js';
import { loadModel } from '../../compiler/driver.js';
import type { SlotLayout } from '../../ir/fhe/types.js';
import type { Graph, Node, Value } from '../../ir/graph/types.js';
import { Tensor } from '../../ir/tensor.js';
import type { Approximation } from '../../passes/approx/approximation.js';
import { approximate } from '../../passes/approx/select.js';
import { calibrate } from '../../passes/calibrate/calibrate.js';
import type { AttentionStats } from '../../passes/fhe/lower-canonical/attention-stats.js';
import { DEFAULT_TARGETS } from '../../passes/fhe/lower-canonical/lower-model.js';
import { invsqrtInterval, siluInterval } from '../../passes/fhe/lower-canonical/fit-intervals.js';
import { planSoftmax, softmaxErrorBound, type SoftmaxMethod, type SoftmaxPlan } from '../../passes/fhe/lower-canonical/softmax-plan.js';
import { runGraph } from '../../runtime/reference/interpreter.js';
import { canonicalKernels } from '../../runtime/reference/ops/canonical.js';
import { MODELS } from './shared.js';

export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

export function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
export const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, x) => Math.max(m, Math.abs(x)), 0);
export const f64 = (dims: number[], data: ArrayLike<number>) => Tensor.from('float64', dims, Array.from(data));

/** The whole slot vector of a layout's token blocks (all copies), to check every copy of the output. */
export const fullLayout = (l: SlotLayout): SlotLayout => ({ length: l.stride, tokens: l.tokens, stride: l.stride, period: l.stride, copies: 1 });

/** Expected slots of a replicated layout for row-major [tokens, length] data (0 in padding). */
export function replicated(l: SlotLayout, data: ArrayLike<number>): Float64Array {
  const out = new Float64Array(l.stride * l.tokens);
  for (let t = 0; t < l.tokens; t++) for (let r = 0; r < l.copies; r++) for (let j = 0; j < l.length; j++) out[t * l.stride + r * l.period + j] = data[t * l.length + j]!;
  return out;
}

/**
 * [T, Nkv*H] rows -> [T, Nkv*group*H] with each KV head repeated `group` times: how the canonical
 * lowering holds K/V (and their rope), GQA-expanded by the projection weights.
 */
export function expandHeads(rows: ArrayLike<number>, T: number, Nkv: number, H: number, group: number): Float64Array {
  const w = Nkv * group * H;
  const out = new Float64Array(T * w);
  for (let t = 0; t < T; t++) for (let h = 0; h < Nkv * group; h++) for (let c = 0; c < H; c++) out[t * w + h * H + c] = rows[t * Nkv * H + Math.floor(h / group) * H + c]!;
  return out;
}

/** A canonical node with the given attributes (for the reference kernels and attention statistics). */
export function fakeNode(op: string, attrs: Record<string, number>): Node {
  return {
    op,
    domain: 'fhec',
    name: op,
    inputs: [],
    outputs: [],
    attrs: Object.fromEntries(Object.entries(attrs).map(([k, v]) => [k, Number.isInteger(v) && k !== 'epsilon' && k !== 'scale' ? { kind: 'int', value: v } : { kind: 'float', value: v }])),
  } as unknown as Node;
}

/** Runs the canonical float64 reference kernel of `op` (float64 tensors, so no float32 rounding). */
export function reference(op: string, attrs: Record<string, number>, ins: (Tensor | null)[]): Tensor[] {
  return canonicalKernels[op]!({ node: fakeNode(op, attrs), opset: 1 }, ins).map((t) => t!);
}

export function emptyAttentionStats(): AttentionStats {
  return { diagMin: Infinity, diagMax: -Infinity, relMin: Infinity, relMax: -Infinity, sumMin: Infinity, sumMax: -Infinity, scoreMin: Infinity, scoreMax: -Infinity, rows: 0 };
}

// The approximations lower-model.ts fits: the same intervals (fit-intervals.ts) and targets.

export function invsqrtFor(d: number, normArg: { lo: number; hi: number }): Approximation {
  return approximate('invsqrt', invsqrtInterval(d, normArg), { maxRelError: DEFAULT_TARGETS.invsqrtRel });
}

export function siluFor(range: { lo: number; hi: number }): Approximation {
  return approximate('silu', siluInterval(range), { maxAbsError: DEFAULT_TARGETS.siluAbs });
}

export type AttentionFit = SoftmaxPlan;

/** The softmax plan lower-model.ts makes for rows of at most `rowLength` keys (default method: squaring). */
export function attentionFor(st: AttentionStats, rowLength: number, margin = 0.1, method?: SoftmaxMethod): AttentionFit {
  return planSoftmax(st, { margin, rowLength, expError: DEFAULT_TARGETS.expAbs, reciprocalRel: DEFAULT_TARGETS.reciprocalRel, method }, (fn, iv, t) => approximate(fn, iv, t));
}

/** Bound on |y - y_exact| of attention lowered with `fit` over rows of at most n keys: the weights' total error (softmaxErrorBound) times max|v|. */
export function attentionBound(fit: AttentionFit, n: number, vMax: number): number {
  return vMax * softmaxErrorBound(fit, n);
}

/** Model A canonical (no cache, 64 tokens), calibrated on 3 windows of calibration.txt. */
export interface ModelA {
  graph: Graph;
  /** The calibration windows' inputs. */
  sets: Record<string, Tensor>[];
  /** Activations of window 1, by value name. */
  acts: Map<string, Tensor>;
  tensorOf(v: Value): Tensor;
  opsOf(op: string): Node[];
}

export const MODEL_A_TOKENS = 64;

export function loadModelA(): ModelA {
  const graph = loadModel(path.join(MODELS, 'A_nocache_opset14.onnx'), { canonical: true, bindings: { sequence_length: MODEL_A_TOKENS } }).graph;
  const text = fs.readFileSync(path.join(MODELS, 'calibration.txt'));
  const sets = textCalibrationSets(graph, text, 'calibration.txt', { maxWindows: 3 }).map((s) => s.inputs);
  calibrate(graph, sets);
  const acts = new Map<string, Tensor>();
  runGraph(graph, sets[1]!, { onNode: (node, outs) => node.outputs.forEach((v, i) => acts.set(v.name, outs[i]!)) });
  return {
    graph,
    sets,
    acts,
    tensorOf: (v) => acts.get(v.name) ?? v.constant!.load(),
    opsOf: (op) => graph.nodes.filter((n) => n.domain === 'fhec' && n.op === op),
  };
}

/** Rows [t0, t0+count) of a [..., T, D] tensor. */
export function rowsOf(t: Tensor, t0: number, count: number): Float64Array {
  const D = t.dims[t.dims.length - 1]!;
  return Float64Array.from(t.data.subarray(t0 * D, (t0 + count) * D));
}
