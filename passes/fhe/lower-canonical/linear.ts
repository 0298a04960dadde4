// `linear` (y = x @ W + b) on an Activation, by the BSGS diagonal method (passes/fhe/layout/matvec.ts).
// Each output column range (a part of a merged projection, or a block of a wide output) is one
// matrix-vector product. A result to be replicated is written replicated by the product itself where
// the token block has room (lowerMatVecReplicated: all of it for one token in the whole ciphertext,
// else the first E slots of each block, then doubling). Otherwise the row count is padded to at least
// the input period, so the product is "tall" (no partial-sum garbage) and its result is zero past its
// rows: it can be replicated by doubling with no masking level. One level per linear.

import { FhecError } from '../../../ir/errors.js';
import type { FheBuilder } from '../../../ir/fhe/builder.js';
import type { Tensor } from '../../../ir/tensor.js';
import type { FheValue, SlotLayout } from '../../../ir/fhe/types.js';
import { runsOf, type LinearMatrix } from '../../../ir/fhe/diagonal.js';
import type { WeightRecipe } from '../../../ir/weights/recipe.js';
import { lowerMatVec, lowerMatVecReplicated, replicatedExtent, type MatrixView } from '../layout/matvec.js';
import { nextPow2, plainLayout } from '../layout/packing.js';
import { groupsOf, replicateBlock, tensorColumn, tensorWidth, type ActBlock, type Activation } from './activation.js';

/** A weight known by its dims only (cost estimates): every product diagonal is taken as nonzero. */
export interface WeightShape {
  dims: readonly number[];
  /** Where its values live (e.g. `external:model.onnx.data@1024+4096`), recorded on the constants. */
  location: string;
}

/** A weight by reference to its bytes (`fhec compile --stream-weights`): diagonals are built where used. */
export interface WeightReference {
  dims: readonly number[];
  recipe: WeightRecipe;
}

export interface LinearStats {
  rotations: number;
  plainMultiplications: number;
}

export interface LinearOptions {
  /** Replicate the result (needed by any consumer except a program output). */
  replicate: boolean;
  /** Largest output block; default: what fits the token block. */
  maxBlock?: number;
  /** First weight column of the part these columns belong to (its column 0); default 0. */
  partStart?: number;
}

/** Largest power-of-two output block whose padded product fits a token block of `stride` slots. */
export function maxOutputBlock(slots: number, stride: number, inputPeriod: number): number {
  // One token in the whole ciphertext: rotations wrap within the token.
  if (stride === slots) return stride;
  let c = 1;
  while (Math.max(nextPow2(2 * c), inputPeriod) + inputPeriod - 1 <= stride) c *= 2;
  if (Math.max(c, inputPeriod) + inputPeriod - 1 > stride) {
    throw new FhecError(`token block of ${stride} slots is too small for a product with ${inputPeriod}-wide input blocks`);
  }
  return c;
}

/**
 * The given columns of x @ W (+ bias), in that order (a part of a merged projection, possibly with
 * GQA heads repeated and heads padded: column -1 is a zero output), cut into output blocks. W is
 * [K, N] row-major (MatMul layout), K = x's tensor width; x's padding channels meet zero weights.
 * The result's `columns` are `columns` (when they are not 0..n-1).
 */
