// Raises RMSNorm to `fhec::rms_norm`:
//  - PyTorch's decomposed form x * (1 / sqrt(mean(x^2, -1) + eps)) [* w], also with Reciprocal or
//    x / sqrt(...), and x^2 as Pow(x, 2) or Mul(x, x);
//  - ONNX RMSNormalization (opset 23) and ORT's SimplifiedLayerNormalization over the last axis;
//  - com.microsoft::SkipSimplifiedLayerNormalization, as add(input, skip [, bias]) then rms_norm
//    (its sum output is the add).
// The epsilon must be added to the mean of squares inside the square root; any other placement
// (after the square root, outside the division) is a different function and is left alone.

import { attrFloat, attrInt, attrInts, hasAttr } from '../../ir/graph/attrs.js';
import type { Graph, Node, Value } from '../../ir/graph/types.js';
import type { Pass } from '../pass.js';
import { concreteShape, constScalar, constTensor, lastDim, normAxis, onnxOpset, producedBy, raised, Rewriter, sameShape, where } from './rewrite.js';

/** x where v = x^2 (Pow(x, 2) or Mul(x, x)). */
function squareOf(v: Value | null | undefined): Value | undefined {
  const pow = producedBy(v, 'Pow');
  if (pow && constScalar(pow.inputs[1]) === 2) return pow.inputs[0]!;
  const mul = producedBy(v, 'Mul');
  if (mul && mul.inputs[0] === mul.inputs[1]) return mul.inputs[0]!;
  return undefined;
}

/** ReduceMean over the last axis only, keeping dims. */
function isMeanOverLastAxis(n: Node, opset: number): boolean {
  const rank = n.inputs[0]?.shape?.length;
  if (rank === undefined) return false;
  if (hasAttr(n, 'keepdims') && attrInt(n, 'keepdims') !== 1) return false;
  const axes = opset >= 18 ? constTensor(n.inputs[1])?.toNumbers() : hasAttr(n, 'axes') ? attrInts(n, 'axes') : undefined;
  return !!axes && axes.length === 1 && normAxis(axes[0]!, rank) === rank - 1;
}

/** A constant gain over the last axis ([D] or [1, .., D]). */
function isGain(v: Value | null | undefined, d: number): boolean {
  const s = concreteShape(v);
  return !!v?.constant && !!s && s[s.length - 1] === d && s.slice(0, -1).every((x) => x === 1);
}

interface Match {
  x: Value;
  eps: number;
  gamma: Value | null;
  /** The value the rms_norm replaces. */
  out: Value;
}

/** From a ReduceMean: the decomposed form, or the reason it is only RMSNorm-like. */
function matchDecomposed(rw: Rewriter, mean: Node, opset: number): Match | string | undefined {
  const x = squareOf(mean.inputs[0]);
  if (!x || !isMeanOverLastAxis(mean, opset)) return undefined;
  const d = lastDim(x);
  if (d === undefined) return undefined;
  const next = rw.soleUse(mean.outputs[0]!);
  if (!next) return undefined;
  if (next.op === 'Sqrt') return 'epsilon is not added to the mean of squares before the square root';
  if (next.op !== 'Add') return undefined;
  const eps = constScalar(next.inputs[1]) ?? constScalar(next.inputs[0]);
  if (eps === undefined || !(eps >= 0)) return 'the mean of squares is not offset by a constant epsilon';
  const sqrt = rw.soleUse(next.outputs[0]!);
  if (sqrt?.op !== 'Sqrt') return 'mean of squares plus epsilon is not square-rooted';
  const after = rw.soleUse(sqrt.outputs[0]!);
  if (!after) return undefined;
  let normed: Value | undefined;
  if (after.op === 'Div' && after.inputs[1] === sqrt.outputs[0] && after.inputs[0] === x) {
    normed = after.outputs[0]!;
  } else {
    let inv: Value | undefined;
    if (after.op === 'Reciprocal') inv = after.outputs[0];
    else if (after.op === 'Div' && after.inputs[1] === sqrt.outputs[0] && constScalar(after.inputs[0]) === 1) inv = after.outputs[0];
    if (!inv) return after.op === 'Add' ? 'epsilon is added after the square root' : undefined;
    const mul = rw.soleUse(inv);
    if (mul?.op !== 'Mul' || !mul.inputs.includes(x)) return 'the inverse RMS does not multiply the same input';
    normed = mul.outputs[0]!;
  }
  // An optional gain: the only reader multiplies by a constant [D].
  const g = rw.soleUse(normed);
  if (g?.op === 'Mul' && g.domain === '') {
    const other = g.inputs[0] === normed ? g.inputs[1] : g.inputs[0];
    if (isGain(other, d)) return { x, eps, gamma: other!, out: g.outputs[0]! };
  }
  return { x, eps, gamma: null, out: normed };
}

