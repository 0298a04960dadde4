// MatMul (numpy semantics: 1-D promotion, broadcast batch dimensions) and Gemm.

import { attrFloat, attrInt } from '../../../ir/graph/attrs.js';
import { fail, input, result, shapeStr, type Kernel } from '../kernel.js';
import { broadcastShapes, broadcastStrides, broadcastTo } from '../strided.js';

/** out[M,N] += a[M,K] @ b[K,N] at the given offsets, i-k-j order. */
function matmulInto(
  a: Float64Array, ao: number, b: Float64Array, bo: number, out: Float64Array, oo: number,
  M: number, K: number, N: number,
): void {
  for (let i = 0; i < M; i++) {
    const orow = oo + i * N;
    const arow = ao + i * K;
    for (let k = 0; k < K; k++) {
      const aik = a[arow + k]!;
      const brow = bo + k * N;
      for (let j = 0; j < N; j++) out[orow + j] += aik * b[brow + j]!;
    }
  }
}

const matmulKernel: Kernel = (ctx, ins) => {
  const A = input(ctx, ins, 0, 'A');
  const B = input(ctx, ins, 1, 'B');
  if (A.dims.length === 0 || B.dims.length === 0) fail(ctx, 'MatMul inputs must have rank >= 1');
  const aDims = A.dims.length === 1 ? [1, A.dims[0]!] : [...A.dims];
  const bDims = B.dims.length === 1 ? [B.dims[0]!, 1] : [...B.dims];
  const M = aDims[aDims.length - 2]!;
  const K = aDims[aDims.length - 1]!;
  const K2 = bDims[bDims.length - 2]!;
  const N = bDims[bDims.length - 1]!;
  if (K !== K2) fail(ctx, `MatMul shapes ${shapeStr(A.dims)} and ${shapeStr(B.dims)} do not match (inner ${K} vs ${K2})`);
  const aBatch = aDims.slice(0, -2);
  const bBatch = bDims.slice(0, -2);
  const batch = broadcastShapes(ctx, [aBatch, bBatch]);
  const sa = broadcastStrides(aBatch, batch).map((s) => s * M * K);
  const sb = broadcastStrides(bBatch, batch).map((s) => s * K * N);
  let nb = 1;
  for (const d of batch) nb *= d;
  const out = new Float64Array(nb * M * N);
  const idx = new Array<number>(batch.length).fill(0);
  let ao = 0;
  let bo = 0;
  for (let t = 0; t < nb; t++) {
    matmulInto(A.data, ao, B.data, bo, out, t * M * N, M, K, N);
    for (let k = batch.length - 1; k >= 0; k--) {
      idx[k]++;
      ao += sa[k]!;
      bo += sb[k]!;
      if (idx[k]! < batch[k]!) break;
      ao -= sa[k]! * batch[k]!;
      bo -= sb[k]! * batch[k]!;
      idx[k] = 0;
    }
  }
  const dims = [...batch];
  if (A.dims.length > 1) dims.push(M);
  if (B.dims.length > 1) dims.push(N);
  return [result(A.dtype, dims, out)];
};

/** Row-major copy of a 2-D matrix, transposed when asked. */
function matrix(data: Float64Array, rows: number, cols: number, trans: boolean): Float64Array {
  if (!trans) return data;
  const t = new Float64Array(data.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = data[i * cols + j]!;
  return t;
}

const gemmKernel: Kernel = (ctx, ins) => {
  const A = input(ctx, ins, 0, 'A');
  const B = input(ctx, ins, 1, 'B');
  const C = ins[2] ?? null;
  if (A.dims.length !== 2 || B.dims.length !== 2) fail(ctx, `Gemm needs 2-D A and B, got ${shapeStr(A.dims)} and ${shapeStr(B.dims)}`);
  const transA = attrInt(ctx.node, 'transA', 0) === 1;
  const transB = attrInt(ctx.node, 'transB', 0) === 1;
  const alpha = attrFloat(ctx.node, 'alpha', 1);
  const beta = attrFloat(ctx.node, 'beta', 1);
  const [M, K] = transA ? [A.dims[1]!, A.dims[0]!] : [A.dims[0]!, A.dims[1]!];
  const [K2, N] = transB ? [B.dims[1]!, B.dims[0]!] : [B.dims[0]!, B.dims[1]!];
  if (K !== K2) fail(ctx, `Gemm shapes ${shapeStr(A.dims)} and ${shapeStr(B.dims)} do not match (transA=${+transA}, transB=${+transB})`);
  const a = matrix(A.data, A.dims[0]!, A.dims[1]!, transA);
  const b = matrix(B.data, B.dims[0]!, B.dims[1]!, transB);
  const out = new Float64Array(M * N);
  matmulInto(a, 0, b, 0, out, 0, M, K, N);
  if (alpha !== 1) for (let i = 0; i < out.length; i++) out[i] = out[i]! * alpha;
  if (C) {
    broadcastShapes(ctx, [C.dims, [M, N]]);
    if (C.dims.length > 2) fail(ctx, `Gemm C of shape ${shapeStr(C.dims)} does not broadcast to [${M}, ${N}]`);
    const c = broadcastTo(C.data, C.dims, [M, N]);
    for (let i = 0; i < out.length; i++) out[i] = out[i]! + beta * c[i]!;
  }
  return [result(A.dtype, [M, N], out)];
};

export const matmulKernels: Record<string, Kernel> = { MatMul: matmulKernel, Gemm: gemmKernel };