export function lowerLinearColumns(
  b: FheBuilder,
  x: Activation,
  weight: Tensor | WeightShape | WeightReference,
  bias: Tensor | undefined,
  columns: readonly number[],
  opts: LinearOptions,
  stats: LinearStats,
): Activation {
  const [K, N] = [weight.dims[0]!, weight.dims[1]!];
  if (columns.some((c) => c < -1 || c >= N)) throw new FhecError(`linear column outside the weight's ${N} columns`);
  if (weight.dims.length !== 2 || K !== tensorWidth(x)) throw new FhecError(`linear weight ${JSON.stringify(weight.dims)} does not match input width ${tensorWidth(x)}`);
  const rowOf = Int32Array.from({ length: x.length }, (_, i) => tensorColumn(x, i));
  const w = 'data' in weight ? weight.data : undefined;
  const source = 'location' in weight ? weight.location : undefined;
  const recipe = 'recipe' in weight ? weight.recipe : undefined;
  // One matrix per output block, shared by the token groups (same rows, same input columns).
  const matrices = new Map<string, LinearMatrix>();
  const matrixFor = (r0: number, rows: number, padded: number): LinearMatrix | undefined => {
    if (!recipe) return undefined;
    const key = `${r0}:${rows}:${padded}`;
    let mx = matrices.get(key);
    if (!mx) {
      const cols = Int32Array.from({ length: padded }, (_, r) => (r < rows ? columns[r0 + r]! : -1));
      mx = b.matrix({ weight: recipe, rowOf: runsOf(rowOf), columns: runsOf(cols), rows: padded, cols: x.length });
      matrices.set(key, mx);
    }
    return mx;
  };
  const inPeriod = Math.max(...x.blocks.map((blk) => blk.layout.period));
  const blocks: ActBlock[] = [];
  // Token groups are independent products with the same diagonals.
  for (const grp of groupsOf(x)) {
    const xb = x.blocks.filter((blk) => blk.tokenStart === grp.tokenStart);
    const stride = xb[0]!.layout.stride;
    const maxBlock = Math.min(opts.maxBlock ?? Infinity, maxOutputBlock(b.slots, stride, inPeriod));
    for (let r0 = 0; r0 < columns.length; r0 += maxBlock) {
      const rows = Math.min(maxBlock, columns.length - r0);
      // A replicated result is written by the product itself where the token block has room
      // (matvec.ts: lowerMatVecReplicated; all of it for one token in the whole ciphertext).
      if (opts.replicate && replicatedExtent(b.slots, grp.tokens, stride, rows, inPeriod) > 0) {
        const view: MatrixView = {
          rows,
          cols: x.length,
          at: (r, c) => {
            const [k, n] = [rowOf[c]!, columns[r0 + r]!];
            return k >= 0 && n >= 0 ? (w ? w[k * N + n]! : 1) : 0;
          },
          ...(source !== undefined ? { source } : {}),
          ...(recipe ? { matrix: matrixFor(r0, rows, rows)! } : {}),
        };
        const res = lowerMatVecReplicated(b, view, xb.map((blk) => ({ value: blk.value, layout: blk.layout, colStart: blk.colStart })));
        stats.rotations += res.cost.rotations;
        stats.plainMultiplications += res.cost.plainMultiplications;
        blocks.push({ value: addBias(b, res.value, res.layout, bias, columns, r0, rows, grp.tokens, stride), layout: res.layout, colStart: r0, tokenStart: grp.tokenStart });
        continue;
      }
      const padded = Math.max(nextPow2(rows), inPeriod);
      const view: MatrixView = {
        rows: padded,
        cols: x.length,
        at: (r, c) => {
          const [k, n] = [rowOf[c]!, r < rows ? columns[r0 + r]! : -1];
          return k >= 0 && n >= 0 ? (w ? w[k * N + n]! : 1) : 0;
        },
        ...(source !== undefined ? { source } : {}),
        ...(recipe ? { matrix: matrixFor(r0, rows, padded)! } : {}),
      };
      const res = lowerMatVec(b, view, xb.map((blk) => ({ value: blk.value, layout: blk.layout, colStart: blk.colStart })), padded);
      if (res.outputs.length !== 1 || res.outputs[0]!.garbage) throw new Error('internal: padded product must be one tall block');
      stats.rotations += res.cost.rotations;
      stats.plainMultiplications += res.cost.plainMultiplications;
      let value = res.outputs[0]!.value;
      let layout = plainLayout(rows, grp.tokens, stride);
      if (opts.replicate) ({ value, layout } = replicateBlock(b, value, rows, grp.tokens, stride, stats));
      blocks.push({ value: addBias(b, value, layout, bias, columns, r0, rows, grp.tokens, stride), layout, colStart: r0, tokenStart: grp.tokenStart });
    }
  }
  const base = opts.partStart ?? 0;
  const held = columns.map((c) => (c < 0 ? -1 : c - base));
  const identity = held.every((c, i) => c === i);
  return { tokens: x.tokens, length: columns.length, blocks, ...(identity ? {} : { columns: held }) };
}

/** The bias of output columns r0..r0+rows-1 added in the result's layout (every copy of every token). */
function addBias(b: FheBuilder, value: FheValue, layout: SlotLayout, bias: Tensor | undefined, columns: readonly number[], r0: number, rows: number, tokens: number, stride: number): FheValue {
  if (!bias) return value;
  const v = new Float64Array(b.slots);
  for (let t = 0; t < tokens; t++) {
    for (let k = 0; k < layout.copies; k++) {
      for (let j = 0; j < rows; j++) {
        const n = columns[r0 + j]!;
        if (n >= 0) v[t * stride + k * layout.period + j] = bias.data[n]!;
      }
    }
  }
  return b.addConst(value, { kind: 'dense', values: v }, 'bias');
}
