// Matrix-vector products y = M x by the diagonal method with baby-step giant-step (Halevi-Shoup).
//
// x is replicated with period P = nextPow2(cols), so rot(x, i)[u] = x[(u+i) mod P]. With diagonals
// diag_i[u] = M[u][(u+i) mod P], y[u] = sum_i diag_i[u] * rot(x, i)[u]. BSGS writes i = g*B + b:
//   y = sum_g rot( sum_b rot(diag_{gB+b}, -gB) * rot(x, b), gB )
// so D diagonals cost (B-1) baby + (G-1) giant rotations, about 2*sqrt(D), instead of D.
// - rows >= P ("tall"/square): D = P diagonals, y lands in slots [0, rows), zero elsewhere;
// - rows < P ("wide"): rows are repeated every R = nextPow2(rows) slots so only R diagonals are
//   needed; the P/R partial sums are then added by rotate-and-sum (log2(P/R) rotations);
//   y lands in slots [0, rows) with partial sums (garbage) elsewhere in [0, P);
// - larger than the slots: M is cut into blocks; each input block's baby steps are shared by all
//   output blocks, and partial products of one output block are added before its giant steps.
// Several tokens are packed side by side (one block of `stride` slots each); the same diagonals
// serve all of them, so a whole prefill costs the same rotations as one token.

import { FhecError } from '../../../ir/errors.js';
import type { FheBuilder } from '../../../ir/fhe/builder.js';
import type { FheConstantData, FheValue, SlotLayout } from '../../../ir/fhe/types.js';
import { fillDiagonal, type DiagonalGeometry, type LinearMatrix } from '../../../ir/fhe/diagonal.js';
import { nextPow2, plainLayout, rotateAndSum, type HelperCost } from './packing.js';

/** A dense matrix with `rows` outputs and `cols` inputs, read through a function (no copy needed). */
export interface MatrixView {
  rows: number;
  cols: number;
  at(row: number, col: number): number;
  /**
   * Cost estimates: the values are not read. Every diagonal with a held entry is taken as nonzero
   * (at() is not called) and its constant only records this source (a weight's location).
   */
  source?: string;
  /**
   * The matrix by reference to its weight (`fhec compile --stream-weights`): at() then says only which
   * entries are held (nonzero structure) and each diagonal's constant records the geometry to build it
   * from the weight where it is used (ir/fhe/diagonal.ts).
   */
  matrix?: LinearMatrix;
}

/** The matrix of ONNX MatMul x[.., k] @ W[k, m]: M[r][c] = W[c][r], W row-major. */
export function matMulWeights(w: ArrayLike<number>, k: number, m: number): MatrixView {
  if (w.length !== k * m) throw new FhecError(`weight has ${w.length} values, expected ${k} x ${m}`);
  return { rows: m, cols: k, at: (r, c) => w[c * m + r]! };
}

export interface MatVecCost {
  rotations: number;
  plainMultiplications: number;
  /** Multiplicative depth of the lowering. */
  depth: number;
  galoisSteps: number[];
  /** Per output block: diagonals D, baby steps B, giant steps G, rotate-and-sum rotations. */
  blocks: { rowStart: number; rows: number; diagonals: number; baby: number; giant: number; sumRotations: number; rotations: number }[];
}

export interface MatVecResult {
  /** One ciphertext per output row block. */
  outputs: { value: FheValue; layout: SlotLayout; rowStart: number; rows: number; garbage: boolean }[];
  cost: MatVecCost;
}

export interface MatVecInput {
  value: FheValue;
  layout: SlotLayout;
  /** First column of M this block holds. */
  colStart: number;
}

/** Splits `cols` columns into input blocks that each fit one ciphertext block of `stride` slots. */
export function columnBlocks(cols: number, stride: number): { colStart: number; cols: number }[] {
  const out: { colStart: number; cols: number }[] = [];
  for (let c = 0; c < cols; c += stride) out.push({ colStart: c, cols: Math.min(stride, cols - c) });
  return out;
}

interface Kernel {
  diagonals: number;
  /** Rows repeat every `rowPeriod` slots in the wide case (0 = no repetition). */
  rowPeriod: number;
  sumCount: number;
  extent: number;
}

function kernelFor(rows: number, period: number): Kernel {
  if (rows >= period) return { diagonals: period, rowPeriod: 0, sumCount: 1, extent: rows };
  const r = nextPow2(rows);
  return { diagonals: r, rowPeriod: r, sumCount: period / r, extent: period };
}

/**
 * Lowers y = M x. `inputs` are the column blocks of x (replicated layouts, same tokens and stride);
 * the output row blocks hold at most `maxRows` rows each (default: what fits the token block).
 */
