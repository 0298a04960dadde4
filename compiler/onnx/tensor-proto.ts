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
import { decodeRaw, encodeRaw } from './raw-bytes.js';

/** Decoded tensors up to this size (as float64) stay cached after the first load(). */
const CACHE_LIMIT_BYTES = 64 * 2 ** 20;
/** readSync reads at most ~2 GB per call. */
const READ_CHUNK_BYTES = 2 ** 30;

/** Where a tensor proto was found: the file (for errors) and the folder external paths are relative to. */
export interface TensorContext {
  file: string;
  dir: string;
}

/** A tensor's bytes in an external data file. */
export interface ExternalRef {
  /** The `location` as written in the model (relative to the model's folder). */
  location: string;
  /** Absolute path of the data file. */
  path: string;
  /** The model's folder, which the data file must stay inside. */
  dir: string;
  offset: number;
  length: number;
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

  load(): Tensor {
    if (this.cached) return this.cached;
    const n = numel(this.dims);
    const s = this.storage;
    const data =
      s.kind === 'fields' ? decodeTypedFields(s.proto, this.dtype, n) : decodeRaw(this.rawBytes(), this.dtype, n);
    const t = new Tensor(this.dtype, [...this.dims], data);
    if (n * 8 < CACHE_LIMIT_BYTES) this.cached = t;
    return t;
  }

  /** The values as ONNX raw_data bytes (exact bit patterns; reads the external file if there is one). */
  rawBytes(): Uint8Array {
    const s = this.storage;
    switch (s.kind) {
      case 'raw': return s.bytes;
      case 'fields': return encodeRaw(this.load().data, this.dtype);
      case 'external': return readExternal(s.ref, this.name, this.file);
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

/**
 * The real path of an external data file (symlinks resolved), or undefined when it does not exist.
 * It must stay inside the model's real folder (a symlink pointing out is refused, like `../x`) and be a
 * regular file (a FIFO or device would hang or never end).
 */
export function resolveExternal(ref: ExternalRef, where: { file: string; field: string }): string | undefined {
  let real: string;
  try {
    real = fs.realpathSync(ref.path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new FhecError(`external data file '${ref.location}' cannot be resolved (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, where);
  }
  const dir = fs.realpathSync(ref.dir);
  const rel = path.relative(dir, real);
  if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) {
    throw new FhecError(`external data location '${ref.location}' resolves to '${real}', outside the model's folder '${dir}'`, where);
  }
  if (!fs.statSync(real).isFile()) throw new FhecError(`external data file '${ref.location}' is not a regular file`, where);
  return real;
}

/** Throws unless the tensor's bytes lie within a data file of `size` bytes. */
export function checkExternalRange(ref: ExternalRef, size: number, where: { file: string; field: string }): void {
  if (ref.offset + ref.length > size) {
    throw new FhecError(
      `external data file '${ref.location}' is too short: the tensor needs bytes ${ref.offset}..${ref.offset + ref.length}, ` +
        `the file has ${size}`,
      where,
    );
  }
}

function readExternal(ref: ExternalRef, name: string, modelFile: string): Uint8Array {
  const where = { file: modelFile, field: `tensor '${name}'` };
  const real = resolveExternal(ref, where);
  if (real === undefined) throw new FhecError(`external data file '${ref.path}' is missing`, where);
  let fd: number;
  try {
    // Non-blocking and not following a link swapped in since it was resolved.
    fd = fs.openSync(real, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FhecError(`external data file '${ref.path}' cannot be opened (${code ?? (e as Error).message})`, where);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new FhecError(`external data file '${ref.location}' is not a regular file`, where);
    checkExternalRange(ref, st.size, where);
    const buf = Buffer.allocUnsafe(ref.length);
    let done = 0;
    while (done < ref.length) {
      const want = Math.min(READ_CHUNK_BYTES, ref.length - done);
      const got = fs.readSync(fd, buf, done, want, ref.offset + done);
      if (got === 0) throw new FhecError(`unexpected end of external data file '${ref.path}'`, where);
      done += got;
    }
    return buf;
  } finally {
    fs.closeSync(fd);
  }
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
