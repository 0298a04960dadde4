// LayerNormalization (17), RMSNormalization (23), and the ORT contrib forms SimplifiedLayerNormalization,
// SkipSimplifiedLayerNormalization and SkipLayerNormalization. Statistics are taken in float64 over
// dims [axis, rank); scale and bias broadcast against X like numpy.

import type { DType } from '../../../ir/dtype.js';
import { attrFloat, attrInt } from '../../../ir/graph/attrs.js';
import type { Tensor } from '../../../ir/tensor.js';
import { declaredDtype, fail, input, normAxis, product, result, shapeStr, type Kernel, type KernelContext } from '../kernel.js';
import { broadcastShapes, mapBinary } from '../strided.js';

interface Normalized {
  y: Float64Array;
  /** Per-row mean (zeros for RMS) and 1/sqrt(var + eps). */
  mean: Float64Array;
  invStd: Float64Array;
}

/** Normalizes each row of `cols` values; `rms` skips the mean subtraction. */
function normalizeRows(x: Float64Array, rows: number, cols: number, eps: number, rms: boolean): Normalized {
  const y = new Float64Array(x.length);
  const mean = new Float64Array(rows);
  const invStd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let m = 0;
    if (!rms) {
      for (let j = 0; j < cols; j++) m += x[o + j]!;
      m /= cols;
    }
    let v = 0;
    for (let j = 0; j < cols; j++) {
      const d = x[o + j]! - m;
      v += d * d;
    }
    const inv = 1 / Math.sqrt(v / cols + eps);
    for (let j = 0; j < cols; j++) y[o + j] = (x[o + j]! - m) * inv;
    mean[r] = m;
    invStd[r] = inv;
  }
  return { y, mean, invStd };
}

/** y * scale (+ bias), broadcast; the result must keep X's shape. */
function affine(ctx: KernelContext, y: Float64Array, dims: readonly number[], scale: Tensor, bias: Tensor | null): Float64Array {
  const out = broadcastShapes(ctx, [dims, scale.dims, ...(bias ? [bias.dims] : [])]);
  if (out.length !== dims.length || out.some((d, i) => d !== dims[i])) {
    fail(ctx, `scale ${shapeStr(scale.dims)}${bias ? ` or bias ${shapeStr(bias.dims)}` : ''} does not broadcast to X ${shapeStr(dims)}`);
  }
  let r = mapBinary(y, dims, scale.data, scale.dims, dims, (a, b) => a * b);
  if (bias) r = mapBinary(r, dims, bias.data, bias.dims, dims, (a, b) => a + b);
  return r;
}

function statDims(dims: readonly number[], axis: number): number[] {
  return dims.map((d, i) => (i < axis ? d : 1));
}

function statType(ctx: KernelContext, i: number, x: DType): DType {
  const d = declaredDtype(ctx, i, x);
  return d === 'float16' || d === 'float32' || d === 'float64' || d === 'bfloat16' ? d : 'float32';
}

function layerNorm(rms: boolean): Kernel {
  return (ctx, ins) => {
    const x = input(ctx, ins, 0, 'X');
    const scale = input(ctx, ins, 1, 'scale');
    const bias = rms ? null : (ins[2] ?? null);
    const axis = normAxis(ctx, attrInt(ctx.node, 'axis', -1), x.dims.length);
    const eps = attrFloat(ctx.node, 'epsilon', 1e-5);
    const rows = product(x.dims, 0, axis);
    const n = normalizeRows(x.data, rows, product(x.dims, axis), eps, rms);
    const outs: Tensor[] = [result(x.dtype, x.dims, affine(ctx, n.y, x.dims, scale, bias))];
    const sd = statDims(x.dims, axis);
    if (!rms) outs.push(result(statType(ctx, 1, x.dtype), sd, n.mean), result(statType(ctx, 2, x.dtype), sd, n.invStd));
    return outs;
  };
}

/** ORT SimplifiedLayerNormalization: outputs Y and (optional) inv_std_var. */
const simplifiedLayerNorm: Kernel = (ctx, ins) => {
  const x = input(ctx, ins, 0, 'X');
  const scale = input(ctx, ins, 1, 'scale');
  const axis = normAxis(ctx, attrInt(ctx.node, 'axis', -1), x.dims.length);
  const eps = attrFloat(ctx.node, 'epsilon', 1e-5);
  const n = normalizeRows(x.data, product(x.dims, 0, axis), product(x.dims, axis), eps, true);
  return [
    result(x.dtype, x.dims, affine(ctx, n.y, x.dims, scale, null)),
    result(statType(ctx, 1, 'float32'), statDims(x.dims, axis), n.invStd),
  ];
};

/**
 * ORT Skip(Simplified)LayerNormalization: s = input + skip (+ bias), then (RMS) layer norm of s over the
 * last axis. Outputs: output, mean, inv_std_var, input_skip_bias_sum.
 */
function skipLayerNorm(rms: boolean): Kernel {
  return (ctx, ins) => {
    const x = input(ctx, ins, 0, 'input');
    const skip = input(ctx, ins, 1, 'skip');
    const gamma = input(ctx, ins, 2, 'gamma');
    const beta = rms ? null : (ins[3] ?? null);
    const bias = rms ? (ins[3] ?? null) : (ins[4] ?? null);
    const eps = attrFloat(ctx.node, 'epsilon', 1e-12);
    if (skip.size !== x.size && !(x.size % skip.size === 0 && skip.dims[skip.dims.length - 1] === x.dims[x.dims.length - 1])) {
      fail(ctx, `skip ${shapeStr(skip.dims)} does not match input ${shapeStr(x.dims)}`);
    }
    const hidden = x.dims[x.dims.length - 1]!;
    const sum = new Float64Array(x.size);
    for (let i = 0; i < sum.length; i++) sum[i] = x.data[i]! + skip.data[i % skip.size]! + (bias ? bias.data[i % hidden]! : 0);
    const rows = x.size / hidden;
    const n = normalizeRows(sum, rows, hidden, eps, rms);
    const sd = statDims(x.dims, x.dims.length - 1);
    return [
      result(x.dtype, x.dims, affine(ctx, n.y, x.dims, gamma, beta)),
      result(statType(ctx, 1, 'float32'), sd, n.mean),
      result(statType(ctx, 2, 'float32'), sd, n.invStd),
      result(x.dtype, x.dims, sum),
    ];
  };
}

export const normalizationKernels: Record<string, Kernel> = {
  LayerNormalization: layerNorm(false),
  RMSNormalization: layerNorm(true),
  SimplifiedLayerNormalization: simplifiedLayerNorm,
};

export const msNormalizationKernels: Record<string, Kernel> = {
  SimplifiedLayerNormalization: simplifiedLayerNorm,
  SkipSimplifiedLayerNormalization: skipLayerNorm(true),
  SkipLayerNormalization: skipLayerNorm(false),
};
