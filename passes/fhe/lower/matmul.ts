// MatMul (numpy batching, 1-D operands) and Gemm (alpha, beta, transA, transB, bias C).
// Both are a contraction out[g] = sum_t A[a(g, t)] * B[b(g, t)], lowered one of two ways:
//
// - matrix-vector (a plaintext 2-D weight on one side): the diagonal method with baby-step giant-step
//   (passes/fhe/matvec.ts). The encrypted side is cut into vectors (rows of A, or columns of B when the
//   weight is on the left), several vectors per ciphertext; each group costs ~2*sqrt(P) rotations
//   (P = next power of two of k) plus P plaintext multiplications per output row block, depth 1.
// - expanded products (two ciphertexts, or a batched plaintext): every output element gets K =
//   nextPow2(k) consecutive slots holding A[i, 0..k) and B[0..k, j] (a graph input is packed that way by
//   the client); one ct x ct (or plaintext) multiplication and log2(K) rotations (rotate-and-sum) per
//   slots/K output elements; depth 1. The result sits in the first slot of each group.
// Gemm's alpha is folded into a plaintext operand when there is one (else one scalar multiplication,
// +1 depth); beta likewise into a plaintext C (else a scalar multiplication in parallel, no extra depth).

import { FhecError } from '../../../ir/errors.js';
import type { FheValue } from '../../../ir/fhe/types.js';
import { numel } from '../../../ir/tensor.js';
import { columnBlocks, lowerMatVec, type MatrixView } from '../layout/matvec.js';
import { nextPow2, replicatedLayout, rotateAndSum, type HelperCost } from '../layout/packing.js';
import { dimsOf, notConstantOnly, type EncOperand, type InputOperand, type LowerContext, type Operand } from './context.js';
import { operandAt } from './elementwise.js';
import { broadcastDims, broadcastIndex } from './indexing.js';
import { ANY, GARBAGE, wantFromHolds, ZERO, type Block, type Holds } from './placement.js';

/** out[g] = sum_{t<k} A[a(g, t)] * B[b(g, t)] with g = (batch, i, j) row-major over [batch, m, n]. */
export interface Contraction {
  outDims: number[];
  batch: number;
  m: number;
  k: number;
  n: number;
  a(g: number, t: number): number;
  b(g: number, t: number): number;
  /** The same A (resp. B) matrix serves every batch. */
  aShared: boolean;
  bShared: boolean;
}

export function matMulContraction(aDims: number[], bDims: number[], node: string): Contraction {
  if (aDims.length === 0 || bDims.length === 0) throw new FhecError('MatMul operands must have rank >= 1', { node });
  const aD = aDims.length === 1 ? [1, aDims[0]!] : aDims;
  const bD = bDims.length === 1 ? [bDims[0]!, 1] : bDims;
  const [m, k] = aD.slice(-2) as [number, number];
  const [k2, n] = bD.slice(-2) as [number, number];
  if (k !== k2) throw new FhecError(`MatMul contracts ${k} with ${k2}`, { node });
  const batchA = aD.slice(0, -2);
  const batchB = bD.slice(0, -2);
  const outBatch = broadcastDims(batchA, batchB);
  const aBI = broadcastIndex(outBatch, batchA);
  const bBI = broadcastIndex(outBatch, batchB);
  const outDims = [...outBatch, ...(aDims.length === 1 ? [] : [m]), ...(bDims.length === 1 ? [] : [n])];
  return {
    outDims,
    batch: numel(outBatch),
    m,
    k,
    n,
    a: (g, t) => aBI[Math.floor(g / (m * n))]! * m * k + (Math.floor(g / n) % m) * k + t,
    b: (g, t) => bBI[Math.floor(g / (m * n))]! * k * n + t * n + (g % n),
    aShared: numel(batchA) === 1,
    bShared: numel(batchB) === 1,
  };
}

export function gemmContraction(aDims: number[], bDims: number[], transA: boolean, transB: boolean, node: string): Contraction {
  if (aDims.length !== 2 || bDims.length !== 2) throw new FhecError('Gemm needs 2-D A and B', { node });
  const [r0, r1] = aDims as [number, number];
  const [c0, c1] = bDims as [number, number];
  const m = transA ? r1 : r0;
  const k = transA ? r0 : r1;
  const n = transB ? c0 : c1;
  if ((transB ? c1 : c0) !== k) throw new FhecError(`Gemm contracts ${k} with ${transB ? c1 : c0}`, { node });
  return {
    outDims: [m, n],
    batch: 1,
    m,
    k,
    n,
    a: (g, t) => (transA ? t * r1 + Math.floor(g / n) : Math.floor(g / n) * r1 + t),
    b: (g, t) => (transB ? (g % n) * c1 + t : t * c1 + (g % n)),
    aShared: true,
    bShared: true,
  };
}

