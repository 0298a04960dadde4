// Quantities inside an op that its FHE lowering approximates but that are no graph value:
//  - softmax (Softmax, fhec::softmax) and attention (ONNX Attention, fhec::attention):
//    `exp_arg` = x - max(row) over the unmasked entries of each row (the argument of exp) and
//    `exp_sum` = sum(exp(x - max)) per row (the argument of the reciprocal), `row_max` = max(row);
//    attention adds `scores`,
//    the unmasked q.k * scale;
//  - normalizations (RMSNormalization, LayerNormalization, ORT's Simplified/Skip forms, fhec::rms_norm):
//    `norm_arg` = mean(x^2) + epsilon (RMS) or var(x) + epsilon per row, the inverse square root's
//    argument.
// They are recomputed from the node's input tensors after the interpreter ran it, exactly as the
// reference kernels define them (ONNX Attention's scores come from the kernel itself, through its
// optional qk_matmul_output).

import type { DType } from '../../ir/dtype.js';
import { attrFloat, attrInt } from '../../ir/graph/attrs.js';
import { maskFillThreshold } from '../../ir/graph/range.js';
import type { Node, Value } from '../../ir/graph/types.js';
import type { Tensor } from '../../ir/tensor.js';
import { evalNode } from '../../runtime/reference/interpreter.js';

/** Receives the elements of one inner quantity. */
export type InnerSink = (name: string, data: ArrayLike<number>, dtype: DType) => void;

export interface Probe {
  /** Input indices whose tensors run() reads. */
  readonly needs: readonly number[];
  run(node: Node, inputs: readonly (Tensor | null)[], opset: number | undefined, sink: InnerSink): void;
}

const isOnnx = (n: Node) => n.domain === '' || n.domain === 'ai.onnx';

/** The probe for a node, if its op has inner quantities. */
export function probeFor(node: Node): Probe | undefined {
  const key = isOnnx(node) ? node.op : `${node.domain}::${node.op}`;
  switch (key) {
    case 'Softmax':
    case 'LogSoftmax':
    case 'fhec::softmax':
      return softmaxProbe;
    case 'Attention':
      return onnxAttentionProbe;
    case 'fhec::attention':
      return fhecAttentionProbe;
    case 'RMSNormalization':
    case 'SimplifiedLayerNormalization':
    case 'com.microsoft::SimplifiedLayerNormalization':
      return normProbe({ rms: true, skip: false, defaultEps: 1e-5 });
    case 'LayerNormalization':
      return normProbe({ rms: false, skip: false, defaultEps: 1e-5 });
    case 'com.microsoft::SkipSimplifiedLayerNormalization':
      return normProbe({ rms: true, skip: true, defaultEps: 1e-12 });
    case 'com.microsoft::SkipLayerNormalization':
      return normProbe({ rms: false, skip: true, defaultEps: 1e-12 });
    case 'fhec::rms_norm':
      return normProbe({ rms: true, skip: false, defaultEps: NaN, lastAxis: true });
    default:
      return undefined;
  }
}

/**
 * Softmax statistics of rows of `len` elements with stride `inner` (element j of row (o, i) is at
 * (o * len + j) * inner + i). Mask fills and NaNs are skipped; a row with nothing left is skipped.
 */
function softmaxRows(x: ArrayLike<number>, outer: number, len: number, inner: number, dtype: DType, sink: InnerSink): void {
  const thr = maskFillThreshold(dtype);
  const args = new Float64Array(outer * inner * len);
  const sums = new Float64Array(outer * inner);
  const maxes = new Float64Array(outer * inner);
  let na = 0;
  let ns = 0;
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * len * inner + i;
      let max = -Infinity;
      for (let j = 0; j < len; j++) {
        const v = x[base + j * inner]!;
        if (Math.abs(v) < thr && v > max) max = v;
      }
      if (max === -Infinity) continue;
      maxes[ns] = max;
      let sum = 0;
      for (let j = 0; j < len; j++) {
        const v = x[base + j * inner]!;
        if (!(Math.abs(v) < thr)) continue;
        const a = v - max;
        args[na++] = a;
        sum += Math.exp(a);
      }
      sums[ns++] = sum;
    }
  }
  sink('exp_arg', args.subarray(0, na), 'float64');
  sink('exp_sum', sums.subarray(0, ns), 'float64');
  // Each row's own max: with it, softmax kernels can shift by a bound on the row max instead of
  // the global max, which keeps exp's interval and the sum's range narrow.
  sink('row_max', maxes.subarray(0, ns), 'float64');
}

function normAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

const softmaxProbe: Probe = {
  needs: [0],
  run(node, inputs, opset, sink) {
    const x = inputs[0];
    if (!x || x.rank === 0) return;
    const dims = x.dims;
    const legacy = isOnnx(node) && (opset ?? 13) < 13;
    const axis = normAxis(attrInt(node, 'axis', legacy ? 1 : -1), dims.length);
    const prod = (a: number, b: number) => dims.slice(a, b).reduce((p, d) => p * d, 1);
    // Before opset 13 the input is flattened to 2-D at `axis`: one row is everything from axis on.
    if (legacy) softmaxRows(x.data, prod(0, axis), prod(axis, dims.length), 1, x.dtype, sink);
    else softmaxRows(x.data, prod(0, axis), dims[axis]!, prod(axis + 1, dims.length), x.dtype, sink);
  },
};

