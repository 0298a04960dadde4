// Graph IR -> ONNX ModelProto file. Initializers go inline, or (all but the smallest) into one
// external data file at 64-byte-aligned offsets. With `sparse`, the external file only gets its final size (no
// bytes are written and no weight is loaded), so a full-size model skeleton is written in seconds.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { byteSize, ONNX_DTYPE_CODE, type DType } from '../../ir/dtype.js';
import { FhecError, nodeLabel } from '../../ir/errors.js';
import { numel } from '../../ir/tensor.js';
import type { AttrValue, Graph, LazyTensor, Shape, Value } from '../../ir/graph/types.js';
import { onnx, type OnnxTypes } from './proto.js';
import { DeclaredTensor } from './declared-tensor.js';
import { encodeRaw } from '../../ir/raw-bytes.js';
import { OnnxTensor } from './tensor-proto.js';

export interface ExportOptions {
  /** Store every initializer in one external file (`location` is relative to the model's folder). */
  externalData?: {
    location: string;
    /** Only size the file (sparse, all zeros): no weight is loaded or written. */
    sparse?: boolean;
    /**
     * Tensors smaller than this stay inline (default 1024, as onnx's own converter does): runtimes
     * read small shape constants during shape inference and refuse them from external files.
     * Declared-only tensors always go to the external file.
     */
    minBytes?: number;
  };
  /** Defaults to the lowest IR version that allows the graph's ai.onnx opset (at least 8). */
  irVersion?: number;
}

export interface ExportResult {
  /** Bytes of the .onnx file. */
  modelBytes: number;
  /** Size of the external data file (0 without one). */
  externalBytes: number;
}

const EXTERNAL_ALIGNMENT = 64;
const DEFAULT_MIN_EXTERNAL_BYTES = 1024;

/** Writes `graph` as an ONNX model to `file`. */
export function exportOnnx(graph: Graph, file: string, opts: ExportOptions = {}): ExportResult {
  const external = opts.externalData ? externalTarget(file, opts.externalData.location) : undefined;
  const layout: { value: Value; offset: number; length: number }[] = [];
  let externalBytes = 0;
  const minExternal = opts.externalData?.minBytes ?? DEFAULT_MIN_EXTERNAL_BYTES;

  const initializer = graph.constants.map((v) => {
    const t = v.constant!;
    const proto = onnx.TensorProto.create({ name: v.name, dims: [...t.dims], dataType: dtypeCode(t.dtype) });
    const length = byteLengthOf(t);
    if (!external || (length < minExternal && !(t instanceof DeclaredTensor))) {
      proto.rawData = rawBytesOf(t, v.name);
      return proto;
    }
    const offset = Math.ceil(externalBytes / EXTERNAL_ALIGNMENT) * EXTERNAL_ALIGNMENT;
    layout.push({ value: v, offset, length });
    externalBytes = offset + length;
    proto.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
    proto.externalData = [
      { key: 'location', value: opts.externalData!.location },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(length) },
    ];
    return proto;
  });

  const produced = new Set(graph.nodes.flatMap((n) => n.outputs));
  const graphOutputs = new Set(graph.outputs);
  const model = onnx.ModelProto.create({
    irVersion: opts.irVersion ?? irVersionFor(graph.opsets[''] ?? 1),
    producerName: 'fhec',
    opsetImport: Object.entries(graph.opsets).map(([domain, version]) => ({ domain, version })),
    graph: {
      name: graph.name,
      node: graph.nodes.map((n) => ({
        name: n.name,
        opType: n.op,
        domain: n.domain,
        input: n.inputs.map((v) => v?.name ?? ''),
        output: n.outputs.map((v) => v.name),
        attribute: Object.entries(n.attrs).map(([name, a]) => attributeProto(name, a, nodeLabel(n))),
      })),
      initializer,
      input: graph.inputs.map(valueInfo),
      output: graph.outputs.map(valueInfo),
      // Intermediate types only where the shape is known (e.g. after shape inference).
      valueInfo: [...produced].filter((v) => v.shape !== undefined && !graphOutputs.has(v)).map(valueInfo),
    },
  });

  const bytes = onnx.ModelProto.encode(model).finish();
  writeOrFail(file, () => fs.writeFileSync(file, bytes));
  if (external) {
    writeOrFail(external, () => {
      const fd = fs.openSync(external, 'w');
      try {
        fs.ftruncateSync(fd, externalBytes);
        if (!opts.externalData!.sparse) {
          for (const { value, offset } of layout) writeAll(fd, rawBytesOf(value.constant!, value.name), offset);
        }
      } finally {
        fs.closeSync(fd);
      }
    });
  }
  return { modelBytes: bytes.length, externalBytes };
}

