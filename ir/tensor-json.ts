// The tensor JSON format shared by `fhec eval`, `fhec run` and the reference files:
//   {"inputs": {NAME: {"dims": [...], "dtype": "float32", "data": [...]}}}   (outputs under "outputs")
// data is flat row-major; NaN and infinities are the strings "NaN", "Infinity", "-Infinity".
// Nothing is silently changed on the way in: a number the dtype cannot hold (1e39 as float32, 300 as
// uint8, 72.7 as int64, 2^60 as int64 beyond what a JSON number keeps exact) is an error naming the
// element, and so is a non-finite value where the dtype has none (integers, bool).

import { z } from 'zod';
import { ALL_DTYPES, type DType } from './dtype.js';
import { FhecError } from './errors.js';
import { Tensor, numel } from './tensor.js';

// Any JSON number (1e999 parses to Infinity: reported by valueProblem, naming the element).
const numberOrSpecial = z.union([z.custom<number>((v) => typeof v === 'number', { error: 'expected a number' }), z.enum(['NaN', 'Infinity', '-Infinity']), z.boolean()]);

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
  data.forEach((v, i) => {
    const problem = valueProblem(dtype, v);
    if (problem) throw new FhecError(`data[${i}]: ${problem}`, { file: where.file, field: where.field });
  });
  return Tensor.from(dtype, dims, data.map(decodeNumber));
}

/** Largest finite magnitude below which a value rounds to a finite one, per float dtype. */
const FLOAT_LIMIT: Partial<Record<DType, number>> = {
  float16: 65520, // 65504 + half an ulp
  bfloat16: 3.3961775292304e38, // 0x7f7f + half an ulp
  float32: 3.4028235677973366e38, // FLT_MAX + half an ulp
  float64: Infinity,
};

const INT_RANGE: Partial<Record<DType, [number, number]>> = {
  int8: [-128, 127],
  uint8: [0, 255],
  int16: [-32768, 32767],
  uint16: [0, 65535],
  int32: [-(2 ** 31), 2 ** 31 - 1],
  uint32: [0, 2 ** 32 - 1],
  // JSON numbers are float64: beyond 2^53 an integer is no longer the one written.
  int64: [-Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  uint64: [0, Number.MAX_SAFE_INTEGER],
};

/** Why a JSON value is not a `dtype` element, or undefined if it is one. */
function valueProblem(dtype: DType, v: number | string | boolean): string | undefined {
  if (typeof v === 'boolean') return dtype === 'bool' ? undefined : `${v} is a boolean, the dtype is ${dtype}`;
  if (typeof v === 'string') return FLOAT_LIMIT[dtype] !== undefined ? undefined : `"${v}" is not a ${dtype} value`;
  if (!Number.isFinite(v)) return `the number overflows float64 (write "Infinity" if that is meant)`;
  if (dtype === 'bool') return v === 0 || v === 1 ? undefined : `${v} is not a bool (true, false, 0 or 1)`;
  const limit = FLOAT_LIMIT[dtype];
  if (limit !== undefined) return Math.abs(v) >= limit ? `${v} is beyond the ${dtype} range (it would become Infinity)` : undefined;
  if (!Number.isInteger(v)) return `${v} is not an integer (dtype ${dtype})`;
  const [lo, hi] = INT_RANGE[dtype]!;
  return v < lo || v > hi ? `${v} is outside the ${dtype} range [${lo}, ${hi}]${dtype.endsWith('64') ? ' (JSON numbers keep integers exact up to 2^53)' : ''}` : undefined;
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
