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
// - replicated output (lowerMatVecReplicated): every slot written computes a row (row u mod R, R =
//   nextPow2(rows)). When the token block is the whole ciphertext, y comes out replicated with no
//   doubling rotations, and a wide matrix needs only R diagonals plus log2(P/R) rotate-and-sum
//   rotations; with several tokens, the first E slots of each block are written and the rest doubled.
// Baby steps (rotations of an input by b) are made once per program and input: Q, K and V (and gate
// and up) read the same x, so they share them.

import { FhecError } from '../../../ir/errors.js';
import type { FheBuilder } from '../../../ir/fhe/builder.js';
import type { FheConstantData, FheValue, SlotLayout } from '../../../ir/fhe/types.js';
import { fillDiagonal, type DiagonalGeometry, type LinearMatrix } from '../../../ir/fhe/diagonal.js';
import { nextPow2, plainLayout, replicate, replicatedLayout, rotateAndSum, type HelperCost } from './packing.js';

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
  const baby = babySteps(b, inputs, cost, steps);
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
      const diagonal = (j: number, i: number, shift: number) => {
        const inp = inputs[j]!;
        const k = kernels[j]!;
        return diagonalConstant(m, { r0, rows, colStart: inp.colStart, length: inp.layout.length, period: inp.layout.period, extent: k.extent, rowPeriod: k.rowPeriod, index: i, shift, tokens, stride }, slots);
      };
      const group = bsgsGroup(b, blocks, (j) => kernels[j]!.diagonals, B, G, baby, diagonal, { count: sumCount, spacing: kernels[blocks[0]!]!.rowPeriod }, cost, steps);
      giantUsed += group.giant;
      sumRotations += group.sumRotations;
      const part = group.part;
      if (!part) continue;
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

/** Rotations of each value by each step, per program (builder): made once, whoever asks. */
const babyCaches = new WeakMap<FheBuilder, Map<string, Map<number, FheValue>>>();

function babyCacheOf(b: FheBuilder, value: FheValue): Map<number, FheValue> {
  let perBuilder = babyCaches.get(b);
  if (!perBuilder) babyCaches.set(b, (perBuilder = new Map()));
  let c = perBuilder.get(value.name);
  if (!c) perBuilder.set(value.name, (c = new Map()));
  return c;
}

/** baby(j, s): input block j rotated by s, from the program's cache (counted in `cost` when made). */
function babySteps(b: FheBuilder, inputs: MatVecInput[], cost: { rotations: number }, steps: Set<number>): (j: number, s: number) => FheValue {
  const caches = inputs.map((inp) => babyCacheOf(b, inp.value));
  return (j, s) => {
    if (s === 0) return inputs[j]!.value;
    let v = caches[j]!.get(s);
    if (!v) {
      v = b.rotate(inputs[j]!.value, s);
      caches[j]!.set(s, v);
      cost.rotations++;
      steps.add(s);
    }
    return v;
  };
}

/**
 * Baby steps B for D diagonals over these inputs: fewest new rotations, counting the baby steps the
 * program already made (a product after Q reuses Q's), then the giant steps ceil(D/B) - 1.
 */
function babyCount(b: FheBuilder, inputs: MatVecInput[], diagonals: number): number {
  const caches = inputs.map((inp) => babyCacheOf(b, inp.value));
  let best = Math.ceil(Math.sqrt(diagonals));
  let bestCost = Infinity;
  // made: baby steps 1..B-1 not yet made, over the inputs (grows by one step per B).
  let made = 0;
  for (let B = 1; B <= diagonals; B++) {
    if (B > 1) for (const c of caches) if (!c.has(B - 1)) made++;
    const c = made + Math.ceil(diagonals / B) - 1;
    if (c < bestCost) [best, bestCost] = [B, c];
  }
  return best;
}

