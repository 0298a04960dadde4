// ONNX model file -> graph IR. Reads the .onnx file itself fully but never the external weight
// files: initializers become lazy tensors whose bytes are read on load().

import * as fs from 'node:fs';
import * as path from 'node:path';
import { dtypeFromOnnx, onnxDtypeName, type DType } from '../../ir/dtype.js';
import { FhecError, nodeLabel } from '../../ir/errors.js';
import { numel, Tensor } from '../../ir/tensor.js';
import { sortTopologically } from '../../ir/graph/topo.js';
import { MaterializedTensor } from '../../ir/graph/types.js';
import type { AttrValue, Dim, Graph, LazyTensor, Node, Shape, Value } from '../../ir/graph/types.js';
import { inferOutputDtype } from './output-dtype.js';
import { int64ToNumber, onnx, type OnnxTypes } from './proto.js';
import { checkExternalRange, OnnxTensor, resolveExternal, type TensorContext } from './tensor-proto.js';

export interface ExternalFileInfo {
  /** As written in the model, relative to its folder. */
  location: string;
  /** Absolute path. */
  path: string;
  /** Sum of the byte lengths of the tensors stored in it. */
  bytesReferenced: number;
  exists: boolean;
  /** File size in bytes, when it exists. */
  size?: number;
}

export interface ModelInfo {
  producerName: string;
  producerVersion: string;
  irVersion: number;
  domain: string;
  modelVersion: number;
  docString: string;
  /** Opset version per domain ('' = ai.onnx). */
  opsets: Record<string, number>;
  externalFiles: ExternalFileInfo[];
  /** Elements in all initializers. */
  parameterCount: number;
  /** Bytes of all initializers in their stored dtype. */
  parameterBytes: number;
  /** `Constant` nodes of the file, which the graph holds as constants instead of nodes. */
  constantNodeCount: number;
  /** The model's metadata_props. */
  metadataProps: Record<string, string>;
}

export interface ImportedModel {
  graph: Graph;
  info: ModelInfo;
}

export interface ImportOptions {
  /** Weights are always loaded lazily; there is no eager mode. */
  loadWeights?: never;
}

/** Reads an ONNX model. Throws FhecError (with `file` set) for anything wrong with the file. */
export function importOnnx(file: string, _opts: ImportOptions = {}): ImportedModel {
  try {
    return new Importer(file, decodeModel(file)).run();
  } catch (e) {
    if (e instanceof FhecError) throw e.inFile(file);
    throw new FhecError(`cannot import ONNX model: ${(e as Error).message}`, { file });
  }
}

function decodeModel(file: string): OnnxTypes.ModelProto {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FhecError(code === 'ENOENT' ? 'file not found' : `cannot read file (${code ?? (e as Error).message})`, {
      file,
    });
  }
  let model: OnnxTypes.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (e) {
    const msg = (e as Error).message;
    throw new FhecError(
      /index out of range/.test(msg)
        ? `truncated or corrupt ONNX file (${msg})`
        : `not an ONNX file: protobuf decoding failed (${msg})`,
      { file },
    );
  }
  if (!model.graph) throw new FhecError('not an ONNX file: no graph in the model', { file });
  return model;
}

class Importer {
  private readonly ctx: TensorContext;
  private readonly values = new Map<string, Value>();
  /** Values whose dtype came from the file (the others are inferred after sorting). */
  private readonly typed = new Set<Value>();
  private readonly tensors: OnnxTensor[] = [];
  private readonly graph: Graph;
  private constantNodeCount = 0;
  private placeholderCount = 0;

  constructor(
    file: string,
    private readonly model: OnnxTypes.ModelProto,
  ) {
    this.ctx = { file, dir: path.dirname(path.resolve(file)) };
    this.graph = {
      name: model.graph!.name || 'main',
      opsets: opsetsOf(model),
      inputs: [],
      outputs: [],
      constants: [],
      nodes: [],
      metadata: {
        producer: [model.producerName, model.producerVersion].filter(Boolean).join(' '),
        irVersion: String(int64ToNumber(model.irVersion)),
        modelPath: path.resolve(file),
      },
    };
  }