/** Lowest IR version whose ONNX release defines ai.onnx opset `opset` (docs/Versioning.md). */
function irVersionFor(opset: number): number {
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  if (opset <= 22) return 10;
  if (opset <= 23) return 11;
  return 12;
}

function externalTarget(file: string, location: string): string {
  const dir = path.dirname(path.resolve(file));
  const target = path.resolve(dir, location);
  const rel = path.relative(dir, target);
  if (path.isAbsolute(location) || rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`)) {
    throw new FhecError(`external data location '${location}' must be a relative path inside the model's folder`, {
      file,
    });
  }
  return target;
}

function dtypeCode(d: DType): number {
  return ONNX_DTYPE_CODE[d];
}

/** Stored size (MaterializedTensor.byteLength counts float64, so compute it from dtype and dims). */
function byteLengthOf(t: LazyTensor): number {
  return numel(t.dims) * byteSize(t.dtype);
}

/** ONNX raw_data of a constant; tensors read from an ONNX file keep their exact bytes. */
function rawBytesOf(t: LazyTensor, name: string): Uint8Array {
  try {
    return t instanceof OnnxTensor ? t.rawBytes() : encodeRaw(t.load().data, t.dtype);
  } catch (e) {
    if (e instanceof FhecError && !e.where.field) {
      throw new FhecError(e.message, { ...e.where, field: `tensor '${name}'` });
    }
    throw e;
  }
}

function valueInfo(v: Value): OnnxTypes.IValueInfoProto {
  const tensorType: OnnxTypes.TypeProto.ITensor = { elemType: dtypeCode(v.dtype) };
  if (v.shape) tensorType.shape = { dim: shapeDims(v.shape) };
  return { name: v.name, type: { tensorType } };
}

function shapeDims(shape: NonNullable<Shape>): OnnxTypes.TensorShapeProto.IDimension[] {
  return shape.map((d) => (typeof d === 'number' ? { dimValue: d } : typeof d === 'string' ? { dimParam: d } : {}));
}

function attributeProto(name: string, a: AttrValue, label: string): OnnxTypes.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  const utf8 = (s: string) => Buffer.from(s, 'utf8');
  switch (a.kind) {
    case 'int': return { name, type: T.INT, i: a.value };
    case 'float': return { name, type: T.FLOAT, f: a.value };
    case 'string': return { name, type: T.STRING, s: utf8(a.value) };
    case 'ints': return { name, type: T.INTS, ints: a.value };
    case 'floats': return { name, type: T.FLOATS, floats: a.value };
    case 'strings': return { name, type: T.STRINGS, strings: a.value.map(utf8) };
    case 'tensor': {
      const t = a.value;
      const raw = rawBytesOf(t, `${label}.${name}`);
      return { name, type: T.TENSOR, t: { dims: [...t.dims], dataType: dtypeCode(t.dtype), rawData: raw } };
    }
  }
}

function writeAll(fd: number, bytes: Uint8Array, position: number): void {
  let done = 0;
  while (done < bytes.length) done += fs.writeSync(fd, bytes, done, bytes.length - done, position + done);
}

function writeOrFail(file: string, write: () => void): void {
  try {
    write();
  } catch (e) {
    if (e instanceof FhecError) throw e;
    throw new FhecError(`cannot write file: ${(e as Error).message}`, { file });
  }
}
