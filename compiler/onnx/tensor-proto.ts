// ONNX TensorProto -> lazy tensor. Handles every storage form: raw_data, the typed fields
// (float_data, int32_data, int64_data, double_data, uint64_data) and external data files.
// Only structure is read up front; external bytes are read in load(), so importing a graph of a
// multi-gigabyte model touches none of its weights.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { byteSize, dtypeFromOnnx, onnxDtypeName, type DType } from '../../ir/dtype.js';
import { FhecError } from '../../ir/errors.js';
import { bfloat16BitsToFloat, halfBitsToFloat } from '../../ir/numeric.js';
import { numel, Tensor } from '../../ir/tensor.js';
import type { LazyTensor } from '../../ir/graph/types.js';
import { int64ToNumber, onnx, type Int64, type OnnxTypes } from './proto.js';
import { decodeRaw, encodeRaw } from '../../ir/raw-bytes.js';
import { readExternal, type ExternalRef } from '../../ir/external-data.js';
import type { WeightRecipe } from '../../ir/weights/recipe.js';

export { checkExternalRange, resolveExternal, type ExternalRef } from '../../ir/external-data.js';

/** Decoded inline tensors up to this size (as float64) stay cached after the first load(). */
const CACHE_LIMIT_BYTES = 64 * 2 ** 20;
/** Where a tensor proto was found: the file (for errors) and the folder external paths are relative to. */
export interface TensorContext {
  file: string;
  dir: string;
}

type Storage =
  | { kind: 'raw'; bytes: Uint8Array }
  | { kind: 'fields'; proto: OnnxTypes.ITensorProto }
  | { kind: 'external'; ref: ExternalRef };

/** A tensor stored in an ONNX file (inline or in an external data file), decoded on demand. */
export class OnnxTensor implements LazyTensor {
  readonly byteLength: number;
  private cached: Tensor | undefined;

  private constructor(
    /** The tensor's name (initializer name, or a description such as `attribute 'value' of node X`). */
    readonly name: string,
    readonly dtype: DType,
    readonly dims: readonly number[],
    private readonly storage: Storage,
    readonly file: string,
  ) {
    this.byteLength = numel(dims) * byteSize(dtype);
  }

  /** Builds the lazy tensor, checking structure (dtype, dims, data sizes, external path) without any I/O. */
  static fromProto(proto: OnnxTypes.ITensorProto, ctx: TensorContext, name = proto.name ?? ''): OnnxTensor {
    const where = { file: ctx.file, field: `tensor '${name}'` };
    const code = proto.dataType ?? 0;
    const dtype = dtypeFromOnnx(code);
    if (!dtype) throw new FhecError(`unsupported dtype ${onnxDtypeName(code)}`, where);
    const dims = (proto.dims ?? []).map((d) => int64ToNumber(d));
    if (dims.some((d) => !Number.isSafeInteger(d) || d < 0)) {
      throw new FhecError(`invalid dims [${dims.join(', ')}]`, where);
    }
    if (proto.segment) throw new FhecError('segmented tensors are not supported', where);
    const n = numel(dims);
    const expectedBytes = n * byteSize(dtype);
    let storage: Storage;
    if (proto.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
      storage = { kind: 'external', ref: externalRef(proto, ctx, name, expectedBytes) };
    } else if (proto.rawData && proto.rawData.length > 0) {
      if (proto.rawData.length !== expectedBytes) {
        throw new FhecError(
          `${proto.rawData.length} bytes of raw_data, but ${dtype} [${dims.join(', ')}] needs ${expectedBytes}`,
          where,
        );
      }
      storage = { kind: 'raw', bytes: proto.rawData };
    } else {
      const count = typedFieldLength(proto, dtype);
      if (count !== n) {
        throw new FhecError(`holds ${count} values, but dims [${dims.join(', ')}] need ${n}`, where);
      }
      storage = { kind: 'fields', proto };
    }
    return new OnnxTensor(name, dtype, dims, storage, ctx.file);
  }

  /** `inline`, or `external:FILE@OFFSET+LENGTH`. */
  get location(): string {
    const s = this.storage;
    return s.kind === 'external' ? `external:${s.ref.location}@${s.ref.offset}+${s.ref.length}` : 'inline';
  }

  /** The external data reference, if the bytes live in another file. */
  get external(): ExternalRef | undefined {
    return this.storage.kind === 'external' ? this.storage.ref : undefined;
  }