  run(): ImportedModel {
    const g = this.model.graph as OnnxTypes.GraphProto; // decoded messages are class instances
    let parameterCount = 0;
    let parameterBytes = 0;
    for (const init of g.initializer) {
      const t = this.tensor(init, init.name ?? '');
      parameterCount += numel(t.dims);
      parameterBytes += t.byteLength;
      this.addConstant(init.name ?? '', t, 'initializer');
    }
    for (const vi of g.input) {
      const name = vi.name ?? '';
      if (this.values.has(name)) continue; // an initializer listed as input (IR < 4): a constant
      const type = this.valueType(vi, `graph input '${name}'`);
      if (!type) throw new FhecError(`graph input '${name}' has no tensor type`);
      const v: Value = { name, dtype: type.dtype, shape: type.shape };
      this.define(v, 'graph input');
      this.typed.add(v);
      this.graph.inputs.push(v);
    }

    const pending: { node: Node; inputNames: string[] }[] = [];
    g.node.forEach((np, i) => {
      const node = this.node(np, i);
      if (node) pending.push({ node, inputNames: np.input ?? [] });
    });
    for (const { node, inputNames } of pending) {
      node.inputs = inputNames.map((name, k) => {
        if (name === '') return null;
        const v = this.values.get(name);
        if (!v) {
          throw new FhecError(`input ${k} '${name}' is not defined in the graph`, { node: nodeLabel(node) });
        }
        return v;
      });
    }
    for (const vi of g.valueInfo) this.applyType(vi, 'value_info');
    for (const vi of g.output) this.applyType(vi, 'graph output');
    this.graph.outputs = g.output.map((vi) => {
      const v = this.values.get(vi.name ?? '');
      if (!v) throw new FhecError(`graph output '${vi.name}' is not produced by any node`);
      return v;
    });

    sortTopologically(this.graph);
    for (const n of this.graph.nodes) {
      n.outputs.forEach((o, k) => {
        if (!this.typed.has(o)) o.dtype = inferOutputDtype(n, k);
      });
    }
    return {
      graph: this.graph,
      info: {
        producerName: this.model.producerName ?? '',
        producerVersion: this.model.producerVersion ?? '',
        irVersion: int64ToNumber(this.model.irVersion),
        domain: this.model.domain ?? '',
        modelVersion: int64ToNumber(this.model.modelVersion),
        docString: this.model.docString ?? '',
        opsets: { ...this.graph.opsets },
        externalFiles: externalFiles(this.tensors),
        parameterCount,
        parameterBytes,
        constantNodeCount: this.constantNodeCount,
        metadataProps: Object.fromEntries(this.model.metadataProps.map((p) => [p.key ?? '', p.value ?? ''])),
      },
    };
  }

  private tensor(proto: OnnxTypes.ITensorProto, name: string): OnnxTensor {
    const t = OnnxTensor.fromProto(proto, this.ctx, name);
    this.tensors.push(t);
    return t;
  }

  private define(v: Value, what: string): void {
    if (this.values.has(v.name)) throw new FhecError(`value '${v.name}' is defined twice (${what})`);
    this.values.set(v.name, v);
  }

  private addConstant(name: string, t: LazyTensor, what: string): void {
    const v: Value = { name, dtype: t.dtype, shape: [...t.dims], constant: t };
    this.define(v, what);
    this.typed.add(v);
    this.graph.constants.push(v);
  }

