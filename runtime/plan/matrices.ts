// The `matrices` table of a plan that streams its weights (`fhec compile --stream-weights`): for each
// matrix its program's `diagonal` constants refer to, the weight recipe (ir/weights/recipe.ts) with
// data files relative to the plan and each region's sha256, and the two index maps. Writing hashes
// every region once (reading it in pieces); loading binds the program's matrices to the table and
// checks its structure. The bytes are read, and checked against the digests, when first used.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { ALL_DTYPES, byteSize } from '../../ir/dtype.js';
import { FhecError } from '../../ir/errors.js';
import { expandRuns, type DiagonalGeometry, type MatrixSource } from '../../ir/fhe/diagonal.js';
import type { FheProgram } from '../../ir/fhe/types.js';
import { externalRegions, mapRecipeFiles, recipeDims, regionSha256, type WeightRecipe } from '../../ir/weights/recipe.js';
import { malformed, nonNegInt, posInt, sha256 } from './validate.js';

const recipeSchema: z.ZodType<WeightRecipe> = z.lazy(() =>
  z.discriminatedUnion('op', [
    z.strictObject({
      op: z.literal('external'),
      file: z.string().min(1),
      offset: nonNegInt(),
      length: nonNegInt(),
      dtype: z.enum(ALL_DTYPES as [string, ...string[]]),
      dims: z.array(nonNegInt()),
      sha256: sha256(),
    }),
    z.strictObject({ op: z.literal('transpose'), of: recipeSchema }),
    z.strictObject({ op: z.literal('scale_rows'), of: recipeSchema, scale: z.array(z.number()) }),
    z.strictObject({ op: z.literal('concat_columns'), parts: z.array(recipeSchema).min(1) }),
    z.strictObject({ op: z.literal('select_columns'), of: recipeSchema, columns: z.array(nonNegInt()) }),
    z.strictObject({ op: z.literal('cast'), of: recipeSchema, dtype: z.enum(ALL_DTYPES as [string, ...string[]]) }),
    z.strictObject({ op: z.literal('reshape'), of: recipeSchema, dims: z.array(nonNegInt()) }),
  ]),
) as z.ZodType<WeightRecipe>;

const runs = z.array(z.tuple([nonNegInt(), nonNegInt(), nonNegInt()]));

export const matricesSchema = z.array(
  z.strictObject({
    id: nonNegInt(),
    weight: recipeSchema,
    rowOf: runs,
    columns: runs,
    rows: posInt(),
    cols: posInt(),
  }),
);

export type MatricesJson = z.infer<typeof matricesSchema>;

/** Region digests computed in this process, by file identity (a generation plan's steps share them). */
const digests = new Map<string, string>();

function regionDigest(region: Extract<WeightRecipe, { op: 'external' }>): string {
  const st = fs.statSync(region.file);
  const key = `${fs.realpathSync(region.file)}@${region.offset}+${region.length}:${st.size}:${st.mtimeMs}`;
  let d = digests.get(key);
  if (!d) {
    d = regionSha256(region);
    digests.set(key, d);
  }
  return d;
}

/** The table for a plan written to `planFile`: every matrix the program's diagonals use, once. */
export function matricesForPlan(program: FheProgram, planFile: string): MatricesJson {
  const dir = path.dirname(path.resolve(planFile));
  const byId = new Map<number, MatrixSource>();
  for (const c of program.constants.values()) {
    if (c.data.kind !== 'diagonal') continue;
    const { id, source } = c.data.matrix;
    if (!source) throw new FhecError(`constant @${c.name}: matrix m${id} is not bound to its weights`, { file: planFile });
    byId.set(id, source);
  }
  return [...byId].sort((a, b) => a[0] - b[0]).map(([id, s]) => ({
    id,
    weight: mapRecipeFiles(s.weight, (r) => ({ file: path.relative(dir, path.resolve(r.file)).split(path.sep).join('/'), sha256: r.sha256 ?? regionDigest(r) })),
    rowOf: s.rowOf,
    columns: s.columns,
    rows: s.rows,
    cols: s.cols,
  }));
}

/** Why a diagonal's geometry cannot be one of `s`'s in `slots` slots (undefined when it can). */
function geometryProblem(g: DiagonalGeometry, s: MatrixSource, slots: number): string | undefined {
  if (g.tokens < 1 || g.period < 1 || g.stride < 1) return 'needs tokens, period and stride of at least 1';
  if (g.tokens * g.stride > slots) return `puts ${g.tokens} tokens of ${g.stride} slots in ${slots}`;
  if (g.extent > slots || g.shift >= slots || g.index >= g.period || g.length > g.period) return 'lies outside the slots or the period';
  if (g.r0 + g.rows > s.rows || g.colStart + g.length > s.cols) return `reaches past the matrix's ${s.rows} x ${s.cols}`;
  return undefined;
}

/**
 * Binds each diagonal constant of `program` (parsed from the plan) to its matrix in the table, with data
 * files resolved against the plan's folder; checks the table's structure (maps within the matrix and
 * the weight, dims and byte lengths consistent).
 */
export function bindMatrices(program: FheProgram, table: MatricesJson | undefined, planFile: string): void {
  const dir = path.dirname(path.resolve(planFile));
  const sources = new Map<number, MatrixSource>();
  (table ?? []).forEach((m, i) => {
    const at = ['matrices', i];
    if (sources.has(m.id)) throw malformed(planFile, 'plan', [...at, 'id'], `matrix ${m.id} is listed twice`);
    const weight = mapRecipeFiles(m.weight as WeightRecipe, (r) => ({ file: path.resolve(dir, r.file) }));
    try {
      for (const r of externalRegions(weight)) {
        const bytes = r.dims.reduce((a, d) => a * d, 1) * byteSize(r.dtype);
        if (bytes !== r.length) throw new FhecError(`a ${r.dtype} [${r.dims.join(', ')}] region of ${r.length} bytes (expected ${bytes})`);
      }
      const [K, N] = recipeDims(weight);
      if (recipeDims(weight).length !== 2) throw new FhecError(`the weight is not 2-D ([${recipeDims(weight).join(', ')}])`);
      for (const k of expandRuns(m.rowOf, m.cols)) if (k >= K!) throw new FhecError(`rowOf reaches weight row ${k}, the weight has ${K}`);
      for (const n of expandRuns(m.columns, m.rows)) if (n >= N!) throw new FhecError(`columns reach weight column ${n}, the weight has ${N}`);
    } catch (e) {
      if (e instanceof FhecError) throw malformed(planFile, 'plan', at, e.message);
      throw e;
    }
    sources.set(m.id, { weight, rowOf: m.rowOf, columns: m.columns, rows: m.rows, cols: m.cols });
  });
  for (const c of program.constants.values()) {
    if (c.data.kind !== 'diagonal') continue;
    const s = sources.get(c.data.matrix.id);
    if (!s) throw new FhecError(`constant @${c.name} refers to matrix ${c.data.matrix.id}, which the plan's matrices table does not list`, { file: planFile, field: 'matrices' });
    const bad = geometryProblem(c.data.geometry, s, program.slots);
    if (bad) throw new FhecError(`constant @${c.name}: diagonal geometry ${bad}`, { file: planFile, field: 'program' });
    c.data.matrix.source = s;
  }
}