  /** External bytes are referenced by file, offset and length (inline ones have no recipe). */
  recipe(): WeightRecipe | undefined {
    const s = this.storage;
    if (s.kind !== 'external') return undefined;
    return { op: 'external', file: s.ref.path, offset: s.ref.offset, length: s.ref.length, dtype: this.dtype, dims: [...this.dims] };
  }

  load(): Tensor {
    if (this.cached) return this.cached;
    const n = numel(this.dims);
    const s = this.storage;
    const data =
      s.kind === 'fields' ? decodeTypedFields(s.proto, this.dtype, n) : decodeRaw(this.rawBytes(), this.dtype, n);
    const t = new Tensor(this.dtype, [...this.dims], data);
    // External weights are read again on each load (the OS keeps the file's pages): a compile, which runs
    // the float model once per calibration window, then holds no weight past its use.
    if (n * 8 < CACHE_LIMIT_BYTES && s.kind !== 'external') this.cached = t;
    return t;
  }

  /** The values as ONNX raw_data bytes (exact bit patterns; reads the external file if there is one). */
  rawBytes(): Uint8Array {
    const s = this.storage;
    switch (s.kind) {
      case 'raw': return s.bytes;
      case 'fields': return encodeRaw(this.load().data, this.dtype);
      case 'external': return readExternal(s.ref, { file: this.file, field: `tensor '${this.name}'` });
    }
  }
}

/** Reads a standalone TensorProto file (the ONNX node tests' input_K.pb / output_K.pb). */
export function readTensorProtoFile(file: string): { name: string; tensor: Tensor } {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new FhecError(`cannot read tensor file: ${(e as Error).message}`, { file });
  }
  let proto: OnnxTypes.TensorProto;
  try {
    proto = onnx.TensorProto.decode(bytes);
  } catch (e) {
    throw new FhecError(`not a TensorProto file (${(e as Error).message})`, { file });
  }
  const name = proto.name ?? '';
  return { name, tensor: OnnxTensor.fromProto(proto, { file, dir: path.dirname(path.resolve(file)) }, name).load() };
}

function externalRef(proto: OnnxTypes.ITensorProto, ctx: TensorContext, name: string, expected: number): ExternalRef {
  const where = { file: ctx.file, field: `tensor '${name}'` };
  const kv = new Map((proto.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
  const location = kv.get('location');
  if (!location) throw new FhecError('external data has no location', where);
  const resolved = path.resolve(ctx.dir, location);
  const rel = path.relative(ctx.dir, resolved);
  const escapes = rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel);
  if (path.isAbsolute(location) || escapes) {
    throw new FhecError(
      `external data location '${location}' must be a relative path inside the model's folder`,
      where,
    );
  }
  const parse = (key: string, dflt: number | undefined): number | undefined => {
    const s = kv.get(key);
    if (s === undefined) return dflt;
    const v = Number(s);
    if (!/^\d+$/.test(s.trim()) || !Number.isSafeInteger(v)) {
      throw new FhecError(`invalid external data ${key} '${s}'`, where);
    }
    return v;
  };
  const offset = parse('offset', 0)!;
  const length = parse('length', undefined);
  if (length !== undefined && length !== expected) {
    throw new FhecError(`external data length is ${length}, but the tensor's dtype and dims need ${expected}`, where);
  }
  return { location, path: resolved, dir: ctx.dir, offset, length: expected };
}

/** Which typed field holds values of `dtype` (ONNX's onnx.proto3 comments). */
function typedField(
  proto: OnnxTypes.ITensorProto,
  dtype: DType,
): readonly number[] | readonly Int64[] {
  switch (dtype) {
    case 'float32': return proto.floatData ?? [];
    case 'float64': return proto.doubleData ?? [];
    case 'int64': return proto.int64Data ?? [];
    case 'uint32': case 'uint64': return proto.uint64Data ?? [];
    default: return proto.int32Data ?? []; // int32, int16, int8, uint16, uint8, bool, float16, bfloat16
  }
}

function typedFieldLength(proto: OnnxTypes.ITensorProto, dtype: DType): number {
  return typedField(proto, dtype).length;
}

function decodeTypedFields(proto: OnnxTypes.ITensorProto, dtype: DType, n: number): Float64Array {
  const src = typedField(proto, dtype);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const v = int64ToNumber(src[i]!);
    switch (dtype) {
      case 'float16': out[i] = halfBitsToFloat(v & 0xffff); break;
      case 'bfloat16': out[i] = bfloat16BitsToFloat(v & 0xffff); break;
      case 'bool': out[i] = v ? 1 : 0; break;
      default: out[i] = v;
    }
  }
  return out;
}
