// Reductions (ReduceSum/Mean/Max/Min/Prod/SumSquare/L1/L2/LogSumExp, ArgMax/ArgMin). Axes come from the
// attribute before opset 18 (ReduceSum: 13) and from the second input after; an empty axes list
// reduces everything unless noop_with_empty_axes is set.

import { isFloat, type DType } from '../../../ir/dtype.js';
import { attrInt, attrInts } from '../../../ir/graph/attrs.js';
import type { Tensor } from '../../../ir/tensor.js';
import { fail, input, normAxis, result, type Kernel, type KernelContext } from '../kernel.js';

interface Reducer {
  init: number;
  step: (acc: number, x: number) => number;
  finish?: (acc: number, count: number) => number;
  /** Value for an empty reduction set when the dtype is an integer type. */
  emptyInt?: (dtype: DType) => number;
}

const INT_MIN: Partial<Record<DType, number>> = { int8: -128, int16: -32768, int32: -2147483648, int64: -(2 ** 63) };
const INT_MAX: Partial<Record<DType, number>> = {
  int8: 127, int16: 32767, int32: 2147483647, int64: 2 ** 63 - 1,
  uint8: 255, uint16: 65535, uint32: 4294967295, uint64: 2 ** 64 - 1,
};

const REDUCERS: Record<string, Reducer> = {
  ReduceSum: { init: 0, step: (a, x) => a + x },
  ReduceSumSquare: { init: 0, step: (a, x) => a + x * x },
  ReduceL1: { init: 0, step: (a, x) => a + Math.abs(x) },
  ReduceL2: { init: 0, step: (a, x) => a + x * x, finish: (a) => Math.sqrt(a) },
  ReduceMean: { init: 0, step: (a, x) => a + x, finish: (a, n) => a / n },
  ReduceProd: { init: 1, step: (a, x) => a * x },
  ReduceMax: {
    init: -Infinity,
    step: (a, x) => (Number.isNaN(a) || Number.isNaN(x) ? NaN : x > a ? x : a),
    emptyInt: (d) => (d === 'bool' ? 0 : (INT_MIN[d] ?? 0)),
  },
  ReduceMin: {
    init: Infinity,
    step: (a, x) => (Number.isNaN(a) || Number.isNaN(x) ? NaN : x < a ? x : a),
    emptyInt: (d) => (d === 'bool' ? 1 : (INT_MAX[d] ?? 0)),
  },
};

/** Axes to reduce (sorted, unique), or null for "no reduction" (noop_with_empty_axes). */
function reduceAxes(ctx: KernelContext, op: string, ins: readonly (Tensor | null)[], rank: number): number[] | null {
  const fromInput = op === 'ReduceSum' ? ctx.opset >= 13 : ctx.opset >= 18;
  let axes: number[];
  if (fromInput) axes = ins[1] ? Array.from(ins[1].data) : [];
  else axes = attrInts(ctx.node, 'axes', []);
  if (axes.length === 0) {
    if (fromInput && attrInt(ctx.node, 'noop_with_empty_axes', 0) === 1) return null;
    return Array.from({ length: rank }, (_, i) => i);
  }
  return [...new Set(axes.map((a) => normAxis(ctx, a, rank, 'reduction axis')))].sort((a, b) => a - b);
}

