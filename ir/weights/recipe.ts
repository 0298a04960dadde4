// Weight recipes: how a weight the compiler reads through lazy views (a transpose, a row scaling, a
// concatenation or selection of columns, a cast) is computed from bytes in ONNX external data files,
// as data. A plan that references its weights (`fhec compile --stream-weights`) stores recipes instead
// of values, and the runtime reads only the rows or columns one matrix block needs.
//
// Loading a recipe gives exactly the values the compiler's lazy view gives on load() (the same casts
// and roundings), so a plan that streams its weights computes what one that stores them computes.

import { byteSize, type DType } from '../dtype.js';
import { FhecError } from '../errors.js';
import { castArray } from '../numeric.js';
import { decodeRaw } from '../raw-bytes.js';
import { readExternal, type ErrorPlace } from '../external-data.js';
import * as path from 'node:path';
import { createHash } from 'node:crypto';

export type WeightRecipe =
  /** `length` bytes at `offset` of `file` (absolute in memory; relative to the plan in a plan file). */
  | { op: 'external'; file: string; offset: number; length: number; dtype: DType; dims: number[]; sha256?: string }
  | { op: 'transpose'; of: WeightRecipe }
  /** Row k times scale[k], rounded to the weight's dtype. */
  | { op: 'scale_rows'; of: WeightRecipe; scale: number[] }
  | { op: 'concat_columns'; parts: WeightRecipe[] }
  | { op: 'select_columns'; of: WeightRecipe; columns: number[] }
  /** Values rounded to `dtype`. */
  | { op: 'cast'; of: WeightRecipe; dtype: DType }
  /** The same row-major values with other dims. */
  | { op: 'reshape'; of: WeightRecipe; dims: number[] };

/** A loaded 2-D block: `rows` x `cols`, row-major. */
export interface WeightBlock {
  rows: number;
  cols: number;
  data: Float64Array;
}

export function recipeDims(r: WeightRecipe): number[] {
  switch (r.op) {
    case 'external': return r.dims;
    case 'transpose': { const d = recipeDims(r.of); return [d[1]!, d[0]!]; }
    case 'scale_rows': case 'cast': return recipeDims(r.of);
    case 'concat_columns': { const d = r.parts.map(recipeDims); return [d[0]![0]!, d.reduce((a, x) => a + x[x.length - 1]!, 0)]; }
    case 'select_columns': { const d = recipeDims(r.of); return [...d.slice(0, -1), r.columns.length]; }
    case 'reshape': return r.dims;
  }
}

export function recipeDtype(r: WeightRecipe): DType {
  switch (r.op) {
    case 'external': case 'cast': return r.dtype;
    case 'concat_columns': return recipeDtype(r.parts[0]!);
    default: return recipeDtype(r.of);
  }
}

/** Every external region a recipe reads. */
export function externalRegions(r: WeightRecipe): Extract<WeightRecipe, { op: 'external' }>[] {
  switch (r.op) {
    case 'external': return [r];
    case 'concat_columns': return r.parts.flatMap(externalRegions);
    default: return externalRegions(r.of);
  }
}

/** The recipe with every external file path mapped (e.g. made relative to a plan, or absolute again). */
export function mapRecipeFiles(r: WeightRecipe, f: (region: Extract<WeightRecipe, { op: 'external' }>) => Partial<Extract<WeightRecipe, { op: 'external' }>>): WeightRecipe {
  switch (r.op) {
    case 'external': return { ...r, ...f(r) };
    case 'concat_columns': return { ...r, parts: r.parts.map((p) => mapRecipeFiles(p, f)) };
    default: return { ...r, of: mapRecipeFiles(r.of, f) } as WeightRecipe;
  }
}

/** Reads a region's bytes (ranges relative to its first byte). */
export interface RegionReader {
  read(region: Extract<WeightRecipe, { op: 'external' }>, ranges: (readonly [number, number])[]): Uint8Array;
}

/** Reads regions from their files directly (the cache adds the digest checks: cache.ts). */
export function fileReader(where: ErrorPlace): RegionReader {
  return {
    read(region, ranges) {
      const ref = { location: region.file, path: region.file, dir: path.dirname(region.file), offset: region.offset, length: region.length };
      return readExternal(ref, where, ranges);
    },
  };
}

/** Regions are hashed in pieces of this size (never held whole). */
const HASH_PIECE_BYTES = 64 * 2 ** 20;

/** The sha256 (hex) of a region's bytes, read in pieces. */
export function regionSha256(region: Extract<WeightRecipe, { op: 'external' }>): string {
  const where = { file: region.file, field: `weight bytes ${region.offset}..${region.offset + region.length}` };
  const ref = { location: region.file, path: region.file, dir: path.dirname(region.file), offset: region.offset, length: region.length };
  const h = createHash('sha256');
  for (let at = 0; at < region.length; at += HASH_PIECE_BYTES) h.update(readExternal(ref, where, [[at, Math.min(region.length, at + HASH_PIECE_BYTES)]]));
  return h.digest('hex');
}

function merge(ranges: [number, number][]): [number, number][] {
  const out: [number, number][] = [];
  for (const r of ranges) {
    const last = out[out.length - 1];
    if (last && last[1] === r[0]) last[1] = r[1];
    else out.push([r[0], r[1]]);
  }
  return out;
}

function two(r: WeightRecipe): [number, number] {
  const d = recipeDims(r);
  if (d.length === 2) return [d[0]!, d[1]!];
  if (d.length === 1) return [1, d[0]!];
  throw new FhecError(`a weight recipe of rank ${d.length} cannot be read by rows or columns`);
}