export function lowerMatVec(b: FheBuilder, m: MatrixView, inputs: MatVecInput[], maxRows?: number): MatVecResult {
  if (inputs.length === 0) throw new FhecError('matrix-vector product without inputs');
  const { tokens, stride } = inputs[0]!.layout;
  for (const inp of inputs) {
    const l = inp.layout;
    if (l.tokens !== tokens || l.stride !== stride) throw new FhecError('input blocks must share tokens and stride');
    if (l.copies * l.period !== l.stride) throw new FhecError('matrix-vector input must be replicated across its token block');
  }
  const covered = inputs.reduce((n, i) => n + i.layout.length, 0);
  if (covered !== m.cols) throw new FhecError(`input blocks hold ${covered} columns, the matrix has ${m.cols}`);
  const slots = b.slots;
  const rowBlock = Math.min(maxRows ?? stride, stride);
  const cost: MatVecCost = { rotations: 0, plainMultiplications: 0, depth: 1, galoisSteps: [], blocks: [] };
  const steps = new Set<number>();
  // Baby steps per input block, shared by every output block (hoisted).
  const babyCache = new Map<string, FheValue>();
  const baby = (j: number, s: number): FheValue => {
    if (s === 0) return inputs[j]!.value;
    const key = `${j}:${s}`;
    let v = babyCache.get(key);
    if (!v) {
      v = b.rotate(inputs[j]!.value, s);
      babyCache.set(key, v);
      cost.rotations++;
      steps.add(s);
    }
    return v;
  };
  const outputs: MatVecResult['outputs'] = [];
  for (let r0 = 0; r0 < m.rows; r0 += rowBlock) {
    const rows = Math.min(rowBlock, m.rows - r0);
    const before = cost.rotations;
    // The kernel is chosen per input block; giant steps need one shared B, so use the largest D.
    const kernels = inputs.map((inp) => kernelFor(rows, inp.layout.period));
    const D = Math.max(...kernels.map((k) => k.diagonals));
    const B = Math.ceil(Math.sqrt(D));
    const G = Math.ceil(D / B);
    for (const [j, k] of kernels.entries()) {
      if (tokens > 1 && k.extent + k.diagonals - 1 > stride) {
        throw new FhecError(`token block of ${stride} slots is too small for a ${rows} x ${inputs[j]!.layout.length} block with ${tokens} tokens`);
      }
    }
    let acc: FheValue | undefined;
    let giantUsed = 0;
    let sumRotations = 0;
    // Wide kernels need rotate-and-sum after the giant steps; group input blocks by their sum count.
    const bySum = new Map<number, number[]>();
    kernels.forEach((k, j) => bySum.set(k.sumCount, [...(bySum.get(k.sumCount) ?? []), j]));
    for (const [sumCount, blocks] of bySum) {
      let part: FheValue | undefined;
      for (let g = 0; g < G; g++) {
        let inner: FheValue | undefined;
        for (const j of blocks) {
          const inp = inputs[j]!;
          const k = kernels[j]!;
          const P = inp.layout.period;
          for (let bb = 0; bb < B; bb++) {
            const i = g * B + bb;
            if (i >= k.diagonals) break;
            if (m.source !== undefined) {
              const term = b.mulConst(baby(j, bb), { kind: 'weights', offset: 0, length: 0, source: m.source }, 'diag');
              cost.plainMultiplications++;
              inner = inner ? b.add(inner, term) : term;
              continue;
            }
            // Pre-rotated right by g*B so the giant rotation puts it back in place.
            const geometry: DiagonalGeometry = { r0, rows, colStart: inp.colStart, length: inp.layout.length, period: P, extent: k.extent, rowPeriod: k.rowPeriod, index: i, shift: g * B, tokens, stride };
            const diag = fillDiagonal(m.at, geometry, slots);
            if (!diag) continue;
            const data: FheConstantData = m.matrix ? { kind: 'diagonal', matrix: m.matrix, geometry } : { kind: 'dense', values: diag };
            const term = b.mulConst(baby(j, bb), data, 'diag');
            cost.plainMultiplications++;
            inner = inner ? b.add(inner, term) : term;
          }
        }
        if (!inner) continue;
        if (g > 0) {
          inner = b.rotate(inner, g * B);
          cost.rotations++;
          steps.add(g * B);
          giantUsed++;
        }
        part = part ? b.add(part, inner) : inner;
      }
      if (!part) continue;
      if (sumCount > 1) {
        const hc: HelperCost = { rotations: 0, galoisSteps: [] };
        part = rotateAndSum(b, part, sumCount, kernels[blocks[0]!]!.rowPeriod, hc);
        cost.rotations += hc.rotations;
        sumRotations += hc.rotations;
        hc.galoisSteps.forEach((s) => steps.add(s));
      }
      acc = acc ? b.add(acc, part) : part;
    }
    if (!acc) {
      // An all-zero block: 0 * x keeps the type and layout.
      acc = b.mulConst(inputs[0]!.value, { kind: 'splat', value: 0 }, 'zero');
    }
    const garbage = kernels.some((k) => k.sumCount > 1);
    outputs.push({ value: acc, layout: plainLayout(rows, tokens, stride), rowStart: r0, rows, garbage });
    cost.blocks.push({ rowStart: r0, rows, diagonals: D, baby: B, giant: giantUsed, sumRotations, rotations: cost.rotations - before });
  }
  cost.galoisSteps = [...steps].sort((a, c) => a - c);
  return { outputs, cost };
}