function reduceKernel(op: string, r: Reducer): Kernel {
  return (ctx, ins) => {
    const x = input(ctx, ins, 0, 'data');
    const rank = x.dims.length;
    const axes = reduceAxes(ctx, op, ins, rank);
    if (axes === null) return [x];
    const keep = attrInt(ctx.node, 'keepdims', 1) === 1;
    const reduced = new Array<boolean>(rank).fill(false);
    for (const a of axes) reduced[a] = true;
    const keptDims = x.dims.map((d, i) => (reduced[i] ? 1 : d));
    const outDims = keep ? keptDims : x.dims.filter((_, i) => !reduced[i]);
    let outN = 1;
    for (const d of keptDims) outN *= d;
    let count = 1;
    for (let i = 0; i < rank; i++) if (reduced[i]) count *= x.dims[i]!;
    const acc = new Float64Array(outN).fill(r.init);
    // Output strides over the input index space (0 along reduced axes).
    const ostr = new Array<number>(rank).fill(0);
    let s = 1;
    for (let i = rank - 1; i >= 0; i--) {
      ostr[i] = reduced[i] ? 0 : s;
      s *= keptDims[i]!;
    }
    const n = x.data.length;
    if (n > 0) {
      const idx = new Array<number>(rank).fill(0);
      let o = 0;
      const step = r.step;
      const data = x.data;
      for (let i = 0; i < n; i++) {
        acc[o] = step(acc[o]!, data[i]!);
        for (let k = rank - 1; k >= 0; k--) {
          idx[k]++;
          o += ostr[k]!;
          if (idx[k]! < x.dims[k]!) break;
          o -= ostr[k]! * x.dims[k]!;
          idx[k] = 0;
        }
      }
    }
    if (r.finish) for (let i = 0; i < outN; i++) acc[i] = r.finish(acc[i]!, count);
    if (count === 0 && r.emptyInt && !isFloat(x.dtype)) acc.fill(r.emptyInt(x.dtype));
    return [result(x.dtype, outDims, acc)];
  };
}

function argKernel(max: boolean): Kernel {
  return (ctx, ins) => {
    const x = input(ctx, ins, 0, 'data');
    const rank = x.dims.length;
    const axis = normAxis(ctx, attrInt(ctx.node, 'axis', 0), rank);
    const keep = attrInt(ctx.node, 'keepdims', 1) === 1;
    const lastIndex = attrInt(ctx.node, 'select_last_index', 0) === 1;
    const n = x.dims[axis]!;
    if (n === 0) fail(ctx, 'cannot take ArgMax/ArgMin over an empty axis');
    let outer = 1;
    for (let i = 0; i < axis; i++) outer *= x.dims[i]!;
    let inner = 1;
    for (let i = axis + 1; i < rank; i++) inner *= x.dims[i]!;
    const out = new Float64Array(outer * inner);
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < inner; j++) {
        let best = x.data[o * n * inner + j]!;
        let bi = 0;
        for (let k = 1; k < n; k++) {
          const v = x.data[(o * n + k) * inner + j]!;
          const better = max ? v > best || (lastIndex && v === best) : v < best || (lastIndex && v === best);
          if (better) {
            best = v;
            bi = k;
          }
        }
        out[o * inner + j] = bi;
      }
    }
    const dims = keep ? x.dims.map((d, i) => (i === axis ? 1 : d)) : x.dims.filter((_, i) => i !== axis);
    return [result('int64', dims, out)];
  };
}

const cumSumKernel: Kernel = (ctx, ins) => {
  const x = input(ctx, ins, 0, 'x');
  const axis = normAxis(ctx, input(ctx, ins, 1, 'axis').data[0]!, x.dims.length);
  const exclusive = attrInt(ctx.node, 'exclusive', 0) === 1;
  const reverse = attrInt(ctx.node, 'reverse', 0) === 1;
  const n = x.dims[axis]!;
  let outer = 1;
  for (let i = 0; i < axis; i++) outer *= x.dims[i]!;
  let inner = 1;
  for (let i = axis + 1; i < x.dims.length; i++) inner *= x.dims[i]!;
  const out = new Float64Array(x.size);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < inner; j++) {
      let acc = 0;
      for (let t = 0; t < n; t++) {
        const k = reverse ? n - 1 - t : t;
        const at = (o * n + k) * inner + j;
        if (exclusive) {
          out[at] = acc;
          acc += x.data[at]!;
        } else {
          acc += x.data[at]!;
          out[at] = acc;
        }
      }
    }
  }
  return [result(x.dtype, x.dims, out)];
};

export const reduceKernels: Record<string, Kernel> = {
  ...Object.fromEntries(Object.entries(REDUCERS).map(([op, r]) => [op, reduceKernel(op, r)])),
  ArgMax: argKernel(true),
  ArgMin: argKernel(false),
  CumSum: cumSumKernel,
};