  /** Converts one NodeProto; a `Constant` node becomes a constant and returns undefined. */
  private node(np: OnnxTypes.INodeProto, index: number): Node | undefined {
    const op = np.opType ?? '';
    const domain = np.domain === 'ai.onnx' ? '' : (np.domain ?? '');
    const name = np.name || `${op}_${index}`;
    const label = nodeLabel({ name, op, domain });
    const attrs: Record<string, AttrValue> = {};
    for (const a of np.attribute ?? []) attrs[a.name ?? ''] = this.attr(a, op, name, label);

    const outputNames = [...(np.output ?? [])];
    while (outputNames.length && outputNames[outputNames.length - 1] === '') outputNames.pop();
    if (op === 'Constant' && domain === '') {
      if (outputNames.length !== 1) throw new FhecError('a Constant node needs exactly one output', { node: label });
      this.addConstant(outputNames[0]!, constantNodeValue(attrs, label), `output of ${name}`);
      this.constantNodeCount++;
      return undefined;
    }
    const node: Node = { name, op, domain, inputs: [], outputs: [], attrs };
    node.outputs = outputNames.map((o) => {
      // An omitted output in the middle of the list still needs a value in the IR.
      const v: Value = { name: o || this.placeholderName(name), dtype: 'float32', shape: undefined, producer: node };
      this.define(v, `output of ${name}`);
      return v;
    });
    this.graph.nodes.push(node);
    return node;
  }

  private placeholderName(nodeName: string): string {
    let n: string;
    do n = `${nodeName}/unused_output_${this.placeholderCount++}`;
    while (this.values.has(n));
    return n;
  }

  private attr(a: OnnxTypes.IAttributeProto, op: string, nodeName: string, label: string): AttrValue {
    const T = onnx.AttributeProto.AttributeType;
    const name = a.name ?? '';
    switch (attrType(a)) {
      case T.INT: return { kind: 'int', value: int64ToNumber(a.i) };
      case T.FLOAT: return { kind: 'float', value: a.f ?? 0 };
      case T.STRING: return { kind: 'string', value: utf8(a.s) };
      case T.INTS: return { kind: 'ints', value: (a.ints ?? []).map((v) => int64ToNumber(v)) };
      case T.FLOATS: return { kind: 'floats', value: [...(a.floats ?? [])] };
      case T.STRINGS: return { kind: 'strings', value: (a.strings ?? []).map(utf8) };
      case T.TENSOR: return { kind: 'tensor', value: this.tensor(a.t!, a.t!.name || `${nodeName}.${name}`) };
      case T.GRAPH:
      case T.GRAPHS:
        throw new FhecError(`subgraph op ${op} is not supported (graph attribute '${name}')`, { node: label });
      default: {
        const typeName = T[attrType(a)] ?? String(attrType(a));
        throw new FhecError(`unsupported attribute type ${typeName}`, { node: label, field: `attribute '${name}'` });
      }
    }
  }

  /** dtype and shape of a ValueInfoProto; undefined when it carries no type. */
  private valueType(vi: OnnxTypes.IValueInfoProto, what: string): { dtype: DType; shape: Shape } | undefined {
    const type = vi.type as OnnxTypes.TypeProto | null | undefined;
    if (!type || type.value === undefined) return undefined;
    if (type.value !== 'tensorType' || !type.tensorType) {
      throw new FhecError(`${what} is a ${type.value}, only tensors are supported`);
    }
    const code = type.tensorType.elemType ?? 0;
    const dtype = dtypeFromOnnx(code);
    if (!dtype) throw new FhecError(`unsupported dtype ${onnxDtypeName(code)} of ${what}`);
    const shapeProto = type.tensorType.shape;
    const shape: Shape = shapeProto ? (shapeProto.dim ?? []).map(dimOf) : undefined;
    return { dtype, shape };
  }

  private applyType(vi: OnnxTypes.IValueInfoProto, what: string): void {
    const v = this.values.get(vi.name ?? '');
    if (!v || v.constant || !v.producer) return; // inputs and constants carry their own types
    const type = this.valueType(vi, `${what} '${v.name}'`);
    if (!type) return;
    v.dtype = type.dtype;
    if (type.shape) v.shape = type.shape;
    this.typed.add(v);
  }
}