/**
 * Slots of each token block a replicated-output product writes directly (a multiple of R = nextPow2(rows)):
 * the whole ciphertext for one token in it (rotations are cyclic); else the largest R 2^k with
 * E + P - 1 <= stride, so that no rotation reads the next token's block (P the widest input period).
 * 0 when not even R fits.
 */
export function replicatedExtent(slots: number, tokens: number, stride: number, rows: number, maxPeriod: number): number {
  const R = nextPow2(rows);
  if (tokens === 1 && stride === slots) return R <= slots ? slots : 0;
  if (R + maxPeriod - 1 > stride) return 0;
  let E = R;
  while (2 * E + maxPeriod - 1 <= stride) E *= 2;
  return E;
}

/**
 * y = M x replicated with period R = nextPow2(m.rows) across each token block. Slot u of a block computes
 * row u mod R: with diag_i[u] = M[u mod R][(u + i) mod P], z = sum_{i<D} diag_i * rot(x, i) holds at u the
 * partial sum over columns (u + i) mod P, i < D.
 * - One token in the whole ciphertext (rotations cyclic): every slot is written. D = P when R >= P (z is
 *   y); else D = R and y[u] = sum_{k<P/R} z[u + k R] (rotate-and-sum with spacing R: the k-th term covers
 *   the columns (u + kR + i) mod P, all P of them once, and u + kR is the same row). No doubling
 *   rotations, and R diagonals for a wide matrix instead of P padded rows.
 * - Several tokens: D = P, the first E slots of each block are written (replicatedExtent), and the rest of
 *   the block is filled by log2(stride / E) doublings instead of log2(stride / R).
 * One level, like lowerMatVec.
 */
export function lowerMatVecReplicated(b: FheBuilder, m: MatrixView, inputs: MatVecInput[]): { value: FheValue; layout: SlotLayout; cost: MatVecCost } {
  if (inputs.length === 0) throw new FhecError('matrix-vector product without inputs');
  const slots = b.slots;
  const { tokens, stride } = inputs[0]!.layout;
  for (const inp of inputs) {
    const l = inp.layout;
    if (l.tokens !== tokens || l.stride !== stride) throw new FhecError('input blocks must share tokens and stride');
    if (l.copies * l.period !== stride) throw new FhecError('matrix-vector input must be replicated across its token block');
  }
  const covered = inputs.reduce((n, i) => n + i.layout.length, 0);
  if (covered !== m.cols) throw new FhecError(`input blocks hold ${covered} columns, the matrix has ${m.cols}`);
  const R = nextPow2(m.rows);
  const E = replicatedExtent(slots, tokens, stride, m.rows, Math.max(...inputs.map((i) => i.layout.period)));
  if (E === 0) throw new FhecError(`token block of ${stride} slots is too small for ${m.rows} replicated rows of ${m.cols}-wide input blocks with ${tokens} tokens`);
  const cyclic = E === slots;
  const cost: MatVecCost = { rotations: 0, plainMultiplications: 0, depth: 1, galoisSteps: [], blocks: [] };
  const steps = new Set<number>();
  const baby = babySteps(b, inputs, cost, steps);
  // Diagonals per input block, and input blocks grouped by their rotate-and-sum count P/D (1 when R >= P).
  const diagonalsOf = (P: number) => (cyclic ? Math.min(P, R) : P);
  const sumOf = (P: number) => P / diagonalsOf(P);
  const bySum = new Map<number, number[]>();
  inputs.forEach((inp, j) => bySum.set(sumOf(inp.layout.period), [...(bySum.get(sumOf(inp.layout.period)) ?? []), j]));
  let acc: FheValue | undefined;
  let giantUsed = 0;
  let sumRotations = 0;
  let D = 0;
  let B = 0;
  for (const [sumCount, blocks] of bySum) {
    D = Math.max(...blocks.map((j) => diagonalsOf(inputs[j]!.layout.period)));
    B = babyCount(b, blocks.map((j) => inputs[j]!), D);
    const G = Math.ceil(D / B);
    const diagonal = (j: number, i: number, shift: number) => {
      const inp = inputs[j]!;
      return diagonalConstant(m, { r0: 0, rows: m.rows, colStart: inp.colStart, length: inp.layout.length, period: inp.layout.period, extent: E, rowPeriod: R, index: i, shift, tokens, stride }, slots);
    };
    const group = bsgsGroup(b, blocks, (j) => diagonalsOf(inputs[j]!.layout.period), B, G, baby, diagonal, { count: sumCount, spacing: R }, cost, steps);
    giantUsed += group.giant;
    sumRotations += group.sumRotations;
    const part = group.part;
    if (!part) continue;
    acc = acc ? b.add(acc, part) : part;
  }
  // An all-zero matrix: 0 * x keeps the type.
  acc ??= b.mulConst(inputs[0]!.value, { kind: 'splat', value: 0 }, 'zero');
  if (E < stride) {
    // The block's slots past E are zero (the diagonals are): fill them by doubling.
    const hc: HelperCost = { rotations: 0, galoisSteps: [] };
    acc = replicate(b, acc, E, stride / E, hc);
    cost.rotations += hc.rotations;
    hc.galoisSteps.forEach((s) => steps.add(s));
  }
  cost.blocks.push({ rowStart: 0, rows: m.rows, diagonals: D, baby: B, giant: giantUsed, sumRotations, rotations: cost.rotations });
  cost.galoisSteps = [...steps].sort((a, c) => a - c);
  return { value: acc, layout: replicatedLayout(m.rows, slots, tokens, stride), cost };
}

