// The tensor JSON format shared by `fhec eval`, `fhec run` and the reference files:
//   {"inputs": {NAME: {"dims": [...], "dtype": "float32", "data": [...]}}}   (outputs under "outputs")
// data is flat row-major; NaN and infinities are the strings "NaN", "Infinity", "-Infinity".

import { z } from 'zod';
import { ALL_DTYPES, type DType } from './dtype.js';
import { FhecError } from './errors.js';
import { Tensor, numel } from './tensor.js';

const numberOrSpecial = z.union([z.number(), z.enum(['NaN', 'Infinity', '-Infinity']), z.boolean()]);

export const tensorJsonSchema = z.object({
  dims: z.array(z.number().int().nonnegative()),
  dtype: z.enum(ALL_DTYPES as [DType, ...DType[]]),
  data: z.array(numberOrSpecial),
});

export type TensorJson = z.infer<typeof tensorJsonSchema>;

function decodeNumber(v: number | string | boolean): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  return v === 'NaN' ? NaN : v === 'Infinity' ? Infinity : -Infinity;
}

function encodeNumber(v: number): number | string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return 'Infinity';
  if (v === -Infinity) return '-Infinity';
  return v;
}

/** Parse one tensor; `where` names the file and field for errors. */
export function tensorFromJson(raw: unknown, where: { file?: string; field: string }): Tensor {
  const parsed = tensorJsonSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const path = issue.path.length ? `.${issue.path.join('.')}` : '';
    throw new FhecError(`${issue.message}`, { file: where.file, field: `${where.field}${path}` });
  }
  const { dims, dtype, data } = parsed.data;
  if (data.length !== numel(dims)) {
    throw new FhecError(`data has ${data.length} values but dims [${dims.join(', ')}] need ${numel(dims)}`, {
      file: where.file,
      field: where.field,
    });
  }
  return Tensor.from(dtype, dims, data.map(decodeNumber));
}

export function tensorToJson(t: Tensor): TensorJson {
  return { dims: [...t.dims], dtype: t.dtype, data: Array.from(t.data, encodeNumber) as TensorJson['data'] };
}

/** Read the `key` section ("inputs" or "outputs") of a tensor JSON document. */
export function tensorsFromJson(doc: unknown, key: 'inputs' | 'outputs', file?: string): Record<string, Tensor> {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new FhecError('expected a JSON object', { file });
  }
  const section = (doc as Record<string, unknown>)[key];
  if (typeof section !== 'object' || section === null || Array.isArray(section)) {
    throw new FhecError(`missing or malformed "${key}" object`, { file, field: key });
  }
  const out: Record<string, Tensor> = {};
  for (const [name, raw] of Object.entries(section)) out[name] = tensorFromJson(raw, { file, field: `${key}.${name}` });
  return out;
}

export function tensorsToJson(tensors: Record<string, Tensor>, key: 'inputs' | 'outputs'): Record<string, unknown> {
  const section: Record<string, TensorJson> = {};
  for (const [name, t] of Object.entries(tensors)) section[name] = tensorToJson(t);
  return { [key]: section };
}

/** Parse JSON text, turning a syntax error into an FhecError naming the file. */
export function parseJsonText(text: string, file?: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new FhecError(`malformed JSON: ${(e as Error).message}`, { file });
  }
}