/** Records the unmasked scores of a [.., T] logit tensor (masked entries -inf), then its softmax rows. */
function attentionLogits(logits: Float64Array, T: number, sink: InnerSink): void {
  const scores = new Float64Array(logits.length);
  let n = 0;
  for (let i = 0; i < logits.length; i++) if (Number.isFinite(logits[i]!)) scores[n++] = logits[i]!;
  sink('scores', scores.subarray(0, n), 'float64');
  softmaxRows(logits, logits.length / T, T, 1, 'float64', sink);
}

/** ONNX Attention: the kernel itself returns the masked logits as qk_matmul_output (mode 2). */
const onnxAttentionProbe: Probe = {
  needs: [0, 1, 2, 3, 4, 5, 6],
  run(node, inputs, opset, sink) {
    const pad = (i: number): Value => node.outputs[i] ?? { name: '', dtype: node.outputs[0]!.dtype, shape: undefined };
    const clone: Node = {
      ...node,
      outputs: [pad(0), pad(1), pad(2), pad(3)],
      attrs: { ...node.attrs, qk_matmul_output_mode: { kind: 'int', value: 2 } },
    };
    const qk = evalNode(clone, [...inputs], opset)[3]!;
    attentionLogits(Float64Array.from(qk.data), qk.dims[qk.dims.length - 1]!, sink);
  },
};

/** fhec::attention, as runtime/reference/ops/canonical.ts defines it. */
const fhecAttentionProbe: Probe = {
  needs: [0, 1, 3, 5],
  run(node, inputs, _opset, sink) {
    const [q, k, , pastK, , pad] = inputs;
    if (!q || !k) return;
    const N = attrInt(node, 'num_heads');
    const Nkv = attrInt(node, 'kv_num_heads');
    const scale = attrFloat(node, 'scale');
    const causal = attrInt(node, 'causal', 0) === 1;
    const [B, S] = q.dims as [number, number];
    const H = q.dims[2]! / N;
    const P = pastK ? pastK.dims[2]! : 0;
    const T = P + S;
    const group = N / Nkv;
    // key(b, g, j): from the past [B, Nkv, P, H] for j < P, else from k [B, S, Nkv*H].
    const keyAt = (b: number, g: number, j: number, h: number): number =>
      j < P ? pastK!.data[((b * Nkv + g) * P + j) * H + h]! : k.data[(b * S + (j - P)) * Nkv * H + g * H + h]!;
    const logits = new Float64Array(B * N * S * T);
    for (let b = 0; b < B; b++)
      for (let n = 0; n < N; n++) {
        const g = Math.floor(n / group);
        for (let i = 0; i < S; i++) {
          const qo = (b * S + i) * N * H + n * H;
          const ro = ((b * N + n) * S + i) * T;
          for (let j = 0; j < T; j++) {
            if ((causal && j > P + i) || (pad && pad.data[b * T + j] === 0)) {
              logits[ro + j] = -Infinity;
              continue;
            }
            let s = 0;
            for (let h = 0; h < H; h++) s += q.data[qo + h]! * keyAt(b, g, j, h);
            logits[ro + j] = s * scale;
          }
        }
      }
    attentionLogits(logits, T, sink);
  },
};

interface NormKind {
  rms: boolean;
  /** ORT Skip* forms: the normalized row is input + skip (+ bias). */
  skip: boolean;
  defaultEps: number;
  /** fhec::rms_norm: always the last axis, epsilon required. */
  lastAxis?: boolean;
}

function normProbe(kind: NormKind): Probe {
  return {
    needs: kind.skip ? [0, 1, 3, 4] : [0],
    run(node, inputs, _opset, sink) {
      const x = inputs[0];
      if (!x || x.rank === 0) return;
      const dims = x.dims;
      const axis = kind.lastAxis || kind.skip ? dims.length - 1 : normAxis(attrInt(node, 'axis', -1), dims.length);
      const eps = Number.isNaN(kind.defaultEps) ? attrFloat(node, 'epsilon') : attrFloat(node, 'epsilon', kind.defaultEps);
      let data: ArrayLike<number> = x.data;
      if (kind.skip) {
        const skip = inputs[1];
        const bias = inputs[kind.rms ? 3 : 4];
        const hidden = dims[dims.length - 1]!;
        const s = new Float64Array(x.size);
        for (let i = 0; i < s.length; i++) s[i] = x.data[i]! + (skip ? skip.data[i % skip.size]! : 0) + (bias ? bias.data[i % hidden]! : 0);
        data = s;
      }
      const cols = dims.slice(axis).reduce((p, d) => p * d, 1);
      const rows = cols ? x.size / cols : 0;
      const out = new Float64Array(rows);
      for (let r = 0; r < rows; r++) {
        const o = r * cols;
        let m = 0;
        if (!kind.rms) {
          for (let j = 0; j < cols; j++) m += data[o + j]!;
          m /= cols;
        }
        let v = 0;
        for (let j = 0; j < cols; j++) {
          const d = data[o + j]! - m;
          v += d * d;
        }
        out[r] = v / cols + eps;
      }
      sink('norm_arg', out, 'float64');
    },
  };
}