/** A gain of shape [1, .., D] reshaped to [D] for the canonical op. */
function gainVector(rw: Rewriter, v: Value): Value {
  const s = concreteShape(v)!;
  if (s.length === 1) return v;
  return rw.constant(`${v.name}.vector`, constTensor(v)!.reshape([s[s.length - 1]!]));
}

export const raiseRmsNormPass: Pass<Graph, Record<string, never>> = {
  name: 'raise-rms-norm',
  summary: 'raise decomposed RMSNorm, RMSNormalization and (Skip)SimplifiedLayerNormalization to fhec::rms_norm',
  reads: 'graph',
  writes: 'canonical',
  options: [],
  run(graph) {
    const rw = new Rewriter(graph);
    const opset = onnxOpset(graph);
    const notes: string[] = [];
    const stats = { decomposed: 0, onnx: 0, simplified: 0, skip: 0 };
    const emit = (node: Node, m: Match) => {
      const y = m.out;
      const r = rw.canonical('rms_norm', [m.x, m.gamma ? gainVector(rw, m.gamma) : null], [{ name: `${node.name}.rms_norm`, dtype: y.dtype, shape: y.shape }], { epsilon: { kind: 'float', value: m.eps } }, node);
      rw.replace(y, r.outputs[0]!);
    };
    for (const node of [...graph.nodes]) {
      const x = node.inputs[0];
      const d = lastDim(x);
      if (node.op === 'ReduceMean' && node.domain === '') {
        const m = matchDecomposed(rw, node, opset);
        if (typeof m === 'string') notes.push(`${where(node)}: RMSNorm-like pattern left alone: ${m}`);
        else if (m) {
          emit(node, m);
          stats.decomposed++;
        }
        continue;
      }
      const isNorm = (node.op === 'RMSNormalization' && node.domain === '') || (node.op === 'SimplifiedLayerNormalization' && (node.domain === '' || node.domain === 'com.microsoft'));
      const isSkip = node.op === 'SkipSimplifiedLayerNormalization' && node.domain === 'com.microsoft';
      if (!isNorm && !isSkip) continue;
      if (!x || d === undefined) {
        notes.push(`${where(node)}: left alone: unknown input shape`);
        continue;
      }
      const statsUsed = node.outputs.slice(1, isSkip ? 3 : undefined).some((o) => rw.usesOf(o).length > 0 || rw.isGraphOutput(o));
      if (statsUsed) {
        notes.push(`${where(node)}: left alone: its mean/inv_std_var outputs are used`);
        continue;
      }
      const gamma = node.inputs[isSkip ? 2 : 1];
      if (!isGain(gamma, d)) {
        notes.push(`${where(node)}: left alone: scale is not a constant over the last axis`);
        continue;
      }
      if (isNorm) {
        const axis = attrInt(node, 'axis', -1);
        const rank = x.shape!.length;
        if (normAxis(axis, rank) !== rank - 1) {
          notes.push(`${where(node)}: left alone: normalizes from axis ${axis}, not over the last axis only`);
          continue;
        }
        emit(node, { x, eps: attrFloat(node, 'epsilon', 1e-5), gamma: gamma!, out: node.outputs[0]! });
        node.op === 'RMSNormalization' ? stats.onnx++ : stats.simplified++;
        continue;
      }
      // Skip form: s = input + skip (+ bias), y = rms_norm(s).
      const skip = node.inputs[1];
      const bias = node.inputs[3] ?? null;
      if (!skip || !sameShape(x, skip)) {
        notes.push(`${where(node)}: left alone: skip is not the same shape as the input`);
        continue;
      }
      if (bias && !isGain(bias, d)) {
        notes.push(`${where(node)}: left alone: bias is not a constant over the last axis`);
        continue;
      }
      let s = rw.canonical('add', [x, skip], [{ name: `${node.name}.sum`, dtype: x.dtype, shape: x.shape }], {}, node).outputs[0]!;
      if (bias) s = rw.canonical('add', [s, gainVector(rw, bias)], [{ name: `${node.name}.sum_bias`, dtype: x.dtype, shape: x.shape }], {}, node).outputs[0]!;
      emit(node, { x: s, eps: attrFloat(node, 'epsilon', 1e-12), gamma: gamma!, out: node.outputs[0]! });
      const sumOut = node.outputs[3];
      if (sumOut && (rw.usesOf(sumOut).length > 0 || rw.isGraphOutput(sumOut))) rw.replace(sumOut, s);
      stats.skip++;
    }
    rw.finish();
    return raised(Object.values(stats).some((n) => n > 0), stats, notes);
  },
};