/** The whole weight as a 2-D block (a rank-1 weight is one row). */
export function loadRecipe(r: WeightRecipe, reader: RegionReader): WeightBlock {
  const [R] = two(r);
  return loadRows(r, Int32Array.from({ length: R }, (_, i) => i), reader);
}

/** The given rows, in order. */
export function loadRows(r: WeightRecipe, rows: Int32Array, reader: RegionReader): WeightBlock {
  const [R, C] = two(r);
  switch (r.op) {
    case 'external': {
      const bs = byteSize(r.dtype);
      const bytes = reader.read(r, merge(Array.from(rows, (k) => [k * C * bs, (k + 1) * C * bs] as [number, number])));
      return { rows: rows.length, cols: C, data: decodeRaw(bytes, r.dtype, rows.length * C) };
    }
    case 'transpose': return transposeBlock(loadColumns(r.of, rows, reader));
    case 'cast': { const b = loadRows(r.of, rows, reader); castArray(b.data, r.dtype); return b; }
    case 'scale_rows': {
      const b = loadRows(r.of, rows, reader);
      rows.forEach((k, i) => { for (let j = 0; j < C; j++) b.data[i * C + j] *= r.scale[k]!; });
      castArray(b.data, recipeDtype(r));
      return b;
    }
    case 'select_columns': {
      const b = loadRows(r.of, rows, reader);
      return selectColumns(b, Int32Array.from(r.columns));
    }
    case 'concat_columns': {
      const parts = r.parts.map((p) => loadRows(p, rows, reader));
      const out = new Float64Array(rows.length * C);
      let off = 0;
      for (const p of parts) {
        for (let i = 0; i < rows.length; i++) out.set(p.data.subarray(i * p.cols, (i + 1) * p.cols), i * C + off);
        off += p.cols;
      }
      return { rows: rows.length, cols: C, data: out };
    }
    case 'reshape': {
      // Rows of the reshaped weight are ranges of the flat values: read the source whole.
      const flat = loadRecipe(r.of, reader).data;
      const out = new Float64Array(rows.length * C);
      rows.forEach((k, i) => out.set(flat.subarray(k * C, (k + 1) * C), i * C));
      if (R * C !== flat.length) throw new FhecError(`a reshape recipe to [${r.dims.join(', ')}] of ${flat.length} values`);
      return { rows: rows.length, cols: C, data: out };
    }
  }
}

/** The given columns, in order (all rows). */
export function loadColumns(r: WeightRecipe, cols: Int32Array, reader: RegionReader): WeightBlock {
  const [R, C] = two(r);
  switch (r.op) {
    case 'external': {
      // Per row, the span from the first to the last column asked for (one read per row).
      let lo = C;
      let hi = 0;
      for (const c of cols) { lo = Math.min(lo, c); hi = Math.max(hi, c + 1); }
      if (cols.length === 0) return { rows: R, cols: 0, data: new Float64Array(0) };
      const bs = byteSize(r.dtype);
      const span = hi - lo;
      const bytes = reader.read(r, merge(Array.from({ length: R }, (_, k) => [(k * C + lo) * bs, (k * C + hi) * bs] as [number, number])));
      const block = { rows: R, cols: span, data: decodeRaw(bytes, r.dtype, R * span) };
      return selectColumns(block, Int32Array.from(cols, (c) => c - lo));
    }
    case 'transpose': return transposeBlock(loadRows(r.of, cols, reader));
    case 'cast': { const b = loadColumns(r.of, cols, reader); castArray(b.data, r.dtype); return b; }
    case 'scale_rows': {
      const b = loadColumns(r.of, cols, reader);
      for (let k = 0; k < R; k++) for (let j = 0; j < cols.length; j++) b.data[k * cols.length + j] *= r.scale[k]!;
      castArray(b.data, recipeDtype(r));
      return b;
    }
    case 'select_columns': return loadColumns(r.of, Int32Array.from(cols, (c) => r.columns[c]!), reader);
    case 'concat_columns': {
      // Each column from its part; parts are read once each, for the columns they hold.
      const widths = r.parts.map((p) => two(p)[1]);
      const starts = widths.map((_, i) => widths.slice(0, i).reduce((a, w) => a + w, 0));
      const out = new Float64Array(R * cols.length);
      r.parts.forEach((p, pi) => {
        const mine: number[] = [];
        cols.forEach((c, j) => { if (c >= starts[pi]! && c < starts[pi]! + widths[pi]!) mine.push(j); });
        if (mine.length === 0) return;
        const b = loadColumns(p, Int32Array.from(mine, (j) => cols[j]! - starts[pi]!), reader);
        for (let k = 0; k < R; k++) mine.forEach((j, m) => { out[k * cols.length + j] = b.data[k * b.cols + m]!; });
      });
      return { rows: R, cols: cols.length, data: out };
    }
    case 'reshape': return selectColumns(loadRecipe(r, reader), cols);
  }
}

function selectColumns(b: WeightBlock, cols: Int32Array): WeightBlock {
  const out = new Float64Array(b.rows * cols.length);
  for (let k = 0; k < b.rows; k++) for (let j = 0; j < cols.length; j++) out[k * cols.length + j] = b.data[k * b.cols + cols[j]!]!;
  return { rows: b.rows, cols: cols.length, data: out };
}

function transposeBlock(b: WeightBlock): WeightBlock {
  const out = new Float64Array(b.rows * b.cols);
  for (let r = 0; r < b.rows; r++) for (let c = 0; c < b.cols; c++) out[c * b.rows + r] = b.data[r * b.cols + c]!;
  return { rows: b.cols, cols: b.rows, data: out };
}