/** Lowers alpha * (contraction of A and B). */
export function lowerContraction(ctx: LowerContext, A: Operand, B: Operand, con: Contraction, alpha: number, node: string): EncOperand {
  if (A.kind === 'plain' && B.kind === 'plain') throw notConstantOnly(node);
  if (numel(con.outDims) === 0 || con.k === 0) throw new FhecError('empty tensors cannot be encrypted', { node });
  const { m, k, n } = con;
  if (B.kind === 'plain' && con.bShared && A.kind !== 'plain') {
    // Vectors = rows of A (every batch and i); the matrix is B^T (n x k).
    const w = B.tensor.data;
    const mat: MatrixView = { rows: n, cols: k, at: (r, c) => alpha * w[con.b(r, c)]! };
    return matVec(ctx, A, con.batch * m, k, (tau, c) => con.a(tau * n, c), mat, (tau, r) => tau * n + r, con.outDims);
  }
  if (A.kind === 'plain' && con.aShared && B.kind !== 'plain') {
    // Vectors = columns of B (every batch and j); the matrix is A (m x k).
    const w = A.tensor.data;
    const mat: MatrixView = { rows: m, cols: k, at: (r, c) => alpha * w[con.a(r * n, c)]! };
    const g0 = (tau: number): number => Math.floor(tau / n) * m * n + (tau % n);
    return matVec(ctx, B, con.batch * n, k, (tau, c) => con.b(g0(tau), c), mat, (tau, r) => g0(tau) + r * n, con.outDims);
  }
  return expanded(ctx, A, B, con, alpha);
}

function matVec(
  ctx: LowerContext,
  x: EncOperand | InputOperand,
  vectors: number,
  k: number,
  vecElem: (tau: number, c: number) => number,
  mat: MatrixView,
  outElem: (tau: number, row: number) => number,
  outDims: number[],
): EncOperand {
  const slots = ctx.slots;
  const P = nextPow2(k);
  // Several vectors per ciphertext when each fits half a token block (the BSGS kernel needs the room).
  let tp = 1;
  while (tp < vectors && slots / (tp * 2) >= 2 * P) tp *= 2;
  const stride = slots / tp;
  const cols = columnBlocks(k, tp === 1 ? stride : stride / 2);
  const maxP = Math.max(...cols.map((c) => nextPow2(c.cols)));
  const maxRows = tp === 1 ? stride : stride - maxP + 1;
  const blocks: Block[] = [];
  let rotations = 0;
  let products = 0;
  for (let tau0 = 0; tau0 < vectors; tau0 += tp) {
    const tokens = Math.min(tp, vectors - tau0);
    const inputs = cols.map((cb) => {
      const layout = replicatedLayout(cb.cols, slots, tokens, stride);
      const want = new Int32Array(slots).fill(ZERO);
      for (let t = 0; t < tokens; t++) {
        for (let r = 0; r < layout.copies; r++) {
          for (let c = 0; c < cb.cols; c++) want[t * stride + r * layout.period + c] = vecElem(tau0 + t, cb.colStart + c);
        }
      }
      return { value: ctx.cipher(x, want).ct, layout, colStart: cb.colStart };
    });
    const res = lowerMatVec(ctx.b, mat, inputs, maxRows);
    rotations += res.cost.rotations;
    products += res.cost.plainMultiplications;
    for (const o of res.outputs) {
      const holds: Holds = new Int32Array(slots).fill(GARBAGE);
      for (let t = 0; t < tokens; t++) for (let u = 0; u < o.rows; u++) holds[t * stride + u] = outElem(tau0 + t, o.rowStart + u);
      blocks.push({ ct: o.value, holds });
    }
  }
  ctx.cost.rotations += rotations;
  ctx.cost.plainMultiplications += products;
  ctx.notes.push(
    `BSGS matrix-vector: ${mat.rows}x${mat.cols} weight, ${vectors} vector(s), ${tp} per ciphertext, ` +
      `${cols.length} column block(s): ${rotations} rotations, ${products} plaintext multiplications, depth 1`,
  );
  return { kind: 'enc', dims: outDims, blocks };
}