/** The constant of one diagonal (undefined when all zero): by weight location, by reference, or dense. */
function diagonalConstant(m: MatrixView, geometry: DiagonalGeometry, slots: number): FheConstantData | undefined {
  if (m.source !== undefined) return { kind: 'weights', offset: 0, length: 0, source: m.source };
  const diag = fillDiagonal(m.at, geometry, slots);
  if (!diag) return undefined;
  return m.matrix ? { kind: 'diagonal', matrix: m.matrix, geometry } : { kind: 'dense', values: diag };
}

/**
 * The baby-step giant-step sum over a group of input blocks (one shared B):
 *   sum_g rot( sum_{j, b} diagonal(j, gB + b, gB) * baby(j, b), gB ),
 * each diagonal pre-rotated right by gB so the giant rotation puts it back in place (blocks j with
 * fewer diagonals stop early; an all-zero diagonal is skipped), then `sum.count` groups `sum.spacing`
 * slots apart added by rotate-and-sum (count 1: none).
 */
function bsgsGroup(
  b: FheBuilder,
  blocks: number[],
  diagonals: (j: number) => number,
  B: number,
  G: number,
  baby: (j: number, s: number) => FheValue,
  diagonal: (j: number, i: number, shift: number) => FheConstantData | undefined,
  sum: { count: number; spacing: number },
  cost: MatVecCost,
  steps: Set<number>,
): { part: FheValue | undefined; giant: number; sumRotations: number } {
  let part: FheValue | undefined;
  let giant = 0;
  for (let g = 0; g < G; g++) {
    let inner: FheValue | undefined;
    for (const j of blocks) {
      for (let bb = 0; bb < B; bb++) {
        const i = g * B + bb;
        if (i >= diagonals(j)) break;
        const data = diagonal(j, i, g * B);
        if (!data) continue;
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
      giant++;
    }
    part = part ? b.add(part, inner) : inner;
  }
  if (!part || sum.count === 1) return { part, giant, sumRotations: 0 };
  const hc: HelperCost = { rotations: 0, galoisSteps: [] };
  part = rotateAndSum(b, part, sum.count, sum.spacing, hc);
  cost.rotations += hc.rotations;
  hc.galoisSteps.forEach((s) => steps.add(s));
  return { part, giant, sumRotations: hc.rotations };
}
