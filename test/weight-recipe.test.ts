// Weight recipes (ir/weights/recipe.ts) read only the rows or columns asked for, and give exactly what
// the compiler's lazy views give: checked against the views themselves on an fp16 external data file.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { LazyTensor } from '../ir/graph/types.js';
import { Tensor } from '../ir/tensor.js';
import { encodeRaw } from '../ir/raw-bytes.js';
import { castArray } from '../ir/numeric.js';
import { fileReader, loadColumns, loadRecipe, loadRows, type RegionReader, type WeightRecipe } from '../ir/weights/recipe.js';
import { FheBuilder } from '../ir/fhe/builder.js';
import { printFhe } from '../ir/fhe/print.js';
import { parseFhe } from '../ir/fhe/parse.js';
import { constantSlots } from '../ir/fhe/layout.js';
import { runsOf } from '../ir/fhe/diagonal.js';
import { lowerMatVec } from '../passes/fhe/layout/matvec.js';
import { replicatedLayout } from '../passes/fhe/layout/packing.js';
import { ColumnConcatTensor, ColumnSelectTensor, RowScaledTensor, TransposedTensor } from '../passes/canonical/lazy.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-recipe-'));

/** An fp16 [K, N] weight at `offset` of a data file, as a lazy tensor with a recipe. */
function externalWeight(file: string, offset: number, K: number, N: number, seed: number): LazyTensor {
  const values = castArray(Float64Array.from({ length: K * N }, (_, i) => Math.sin(seed * 1000 + i * 0.37) * 3), 'float16');
  const bytes = encodeRaw(values, 'float16');
  const old = fs.existsSync(file) ? fs.readFileSync(file) : Buffer.alloc(0);
  const out = Buffer.alloc(Math.max(old.length, offset + bytes.length));
  old.copy(out);
  Buffer.from(bytes).copy(out, offset);
  fs.writeFileSync(file, out);
  const recipe: WeightRecipe = { op: 'external', file, offset, length: bytes.length, dtype: 'float16', dims: [K, N] };
  return { dtype: 'float16', dims: [K, N], location: 'test', byteLength: bytes.length, load: () => new Tensor('float16', [K, N], Float64Array.from(values)), recipe: () => recipe };
}

/** A reader that counts the bytes it reads. */
function counting(): RegionReader & { bytes: number } {
  const base = fileReader({ file: 'test', field: 'test' });
  const r = { bytes: 0, read: (region: Parameters<RegionReader['read']>[0], ranges: (readonly [number, number])[]) => {
    const b = base.read(region, ranges);
    r.bytes += b.length;
    return b;
  } };
  return r;
}

describe('weight recipes', () => {
  const file = path.join(tmp, 'w.data');
  const a = externalWeight(file, 0, 6, 10, 1);
  const b = externalWeight(file, 256, 6, 4, 2);
  const views: [string, LazyTensor][] = [
    ['external', a],
    ['transpose', new TransposedTensor(a)],
    ['scale_rows', new RowScaledTensor(a, Float64Array.from([1, 0.5, 2, -1, 3, 0.25]))],
    ['concat_columns', new ColumnConcatTensor([a, b])],
    ['select_columns', new ColumnSelectTensor(new ColumnConcatTensor([a, b]), [13, 0, 7, 11])],
    ['transpose of scale_rows', new TransposedTensor(new RowScaledTensor(a, Float64Array.from([1, 0.5, 2, -1, 3, 0.25])))],
  ];
  for (const [name, view] of views) {
    it(`${name}: the whole weight, any rows and any columns equal the lazy view's values`, () => {
      const want = view.load();
      const [R, C] = want.dims as [number, number];
      const recipe = view.recipe!()!;
      expect(recipe).toBeDefined();
      const reader = fileReader({ file, field: 'test' });
      expect(Array.from(loadRecipe(recipe, reader).data)).toEqual(Array.from(want.data));
      const rows = Int32Array.from([R - 1, 0, Math.floor(R / 2)]);
      const byRows = loadRows(recipe, rows, reader);
      rows.forEach((r, i) => expect(Array.from(byRows.data.subarray(i * C, (i + 1) * C))).toEqual(Array.from(want.data.subarray(r * C, (r + 1) * C))));
      const cols = Int32Array.from([C - 1, 1, 0]);
      const byCols = loadColumns(recipe, cols, reader);
      for (let r = 0; r < R; r++) cols.forEach((c, j) => expect(byCols.data[r * cols.length + j]).toBe(want.data[r * C + c]));
    });
  }

  it('columns of a transposed weight read only those rows of the file (a tied lm_head block)', () => {
    const reader = counting();
    const t = new TransposedTensor(a).recipe!()!;
    loadColumns(t, Int32Array.from([2, 3]), reader);
    // Two rows of 10 fp16 values, not the 6 x 10 weight.
    expect(reader.bytes).toBe(2 * 10 * 2);
  });
});

describe('diagonal constants', () => {
  it('a product over a referenced matrix prints its diagonals as `diagonal ID [geometry]`, parses back unbound, and builds the stored values', () => {
    const file = path.join(tmp, 'mv.data');
    const w = externalWeight(file, 0, 3, 4, 5); // W [K=3, N=4]: y = x @ W, matrix M[r][c] = W[c][r]
    const W = w.load().data;
    const layout = replicatedLayout(3, 16);
    const build = (refer: boolean) => {
      const b = new FheBuilder('mv', 16);
      const x = b.input('x', layout);
      const matrix = refer ? b.matrix({ weight: w.recipe!()!, rowOf: runsOf([0, 1, 2]), columns: runsOf([0, 1, 2, 3]), rows: 4, cols: 3 }) : undefined;
      const view = { rows: 4, cols: 3, at: (r: number, c: number) => (refer ? 1 : W[c * 4 + r]!), ...(matrix ? { matrix } : {}) };
      const y = lowerMatVec(b, view, [{ value: x, layout, colStart: 0 }]).outputs[0]!;
      b.output('y', y.value, y.layout);
      return b.build();
    };
    const [stored, referenced] = [build(false), build(true)];
    const text = printFhe(referenced);
    expect(text).toContain('const @diag = diagonal 0 [0, 4, 0, 3, 4, 4, 0, 0, 0, 1, 16]');
    expect(text).toContain('const @diag0 = diagonal 0 [0, 4, 0, 3, 4, 4, 0, 1, 0, 1, 16]');
    const parsed = parseFhe(text);
    expect(printFhe(parsed)).toBe(text);
    const d = parsed.constants.get('diag0')!.data;
    expect(d.kind === 'diagonal' && d.matrix.source).toBeUndefined();
    expect(() => constantSlots(d, 16, 'diag0')).toThrow(/matrix m0 is not bound to its weights/);
    for (const c of referenced.constants.values()) {
      if (c.data.kind !== 'diagonal') continue;
      expect(Array.from(constantSlots(c.data, 16, c.name))).toEqual(Array.from(constantSlots(stored.constants.get(c.name)!.data, 16, c.name)));
    }
  });
});