function opsetsOf(model: OnnxTypes.ModelProto): Record<string, number> {
  const opsets: Record<string, number> = {};
  for (const o of model.opsetImport) {
    const domain = o.domain === 'ai.onnx' ? '' : (o.domain ?? '');
    opsets[domain] = int64ToNumber(o.version);
  }
  return opsets;
}

function dimOf(d: OnnxTypes.TensorShapeProto.IDimension): Dim {
  const dim = d as OnnxTypes.TensorShapeProto.Dimension;
  if (dim.value === 'dimValue') return int64ToNumber(dim.dimValue);
  if (dim.value === 'dimParam' && dim.dimParam) return dim.dimParam;
  return null;
}

/** The attribute's type; very old files leave it unset, then the filled field tells. */
function attrType(a: OnnxTypes.IAttributeProto): number {
  const T = onnx.AttributeProto.AttributeType;
  if (a.type) return a.type;
  if (a.g) return T.GRAPH;
  if (a.graphs?.length) return T.GRAPHS;
  if (a.t) return T.TENSOR;
  if (a.floats?.length) return T.FLOATS;
  if (a.ints?.length) return T.INTS;
  if (a.strings?.length) return T.STRINGS;
  if (a.s?.length) return T.STRING;
  if (a.f) return T.FLOAT;
  return T.INT;
}

function utf8(b: Uint8Array | null | undefined): string {
  return b ? Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8') : '';
}

/** The tensor a Constant node defines, from whichever of its value attributes is set. */
function constantNodeValue(attrs: Record<string, AttrValue>, label: string): LazyTensor {
  const entries = Object.entries(attrs);
  if (entries.length !== 1) {
    throw new FhecError(`a Constant node needs exactly one value attribute, it has ${entries.length}`, { node: label });
  }
  const [name, a] = entries[0]!;
  const plain = (dtype: DType, dims: number[], values: number[]) =>
    new MaterializedTensor(Tensor.from(dtype, dims, values));
  if (name === 'value' && a.kind === 'tensor') return a.value;
  if (name === 'value_float' && a.kind === 'float') return plain('float32', [], [a.value]);
  if (name === 'value_floats' && a.kind === 'floats') return plain('float32', [a.value.length], a.value);
  if (name === 'value_int' && a.kind === 'int') return plain('int64', [], [a.value]);
  if (name === 'value_ints' && a.kind === 'ints') return plain('int64', [a.value.length], a.value);
  if (name === 'value_string' || name === 'value_strings') {
    throw new FhecError(`unsupported dtype string in Constant attribute '${name}'`, { node: label });
  }
  if (name === 'sparse_value') throw new FhecError('sparse Constant values are not supported', { node: label });
  throw new FhecError(`Constant node has unexpected attribute '${name}' (${a.kind})`, { node: label });
}

/** The external data files, each checked (inside the model's folder, a regular file, every tensor within its size) without reading them. */
function externalFiles(tensors: OnnxTensor[]): ExternalFileInfo[] {
  const byPath = new Map<string, ExternalFileInfo>();
  for (const t of tensors) {
    const ref = t.external;
    if (!ref) continue;
    const where = { file: t.file, field: `tensor '${t.name}'` };
    let info = byPath.get(ref.path);
    if (!info) {
      info = { location: ref.location, path: ref.path, bytesReferenced: 0, exists: false };
      // A missing file is reported as exists = false (load() names it); anything else wrong is an error.
      const real = resolveExternal(ref, where);
      if (real !== undefined) {
        info.exists = true;
        info.size = fs.statSync(real).size;
      }
      byPath.set(ref.path, info);
    }
    if (info.size !== undefined) checkExternalRange(ref, info.size, where);
    info.bytesReferenced += ref.length;
  }
  return [...byPath.values()];
}