function expanded(ctx: LowerContext, A: Operand, B: Operand, con: Contraction, alpha: number): EncOperand {
  const slots = ctx.slots;
  const { k } = con;
  const K = Math.min(nextPow2(k), slots);
  const chunks = Math.ceil(k / K);
  const per = slots / K;
  const total = numel(con.outDims);
  const b = ctx.b;
  const blocks: Block[] = [];
  const before = { ...ctx.cost };
  const alphaOn = A.kind === 'plain' ? 'A' : B.kind === 'plain' ? 'B' : 'result';
  for (let g0 = 0; g0 < total; g0 += per) {
    const cnt = Math.min(per, total - g0);
    let acc: FheValue | undefined;
    for (let q = 0; q < chunks; q++) {
      const wa = new Int32Array(slots).fill(ANY);
      const wb = new Int32Array(slots).fill(ANY);
      for (let gi = 0; gi < cnt; gi++) {
        for (let tt = 0; tt < K; tt++) {
          const t = q * K + tt;
          const s = gi * K + tt;
          wa[s] = t < k ? con.a(g0 + gi, t) : ZERO;
          wb[s] = t < k ? con.b(g0 + gi, t) : ZERO;
        }
      }
      const side = (x: Operand, want: Int32Array, scale: number): { ct?: FheValue; plain?: FheValue } =>
        x.kind === 'plain' ? { plain: ctx.plain(x, want, scale).pt } : { ct: ctx.cipher(x, want).ct };
      const sa = side(A, wa, alphaOn === 'A' ? alpha : 1);
      const sb = side(B, wb, alphaOn === 'B' ? alpha : 1);
      let prod: FheValue;
      if (sa.ct && sb.ct) prod = ctx.mul(sa.ct, sb.ct);
      else if (sa.ct) prod = ctx.mulPlain(sa.ct, sb.plain!);
      else prod = ctx.mulPlain(sb.ct!, sa.plain!);
      acc = acc ? b.add(acc, prod) : prod;
    }
    const hc: HelperCost = { rotations: 0, galoisSteps: [] };
    let sum = rotateAndSum(b, acc!, K, 1, hc);
    ctx.cost.rotations += hc.rotations;
    if (alphaOn === 'result' && alpha !== 1) sum = ctx.mulScalar(sum, alpha);
    const holds: Holds = new Int32Array(slots).fill(GARBAGE);
    for (let gi = 0; gi < cnt; gi++) holds[gi * K] = g0 + gi;
    blocks.push({ ct: sum, holds });
  }
  const kind = A.kind !== 'plain' && B.kind !== 'plain' ? 'ct x ct' : 'plaintext';
  ctx.notes.push(
    `expanded ${kind} products: ${total} output(s), ${K} slots each, ${blocks.length} block(s), ${chunks} chunk(s): ` +
      `${ctx.cost.rotations - before.rotations} rotations, ${ctx.cost.ctMultiplications - before.ctMultiplications} ct x ct, ` +
      `${ctx.cost.plainMultiplications - before.plainMultiplications} plaintext multiplications` +
      (alphaOn === 'result' && alpha !== 1 ? ' (alpha: +1 depth)' : ''),
  );
  return { kind: 'enc', dims: con.outDims, blocks };
}

/** Y = P + beta * C (C broadcast to P's shape), at P's slots. */
export function addBias(ctx: LowerContext, P: EncOperand, C: Operand, beta: number): EncOperand {
  if (beta === 0) return P;
  const c = dimsOf(C);
  if (c.length > 2) throw new FhecError(`Gemm bias C has rank ${c.length}, at most 2 is allowed`);
  const blocks = P.blocks.map((blk) => {
    const want = wantFromHolds(blk.holds);
    const y = operandAt(ctx, C, P.dims, want, beta);
    const ct = y.plain ? ctx.b.addPlain(blk.ct, y.pt) : ctx.b.add(blk.ct, y.ct);
    const holds = new Int32Array(blk.holds.length);
    for (let s = 0; s < holds.length; s++) holds[s] = want[s]! >= 0 ? want[s]! : GARBAGE;
    return { ct, holds };
  });
  return { kind: 'enc', dims: P.dims, blocks };
}
