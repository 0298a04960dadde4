// Diagonals of a matrix-vector product, built from a matrix and the product's geometry. The lowering
// (passes/fhe/layout/matvec.ts) and the runtime of a plan that streams its weights build them here, so
// a diagonal the runtime builds from the weights on disk is the one the compiler would have stored.
//
// The matrix of one linear block is the weight read through two index maps: input column c of the
// product is weight row rowOf(c), product row r is weight column columns(r); -1 (outside a run) is a
// zero (padding). Maps are runs [start, first, count]: index start + j maps to first + j.

import { createHash } from 'node:crypto';
import { FhecError } from '../errors.js';
import { weightCache } from '../weights/cache.js';
import { loadColumns, recipeDims, type WeightRecipe } from '../weights/recipe.js';

export type IndexRuns = [number, number, number][];

/** The matrix of one linear block, by reference to its weight. */
export interface MatrixSource {
  weight: WeightRecipe;
  /** Product input column -> weight row. */
  rowOf: IndexRuns;
  /** Product row -> weight column. */
  columns: IndexRuns;
  rows: number;
  cols: number;
}

/** A matrix of a program: `source` is absent in a program parsed from text until its plan binds it. */
export interface LinearMatrix {
  id: number;
  source?: MatrixSource;
}

/** Where diagonal `index` of one (output block, input block) pair of a BSGS product sits in the slots. */
export interface DiagonalGeometry {
  /** First product row of the output block, and its rows. */
  r0: number;
  rows: number;
  /** First product column of the input block, its length and replication period. */
  colStart: number;
  length: number;
  period: number;
  /** Slots per token the diagonal covers, and the row period of a wide kernel (0: none). */
  extent: number;
  rowPeriod: number;
  index: number;
  /** Pre-rotation (right) by the giant step. */
  shift: number;
  tokens: number;
  stride: number;
}

export const GEOMETRY_FIELDS = ['r0', 'rows', 'colStart', 'length', 'period', 'extent', 'rowPeriod', 'index', 'shift', 'tokens', 'stride'] as const;

/**
 * diag[t * stride + u + shift] = M[r0 + row(u)][colStart + (u + index) mod period], for each token t and
 * u < extent (rows repeat every rowPeriod in a wide kernel). Undefined when every entry is zero.
 */
export function fillDiagonal(at: (row: number, col: number) => number, g: DiagonalGeometry, slots: number): Float64Array | undefined {
  const diag = new Float64Array(slots);
  let nonzero = false;
  for (let t = 0; t < g.tokens; t++) {
    for (let u = 0; u < g.extent; u++) {
      const row = g.rowPeriod ? u % g.rowPeriod : u;
      const col = (u + g.index) % g.period;
      if (row >= g.rows || col >= g.length) continue;
      const v = at(g.r0 + row, g.colStart + col);
      if (v === 0) continue;
      diag[(((t * g.stride + u + g.shift) % slots) + slots) % slots] = v;
      nonzero = true;
    }
  }
  return nonzero ? diag : undefined;
}

export function runsOf(map: ArrayLike<number>): IndexRuns {
  const runs: IndexRuns = [];
  for (let i = 0; i < map.length; i++) {
    const v = map[i]!;
    if (v < 0) continue;
    const last = runs[runs.length - 1];
    if (last && last[0] + last[2] === i && last[1] + last[2] === v) last[2]++;
    else runs.push([i, v, 1]);
  }
  return runs;
}

export function expandRuns(runs: IndexRuns, length: number): Int32Array {
  const out = new Int32Array(length).fill(-1);
  for (const [start, first, count] of runs) {
    if (start < 0 || count < 0 || start + count > length) throw new FhecError(`index run [${start}, ${first}, ${count}] outside ${length} entries`);
    for (let j = 0; j < count; j++) out[start + j] = first + j;
  }
  return out;
}

interface Resolved {
  /** The block's cache key (weight and columns read), and the whole source's (with the index maps). */
  key: string;
  sourceKey: string;
  rowIdx: Int32Array;
  /** Product row -> column of the loaded block. */
  colIdx: Int32Array;
  used: Int32Array;
}

const resolved = new WeakMap<MatrixSource, Resolved>();

function resolve(s: MatrixSource): Resolved {
  let r = resolved.get(s);
  if (!r) {
    const [K, N] = recipeDims(s.weight);
    const rowIdx = expandRuns(s.rowOf, s.cols);
    const cols = expandRuns(s.columns, s.rows);
    for (const k of rowIdx) if (k >= K!) throw new FhecError(`matrix row map reaches weight row ${k} of ${K}`);
    const used = Int32Array.from(new Set(Array.from(cols).filter((n) => n >= 0))).sort();
    for (const n of used) if (n >= N!) throw new FhecError(`matrix column map reaches weight column ${n} of ${N}`);
    const pos = new Map(Array.from(used, (n, i) => [n, i]));
    const colIdx = Int32Array.from(cols, (n) => (n >= 0 ? pos.get(n)! : -1));
    const key = createHash('sha256').update(JSON.stringify([s.weight, Array.from(used)])).digest('base64');
    r = { key, sourceKey: `${key}:${JSON.stringify([s.rowOf, s.columns, s.rows, s.cols])}`, rowIdx, colIdx, used };
    resolved.set(s, r);
  }
  return r;
}

/** A key for the diagonal's content: the weight (with its regions' digests), the maps and the geometry. */
export function diagonalKey(matrix: LinearMatrix, g: DiagonalGeometry): string {
  return `diag:${resolve(boundSource(matrix)).sourceKey}:${GEOMETRY_FIELDS.map((f) => g[f]).join(',')}`;
}

function boundSource(matrix: LinearMatrix): MatrixSource {
  if (!matrix.source) throw new FhecError(`matrix m${matrix.id} is not bound to its weights (load the program from its plan)`);
  return matrix.source;
}

/** The product matrix's entry reader, with the weight block read through this thread's cache. */
export function matrixReader(matrix: LinearMatrix): (row: number, col: number) => number {
  const s = boundSource(matrix);
  const r = resolve(s);
  const block = weightCache.get(r.key, (reader) => loadColumns(s.weight, r.used, reader));
  const n = r.used.length;
  return (row, col) => {
    const k = r.rowIdx[col]!;
    const j = r.colIdx[row]!;
    return k >= 0 && j >= 0 ? block.data[k * n + j]! : 0;
  };
}

/** The slot values of a diagonal constant (all zero when its entries are). */
export function diagonalSlots(matrix: LinearMatrix, g: DiagonalGeometry, slots: number): Float64Array {
  return fillDiagonal(matrixReader(matrix), g, slots) ?? new Float64Array(slots);
}
