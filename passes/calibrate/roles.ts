// Which values calibration must cover, and why:
//  - inputs of nonlinear ops: CKKS evaluates them by a polynomial that is only accurate on a known
//    interval (softmax, exp, sigmoid, division by a tensor, square root, normalizations, attention...);
//  - secret values: every float tensor that depends on the encrypted inputs, since the fixed-point
//    scale of a ciphertext must hold its magnitude.
// Everything else (weights, shape plumbing, masks and RoPE tables computed from positions) is plaintext
// and exact, so it needs no range.

import { isFloat } from '../../ir/dtype.js';
import type { Graph, Node, Value } from '../../ir/graph/types.js';

const ONNX = new Set(['', 'ai.onnx']);

/**
 * Ops that are linear in each input (or pure data movement), or products of such: a CKKS circuit
 * computes them exactly, so their inputs need no approximation interval.
 */
const LINEAR_OPS = new Set([
  'Add', 'Sub', 'Mul', 'Neg', 'MatMul', 'Gemm', 'Einsum', 'Sum', 'Mean', 'ReduceSum', 'ReduceMean',
  'Reshape', 'Transpose', 'Flatten', 'Squeeze', 'Unsqueeze', 'Expand', 'Tile', 'Concat', 'Split', 'Slice',
  'Gather', 'GatherElements', 'GatherND', 'ScatterND', 'ScatterElements', 'Pad', 'Identity', 'Cast', 'CastLike',
  'Dropout', 'Shape', 'Size', 'ConstantOfShape', 'Range', 'Trilu', 'Where', 'RotaryEmbedding', 'CumSum',
  'DepthToSpace', 'SpaceToDepth', 'EyeLike', 'OneHot',
]);
const LINEAR_MS = new Set(['RotaryEmbedding']);
const LINEAR_FHEC = new Set(['linear', 'add', 'mul', 'rope', 'split', 'embedding']);

/** Nonlinear ops and the inputs whose range the approximation needs (other ops: every float input). */
const NONLINEAR_ONNX: Record<string, number[]> = {
  Attention: [0, 1],
  RMSNormalization: [0],
  LayerNormalization: [0],
  SimplifiedLayerNormalization: [0],
  Softmax: [0],
  LogSoftmax: [0],
  ReduceMax: [0],
  ReduceMin: [0],
  ReduceLogSumExp: [0],
  ReduceL2: [0],
  TopK: [0],
  ArgMax: [0],
  ArgMin: [0],
  Clip: [0],
};
const NONLINEAR_MS: Record<string, number[]> = {
  MultiHeadAttention: [0, 1],
  GroupQueryAttention: [0, 1],
  Attention: [0],
  SkipSimplifiedLayerNormalization: [0, 1],
  SkipLayerNormalization: [0, 1],
  SimplifiedLayerNormalization: [0],
};
const NONLINEAR_FHEC: Record<string, number[]> = {
  rms_norm: [0],
  attention: [0, 1],
  silu: [0],
  swiglu: [0],
  softmax: [0],
};

function isConstantInteger(v: Value | null | undefined, ok: (n: number) => boolean): boolean {
  if (!v?.constant || v.constant.dims.reduce((a, b) => a * b, 1) !== 1) return false;
  const x = v.constant.load().data[0]!;
  return Number.isInteger(x) && ok(x);
}

/**
 * Indices of the inputs of `node` that a polynomial approximation must be fitted for; [] for linear
 * ops. Division by a constant and Pow by a small non-negative integer are polynomial, so they are
 * not listed; an op this table does not know is treated as nonlinear in every float input.
 */
export function nonlinearInputs(node: Node): number[] {
  const floatInputs = node.inputs.flatMap((v, i) => (v && isFloat(v.dtype) && !v.constant ? [i] : []));
  const pick = (idx: number[]) => idx.filter((i) => floatInputs.includes(i));
  if (ONNX.has(node.domain)) {
    if (LINEAR_OPS.has(node.op)) return [];
    if (node.op === 'Div') return pick([1]);
    if (node.op === 'Pow') {
      const polynomial = isConstantInteger(node.inputs[1], (n) => n >= 0 && n <= 8);
      return pick(polynomial ? [] : [0, 1]);
    }
    return pick(NONLINEAR_ONNX[node.op] ?? floatInputs);
  }
  if (node.domain === 'com.microsoft') {
    if (LINEAR_MS.has(node.op)) return [];
    return pick(NONLINEAR_MS[node.op] ?? floatInputs);
  }
  if (node.domain === 'fhec') {
    if (LINEAR_FHEC.has(node.op)) return [];
    return pick(NONLINEAR_FHEC[node.op] ?? floatInputs);
  }
  return floatInputs;
}

/** Graph inputs that are plaintext by default: masks and positions (they carry no user data). */
export function defaultPlaintextInputs(graph: Graph): string[] {
  return graph.inputs.filter((v) => /mask|position/i.test(v.name)).map((v) => v.name);
}

/** Ops whose outputs depend only on their inputs' shapes. */
const SHAPE_ONLY = new Set(['Shape', 'Size']);

/**
 * The values that depend on a secret graph input (every input not in `plaintextInputs`), following
 * data dependence: Shape and Size outputs are plaintext whatever their input.
 */
export function secretValues(graph: Graph, plaintextInputs: readonly string[]): Set<Value> {
  const plain = new Set(plaintextInputs);
  const secret = new Set<Value>(graph.inputs.filter((v) => !plain.has(v.name)));
  for (const node of graph.nodes) {
    if (ONNX.has(node.domain) && SHAPE_ONLY.has(node.op)) continue;
    if (node.inputs.some((v) => v && secret.has(v))) for (const o of node.outputs) secret.add(o);
  }
  return secret;
}
