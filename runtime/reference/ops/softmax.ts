// Softmax and LogSoftmax. Before opset 13 the input is flattened to 2-D at `axis` (default 1) and
// normalized over the whole trailing block; from 13 on only along `axis` (default -1).

import { attrInt } from '../../../ir/graph/attrs.js';
import { input, normAxis, product, result, type Kernel } from '../kernel.js';

function softmaxKernel(log: boolean): Kernel {
  return (ctx, ins) => {
    const x = input(ctx, ins, 0, 'input');
    const rank = x.dims.length;
    const legacy = ctx.opset < 13;
    if (rank === 0) return [result(x.dtype, [], Float64Array.of(log ? 0 : 1))];
    const axis = normAxis(ctx, attrInt(ctx.node, 'axis', legacy ? 1 : -1), rank);
    const outer = product(x.dims, 0, axis);
    const n = legacy ? product(x.dims, axis) : x.dims[axis]!;
    const inner = legacy ? 1 : product(x.dims, axis + 1);
    const src = x.data;
    const out = new Float64Array(src.length);
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < inner; j++) {
        const base = o * n * inner + j;
        let max = -Infinity;
        for (let k = 0; k < n; k++) max = Math.max(max, src[base + k * inner]!);
        // All -inf: subtract 0 instead so the row becomes NaN like numpy, not a silent 0/0 trap.
        if (max === -Infinity) max = 0;
        let sum = 0;
        for (let k = 0; k < n; k++) {
          const e = Math.exp(src[base + k * inner]! - max);
          out[base + k * inner] = e;
          sum += e;
        }
        if (log) {
          const ls = Math.log(sum);
          for (let k = 0; k < n; k++) out[base + k * inner] = src[base + k * inner]! - max - ls;
        } else {
          for (let k = 0; k < n; k++) out[base + k * inner] = out[base + k * inner]! / sum;
        }
      }
    }
    return [result(x.dtype, x.dims, out)];
  };
}

export const softmaxKernels: Record<string, Kernel> = {
  Softmax: softmaxKernel(false),
  LogSoftmax: softmaxKernel(true),
};
