// ONNX import: the shared models against the facts in shared/models/README.md, every TensorProto
// storage form against independently built bytes, and bad files each giving a FhecError that names
// the file and the tensor or node.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importOnnx, type ImportedModel } from '../compiler/onnx/import.js';
import { onnx, type OnnxTypes } from '../compiler/onnx/proto.js';
import { OnnxTensor, readTensorProtoFile } from '../compiler/onnx/tensor-proto.js';
import { FhecError } from '../ir/errors.js';
import { verifyGraph } from '../ir/graph/verify.js';
import type { Graph, Value } from '../ir/graph/types.js';
import { MaterializedTensor } from '../ir/graph/types.js';

import { MODELS, NODE_TESTS } from './helpers/shared.js';
const FP16_MODEL = path.join(MODELS, 'ortgenai-tiny-llama-fp16/model.onnx');
const model = (name: string) => path.join(MODELS, `${name}.onnx`);

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-onnx-import-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function sig(v: Value): string {
  return `${v.name}:${v.dtype}[${v.shape?.join(',') ?? '?'}]`;
}

function histogram(g: Graph): Record<string, number> {
  const h: Record<string, number> = {};
  for (const n of g.nodes) {
    const k = n.domain ? `${n.domain}::${n.op}` : n.op;
    h[k] = (h[k] ?? 0) + 1;
  }
  return h;
}

/** Index of the first differing element (-1 if none); keeps failure output small for big arrays. */
function firstMismatch(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return i;
  return -1;
}

/** Runs `fn` and returns the FhecError it throws, with its one-line form. */
function fhecError(fn: () => unknown): { err: FhecError; line: string } {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(FhecError);
    return { err: e as FhecError, line: (e as FhecError).format() };
  }
  throw new Error('expected a FhecError, nothing was thrown');
}

// The histograms as shared/models/README.md gives them (Constant nodes counted separately).
const A_NOCACHE_HIST: Record<string, number> = {
  Shape: 33, Gather: 28, Cast: 31, Range: 2, Unsqueeze: 70, Concat: 24, ConstantOfShape: 7, Trilu: 1, Reshape: 19,
  Greater: 1, Mul: 33, Equal: 6, Where: 6, Expand: 6, MatMul: 20, Transpose: 11, Cos: 1, Sin: 1, Pow: 5,
  ReduceMean: 5, Add: 15, Sqrt: 5, Div: 11, Slice: 8, Neg: 4, Softmax: 2, Sigmoid: 2,
};
const A_KVCACHE_HIST = { ...A_NOCACHE_HIST, Shape: 34, Gather: 29, Cast: 34, Unsqueeze: 71, Concat: 28, Equal: 7, Where: 7, Add: 17 };
const KV_INPUTS = ['0.key', '0.value', '1.key', '1.value'];

describe('shared models', () => {
  const cache = new Map<string, ImportedModel>();
  const load = (file: string) => {
    if (!cache.has(file)) cache.set(file, importOnnx(file));
    return cache.get(file)!;
  };

  for (const name of ['A_nocache_opset14', 'A_nocache_opset17']) {
    it(`${name}: signature, histogram, parameters`, () => {
      const { graph, info } = load(model(name));
      verifyGraph(graph);
      expect(graph.inputs.map(sig)).toEqual(['input_ids:int64[1,sequence_length]']);
      expect(graph.outputs.map(sig)).toEqual(['logits:float32[1,sequence_length,256]']);
      expect(histogram(graph)).toEqual(A_NOCACHE_HIST);
      expect(info.constantNodeCount).toBe(188);
      expect(info.parameterCount).toBe(131_392);
      expect(info.parameterBytes).toBe(131_392 * 4);
      expect(info.producerName).toBe('pytorch');
      expect(info.producerVersion).toBe('1.13.0');
      expect(info.externalFiles).toEqual([]);
      const opset = name.endsWith('14') ? 14 : 17;
      expect(info.opsets).toEqual({ '': opset });
      expect(graph.opsets).toEqual({ '': opset });
      expect(info.irVersion).toBe(opset === 14 ? 7 : 8);
      expect(graph.metadata['modelPath']).toBe(model(name));
      // Constants: 21 initializers plus the 188 Constant nodes' values.
      expect(graph.constants.length).toBe(21 + 188);
    });
  }

  it('A_kvcache_opset14: Optimum-style signature and histogram', () => {
    const { graph, info } = load(model('A_kvcache_opset14'));
    verifyGraph(graph);
    expect(graph.inputs.map(sig)).toEqual([
      'input_ids:int64[1,sequence_length]',
      'attention_mask:int64[1,total_sequence_length]',
      'position_ids:int64[1,sequence_length]',
      ...KV_INPUTS.map((k) => `past_key_values.${k}:float32[1,2,past_sequence_length,16]`),
    ]);
    expect(graph.outputs.map(sig)).toEqual([
      'logits:float32[1,sequence_length,256]',
      ...KV_INPUTS.map((k) => `present.${k}:float32[1,2,total_sequence_length,16]`),
    ]);
    expect(histogram(graph)).toEqual(A_KVCACHE_HIST);
    expect(info.constantNodeCount).toBe(191);
    expect(info.parameterCount).toBe(131_392);
  });

  it('opset-23 files: RMSNormalization / RotaryEmbedding / Attention, cos and sin caches', () => {
    for (const name of ['A_nocache_opset23', 'A_kvcache_opset23']) {
      const { graph, info } = load(model(name));
      verifyGraph(graph);
      expect(info.opsets).toEqual({ '': 23 });
      expect(info.irVersion).toBe(11);
      const h = histogram(graph);
      expect([h['RMSNormalization'], h['RotaryEmbedding'], h['Attention'], h['MatMul'], h['Transpose']]).toEqual([5, 4, 2, 15, 15]);
      const cos = graph.constants.find((c) => c.name.includes('cos'))!;
      expect(cos.shape).toEqual([256, 8]);
      // Model A's weights plus the two [256, 8] caches (and a few scalars in the no-cache file).
      expect(info.parameterCount - 131_392 - 2 * 256 * 8).toBeGreaterThanOrEqual(0);
      expect(info.parameterCount - 131_392 - 2 * 256 * 8).toBeLessThan(16);
      const attn = graph.nodes.find((n) => n.op === 'Attention')!;
      expect(attn.attrs).toMatchObject({ q_num_heads: { kind: 'int', value: 4 }, kv_num_heads: { kind: 'int', value: 2 }, is_causal: { kind: 'int', value: 1 }, scale: { kind: 'float', value: 0.25 } });
    }
    expect(load(model('A_kvcache_opset23')).graph.inputs.map((v) => v.name)).toEqual([
      'input_ids', 'position_ids', ...KV_INPUTS.map((k) => `past_key_values.${k}`),
    ]);
  });

  it('ortgenai fp16: contrib ops, value_info types, symbolic batch', () => {
    const { graph, info } = load(FP16_MODEL);
    verifyGraph(graph);
    expect(info.opsets).toEqual({ '': 14, 'com.microsoft': 1 });
    expect(info.producerName).toBe('onnxruntime-genai');
    expect(graph.inputs.map(sig)).toEqual([
      'input_ids:int64[batch_size,sequence_length]',
      'attention_mask:int64[batch_size,total_sequence_length]',
      'position_ids:int64[batch_size,sequence_length]',
      ...KV_INPUTS.map((k) => `past_key_values.${k}:float16[batch_size,1,past_sequence_length,16]`),
    ]);
    expect(graph.outputs.map(sig)).toEqual([
      'logits:float16[batch_size,sequence_length,32000]',
      ...KV_INPUTS.map((k) => `present.${k}:float16[batch_size,1,total_sequence_length,16]`),
    ]);
    const h = histogram(graph);
    expect(h).toMatchObject({
      'com.microsoft::RotaryEmbedding': 4, 'com.microsoft::MultiHeadAttention': 2,
      'com.microsoft::SkipSimplifiedLayerNormalization': 4, SimplifiedLayerNormalization: 1,
      MatMul: 15, Sigmoid: 2, Mul: 6, Where: 4,
    });
    // SimplifiedLayerNormalization sits in the default domain although it is an ORT contrib op.
    expect(graph.nodes.find((n) => n.op === 'SimplifiedLayerNormalization')!.domain).toBe('');
    // Every MatMul output is fp16 (from value_info, or inferred from the fp16 inputs).
    for (const n of graph.nodes.filter((n) => n.op === 'MatMul')) expect(n.outputs[0]!.dtype).toBe('float16');
  });

  it('ortgenai fp16: the unsorted node list comes out topologically sorted', () => {
    // Independent check that the file really is out of order (so the test would fail without sorting).
    const proto = onnx.ModelProto.decode(fs.readFileSync(FP16_MODEL));
    const seen = new Set<string>([...proto.graph!.input!.map((i) => i.name!), ...proto.graph!.initializer!.map((i) => i.name!)]);
    let outOfOrder = 0;
    const producedLater = new Set(proto.graph!.node!.flatMap((n) => n.output!));
    for (const n of proto.graph!.node!) {
      for (const i of n.input!) if (i && !seen.has(i) && producedLater.has(i)) outOfOrder++;
      for (const o of n.output!) seen.add(o);
    }
    expect(outOfOrder).toBeGreaterThan(0);

    const { graph } = load(FP16_MODEL);
    const defined = new Set<Value>([...graph.inputs, ...graph.constants]);
    for (const n of graph.nodes) {
      for (const v of n.inputs) if (v) expect(defined.has(v), `${n.name} reads ${v.name} before it is defined`).toBe(true);
      for (const o of n.outputs) defined.add(o);
    }
    expect(graph.nodes.length).toBe(proto.graph!.node!.length - 13); // 13 Constant nodes became constants
  });

  it('ortgenai fp16: external data is described without reading it, and decodes correctly', () => {
    const { graph, info } = load(FP16_MODEL);
    const dataPath = path.join(MODELS, 'ortgenai-tiny-llama-fp16/model.onnx.data');
    const size = fs.statSync(dataPath).size;
    expect(info.externalFiles).toEqual([
      { location: 'model.onnx.data', path: dataPath, bytesReferenced: size, exists: true, size },
    ]);
    expect(info.parameterBytes).toBe(size);
    expect(info.parameterCount).toBe(size / 2);
    const embed = graph.constants.find((c) => c.name === 'model.embed_tokens.weight')!.constant!;
    expect(embed.location).toBe('external:model.onnx.data@0+1024000');
    expect([embed.dtype, embed.dims, embed.byteLength]).toEqual(['float16', [32000, 16], 1_024_000]);

    // Independent decoding: Node's own Float16Array over the bytes read straight from the file.
    const check = (name: string) => {
      const t = graph.constants.find((c) => c.name === name)!.constant as OnnxTensor;
      const ref = t.external!;
      const bytes = fs.readFileSync(dataPath).subarray(ref.offset, ref.offset + ref.length);
      const expected = new Float16Array(new Uint8Array(bytes).buffer);
      const got = t.load().data;
      expect(got.length).toBe(expected.length);
      expect(firstMismatch(got, expected)).toBe(-1);
      return Array.from(got);
    };
    const e = check('model.embed_tokens.weight');
    expect(e.some((x) => x !== 0)).toBe(true);
    const last = graph.constants.filter((c) => c.constant!.location.startsWith('external:')).at(-1)!;
    check(last.name);
  });
});

describe('external data errors', () => {
  const fp16Dir = path.dirname(FP16_MODEL);

  it('missing data file: import works (no bytes read), load names the file and tensor', () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'missing-'));
    const file = path.join(dir, 'model.onnx');
    fs.copyFileSync(FP16_MODEL, file);
    const { graph, info } = importOnnx(file);
    expect(info.externalFiles).toEqual([
      { location: 'model.onnx.data', path: path.join(dir, 'model.onnx.data'), bytesReferenced: 2_130_080, exists: false },
    ]);
    const { err, line } = fhecError(() => graph.constants.find((c) => c.name === 'model.embed_tokens.weight')!.constant!.load());
    expect(err.where.file).toBe(file);
    expect(line).toContain(path.join(dir, 'model.onnx.data'));
    expect(line).toContain("tensor 'model.embed_tokens.weight'");
    expect(line).toContain('is missing');
  });

  it('data file too short', () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'short-'));
    const file = path.join(dir, 'model.onnx');
    fs.copyFileSync(FP16_MODEL, file);
    const data = fs.readFileSync(path.join(fp16Dir, 'model.onnx.data'));
    fs.writeFileSync(path.join(dir, 'model.onnx.data'), data.subarray(0, 1_000_000));
    // Checked against the file's size at import (so `inspect` reports it too), before any weight is read.
    const { line } = fhecError(() => importOnnx(file));
    expect(line).toContain(file);
    expect(line).toContain("tensor 'model.embed_tokens.weight'");
    expect(line).toMatch(/too short.*0\.\.1024000.*1000000/);
  });

  for (const [what, location] of [['escaping ../', '../outside.data'], ['absolute', '/etc/passwd']] as const) {
    it(`${what} location is rejected at import`, () => {
      const file = writeModel('escape.onnx', {
        initializer: [{
          name: 'w', dims: [2], dataType: 1, dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
          externalData: [{ key: 'location', value: location }, { key: 'offset', value: '0' }, { key: 'length', value: '8' }],
        }],
        output: [floatOutput('w')],
      });
      const { err, line } = fhecError(() => importOnnx(file));
      expect(err.where.file).toBe(file);
      expect(line).toContain("tensor 'w'");
      expect(line).toContain(location);
    });
  }
});

function floatOutput(name: string): OnnxTypes.IValueInfoProto {
  return { name, type: { tensorType: { elemType: 1 } } };
}

/** Writes a ModelProto with the given graph into the temp folder. */
function writeModel(name: string, graph: OnnxTypes.IGraphProto, opset = 17): string {
  const file = path.join(tmp, name);
  const m = onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: '', version: opset }], graph: { name: 'g', ...graph } });
  fs.writeFileSync(file, onnx.ModelProto.encode(m).finish());
  return file;
}

describe('bad files', () => {
  it('random bytes', () => {
    let seed = 12345;
    const bytes = Buffer.alloc(4096, 0).map(() => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 24));
    const file = path.join(tmp, 'random.onnx');
    fs.writeFileSync(file, bytes);
    const { err, line } = fhecError(() => importOnnx(file));
    expect(err.where.file).toBe(file);
    expect(line).toMatch(/not an ONNX file|truncated or corrupt/);
  });

  it('a text file decodes to no graph', () => {
    const file = path.join(tmp, 'text.onnx');
    fs.writeFileSync(file, 'hello');
    expect(fhecError(() => importOnnx(file)).line).toMatch(/text\.onnx: not an ONNX file/);
  });

  it('truncated copy of a shared model', () => {
    const file = path.join(tmp, 'truncated.onnx');
    fs.writeFileSync(file, fs.readFileSync(model('A_nocache_opset14')).subarray(0, 300_000));
    const { err, line } = fhecError(() => importOnnx(file));
    expect(err.where.file).toBe(file);
    expect(line).toContain('truncated or corrupt ONNX file');
  });

  it('missing file', () => {
    const file = path.join(tmp, 'nope.onnx');
    expect(fhecError(() => importOnnx(file)).line).toBe(`${file}: file not found`);
  });

  it('unsupported dtype of an initializer and of a graph input', () => {
    const f1 = writeModel('string-init.onnx', {
      initializer: [{ name: 'names', dims: [1], dataType: 8, stringData: [Buffer.from('x')] }],
      output: [floatOutput('names')],
    });
    const e1 = fhecError(() => importOnnx(f1));
    expect(e1.line).toBe(`${f1}: tensor 'names': unsupported dtype string`);
    const f2 = writeModel('fp8-input.onnx', {
      input: [{ name: 'x8', type: { tensorType: { elemType: 17 } } }],
      node: [{ opType: 'Identity', input: ['x8'], output: ['y'] }],
      output: [floatOutput('y')],
    });
    const e2 = fhecError(() => importOnnx(f2));
    expect(e2.err.where.file).toBe(f2);
    expect(e2.line).toContain("unsupported dtype float8e4m3fn of graph input 'x8'");
  });

  it('a model with an If node', () => {
    const branch = (v: number): OnnxTypes.IGraphProto => ({
      name: 'branch',
      node: [{ opType: 'Constant', output: ['c'], attribute: [{ name: 'value_float', type: 1, f: v }] }],
      output: [floatOutput('c')],
    });
    const file = writeModel('if.onnx', {
      input: [{ name: 'cond', type: { tensorType: { elemType: 9, shape: { dim: [] } } } }],
      node: [{
        name: 'choose', opType: 'If', input: ['cond'], output: ['y'],
        attribute: [{ name: 'then_branch', type: 5, g: branch(1) }, { name: 'else_branch', type: 5, g: branch(2) }],
      }],
      output: [floatOutput('y')],
    });
    const { err, line } = fhecError(() => importOnnx(file));
    expect(err.where).toMatchObject({ file, node: 'choose (If)' });
    expect(line).toContain('subgraph op If is not supported');
  });

  it('a node reading an undefined value', () => {
    const file = writeModel('undef.onnx', {
      node: [{ name: 'n0', opType: 'Relu', input: ['ghost'], output: ['y'] }],
      output: [floatOutput('y')],
    });
    expect(fhecError(() => importOnnx(file)).line).toBe(`${file}: node n0 (Relu): input 0 'ghost' is not defined in the graph`);
  });
});

describe('graph details', () => {
  it('Constant node forms, attributes of every kind, generated names, optional inputs, value_info', () => {
    const file = writeModel('details.onnx', {
      input: [
        { name: 'x', type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 2 }, { dimParam: 'n' }, {}] } } } },
        { name: 'noshape', type: { tensorType: { elemType: 7 } } },
      ],
      node: [
        { opType: 'Constant', output: ['cf'], attribute: [{ name: 'value_float', type: 1, f: 1.5 }] },
        { opType: 'Constant', output: ['cfs'], attribute: [{ name: 'value_floats', type: 6, floats: [1, 2.5] }] },
        { opType: 'Constant', output: ['ci'], attribute: [{ name: 'value_int', type: 2, i: -7 }] },
        { opType: 'Constant', output: ['cis'], attribute: [{ name: 'value_ints', type: 7, ints: [3, 2 ** 40] }] },
        { opType: 'Constant', output: ['ct'], attribute: [{ name: 'value', type: 4, t: { dims: [2], dataType: 6, int32Data: [5, -6] } }] },
        {
          opType: 'Custom', domain: 'ai.onnx', input: ['x', '', 'cf'], output: ['y', '', 'z'],
          attribute: [
            { name: 'i', type: 2, i: 42 }, { name: 'f', type: 1, f: 0.1 }, { name: 's', type: 3, s: Buffer.from('héllo') },
            { name: 'is', type: 7, ints: [1, -2] }, { name: 'fs', type: 6, floats: [0.5] },
            { name: 'ss', type: 8, strings: [Buffer.from('a'), Buffer.from('b')] },
            { name: 't', type: 4, t: { dims: [], dataType: 11, doubleData: [Math.PI] } },
          ],
        },
        { name: 'cast', opType: 'Cast', input: ['y'], output: ['w'], attribute: [{ name: 'to', type: 2, i: 10 }] },
        { opType: 'Shape', input: ['w'], output: ['s'] },
      ],
      valueInfo: [{ name: 'y', type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 2 }] } } } }],
      output: [{ name: 'w' }, { name: 's', type: { tensorType: { elemType: 7 } } }, floatOutput('z')],
    });
    const { graph, info } = importOnnx(file);
    verifyGraph(graph);
    expect(graph.inputs.map(sig)).toEqual(['x:float32[2,n,]', 'noshape:int64[?]']);
    expect(graph.inputs[0]!.shape).toEqual([2, 'n', null]);
    expect(graph.inputs[1]!.shape).toBeUndefined();
    expect(info.constantNodeCount).toBe(5);
    const c = (n: string) => {
      const t = graph.constants.find((v) => v.name === n)!.constant!.load();
      return [t.dtype, t.dims, Array.from(t.data)];
    };
    expect(c('cf')).toEqual(['float32', [], [1.5]]);
    expect(c('cfs')).toEqual(['float32', [2], [1, 2.5]]);
    expect(c('ci')).toEqual(['int64', [], [-7]]);
    expect(c('cis')).toEqual(['int64', [2], [3, 2 ** 40]]);
    expect(c('ct')).toEqual(['int32', [2], [5, -6]]);
    const [custom, cast, shape] = graph.nodes;
    expect([custom!.name, custom!.domain, cast!.name, shape!.name]).toEqual(['Custom_5', '', 'cast', 'Shape_7']);
    expect(custom!.inputs.map((v) => v?.name ?? null)).toEqual(['x', null, 'cf']);
    expect(custom!.outputs.length).toBe(3); // the omitted middle output gets a placeholder value
    expect(custom!.outputs[1]!.name).toMatch(/^Custom_5\/unused_output_/);
    const { t, ...plain } = custom!.attrs;
    expect(plain).toEqual({
      i: { kind: 'int', value: 42 }, f: { kind: 'float', value: Math.fround(0.1) }, s: { kind: 'string', value: 'héllo' },
      is: { kind: 'ints', value: [1, -2] }, fs: { kind: 'floats', value: [0.5] }, ss: { kind: 'strings', value: ['a', 'b'] },
    });
    expect(t!.kind === 'tensor' && Array.from(t.value.load().data)).toEqual([Math.PI]);
    // value_info shape applied; dtypes inferred where the file gives none.
    expect(sig(custom!.outputs[0]!)).toBe('y:float32[2]');
    expect(sig(cast!.outputs[0]!)).toBe('w:float16[?]');
    expect(sig(shape!.outputs[0]!)).toBe('s:int64[?]');
    expect(graph.outputs.map((v) => v.name)).toEqual(['w', 's', 'z']);
  });

  it('an initializer also listed as a graph input is a constant, not an input', () => {
    const file = writeModel('init-input.onnx', {
      input: [floatOutput('x'), floatOutput('w')],
      initializer: [{ name: 'w', dims: [1], dataType: 1, floatData: [3] }],
      node: [{ opType: 'Add', input: ['x', 'w'], output: ['y'] }],
      output: [floatOutput('y')],
    });
    const { graph } = importOnnx(file);
    expect(graph.inputs.map((v) => v.name)).toEqual(['x']);
    expect(graph.constants.map((v) => v.name)).toEqual(['w']);
  });
});

describe('TensorProto storage forms', () => {
  const ctx = () => ({ file: path.join(tmp, 'x.onnx'), dir: tmp });
  /** Encode and decode through protobuf, so 64-bit fields arrive as Long, as from a real file. */
  const decode = (p: OnnxTypes.ITensorProto) => {
    const proto = onnx.TensorProto.decode(onnx.TensorProto.encode(onnx.TensorProto.create(p)).finish());
    const t = OnnxTensor.fromProto(proto, ctx()).load();
    return { dtype: t.dtype, dims: [...t.dims], data: Array.from(t.data) };
  };
  const le = (n: number, size: number, put: (dv: DataView, i: number) => void) => {
    const dv = new DataView(new ArrayBuffer(n * size));
    for (let i = 0; i < n; i++) put(dv, i);
    return new Uint8Array(dv.buffer);
  };

  it('typed fields', () => {
    expect(decode({ name: 'f', dims: [2, 2], dataType: 1, floatData: [1, -2.5, 3e38, 1e-40] })).toEqual({
      dtype: 'float32', dims: [2, 2], data: [1, -2.5, Math.fround(3e38), Math.fround(1e-40)],
    });
    expect(decode({ dims: [2], dataType: 11, doubleData: [0.1, -1e300] }).data).toEqual([0.1, -1e300]);
    expect(decode({ dims: [3], dataType: 7, int64Data: [-1, 2 ** 40 + 3, -(2 ** 52)] }).data).toEqual([-1, 2 ** 40 + 3, -(2 ** 52)]);
    expect(decode({ dims: [2], dataType: 6, int32Data: [-(2 ** 31), 2 ** 31 - 1] }).data).toEqual([-(2 ** 31), 2 ** 31 - 1]);
    // float16 / bfloat16 bit patterns one per int32: 1, -2, 65504 (max), 2^-24 (smallest subnormal), -0, inf
    expect(decode({ dims: [6], dataType: 10, int32Data: [0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000, 0x7c00] }).data).toEqual([
      1, -2, 65504, 2 ** -24, -0, Infinity,
    ]);
    expect(decode({ dims: [3], dataType: 16, int32Data: [0x3f80, 0x4049, 0xc2f7] }).data).toEqual([1, 3.140625, -123.5]);
    expect(decode({ dims: [3], dataType: 9, int32Data: [1, 0, 1] })).toEqual({ dtype: 'bool', dims: [3], data: [1, 0, 1] });
    expect(decode({ dims: [2], dataType: 3, int32Data: [-128, 127] }).data).toEqual([-128, 127]);
    expect(decode({ dims: [2], dataType: 2, int32Data: [0, 255] }).data).toEqual([0, 255]);
    expect(decode({ dims: [2], dataType: 4, int32Data: [65535, 1] }).data).toEqual([65535, 1]);
    expect(decode({ dims: [2], dataType: 5, int32Data: [-32768, 7] }).data).toEqual([-32768, 7]);
    expect(decode({ dims: [2], dataType: 12, uint64Data: [4294967295, 0] }).data).toEqual([4294967295, 0]);
    expect(decode({ dims: [1], dataType: 13, uint64Data: [2 ** 53] }).data).toEqual([2 ** 53]);
  });

  it('raw_data, little-endian, every dtype', () => {
    const cases: [number, string, number[], number, (dv: DataView, i: number, v: number) => void][] = [
      [1, 'float32', [1.5, -0.25, 3], 4, (dv, i, v) => dv.setFloat32(i * 4, v, true)],
      [11, 'float64', [Math.E, -1e-300], 8, (dv, i, v) => dv.setFloat64(i * 8, v, true)],
      [7, 'int64', [-5, 2 ** 50, 0], 8, (dv, i, v) => dv.setBigInt64(i * 8, BigInt(v), true)],
      [13, 'uint64', [2 ** 60, 1], 8, (dv, i, v) => dv.setBigUint64(i * 8, BigInt(v), true)],
      [6, 'int32', [-(2 ** 31), 17], 4, (dv, i, v) => dv.setInt32(i * 4, v, true)],
      [12, 'uint32', [2 ** 32 - 1, 9], 4, (dv, i, v) => dv.setUint32(i * 4, v, true)],
      [5, 'int16', [-300, 300], 2, (dv, i, v) => dv.setInt16(i * 2, v, true)],
      [4, 'uint16', [65535, 2], 2, (dv, i, v) => dv.setUint16(i * 2, v, true)],
      [3, 'int8', [-128, 5], 1, (dv, i, v) => dv.setInt8(i, v)],
      [2, 'uint8', [200, 1], 1, (dv, i, v) => dv.setUint8(i, v)],
      [9, 'bool', [1, 0, 1], 1, (dv, i, v) => dv.setUint8(i, v)],
    ];
    for (const [code, dtype, values, size, put] of cases) {
      const raw = le(values.length, size, (dv, i) => put(dv, i, values[i]!));
      expect(decode({ name: dtype, dims: [values.length], dataType: code, rawData: raw })).toEqual({ dtype, dims: [values.length], data: values });
    }
    // float16 and bfloat16 as bit patterns, decoded independently (Float16Array; bf16 = top half of an f32).
    const halves = [0x3c00, 0x3555, 0xfbff, 0x0200, 0x7e00];
    const h = decode({ dims: [5], dataType: 10, rawData: le(5, 2, (dv, i) => dv.setUint16(i * 2, halves[i]!, true)) }).data;
    expect(h).toEqual(Array.from(new Float16Array(Uint16Array.from(halves).buffer)));
    const bf = [0x3f80, 0xbfc0, 0x7f80, 0x0001];
    const b = decode({ dims: [2, 2], dataType: 16, rawData: le(4, 2, (dv, i) => dv.setUint16(i * 2, bf[i]!, true)) }).data;
    expect(b).toEqual(Array.from(new Float32Array(Uint32Array.from(bf, (x) => x << 16).buffer)));
  });

  it('scalars and zero-element tensors', () => {
    expect(decode({ dims: [], dataType: 1, rawData: le(1, 4, (dv) => dv.setFloat32(0, 2, true)) })).toEqual({ dtype: 'float32', dims: [], data: [2] });
    expect(decode({ dims: [0, 3], dataType: 1 })).toEqual({ dtype: 'float32', dims: [0, 3], data: [] });
    expect(decode({ dims: [0], dataType: 7, rawData: new Uint8Array(0) })).toEqual({ dtype: 'int64', dims: [0], data: [] });
  });

  it('size mismatches and unsupported dtypes name the tensor', () => {
    const bad = (p: OnnxTypes.ITensorProto) => fhecError(() => decode(p)).line;
    expect(bad({ name: 'r', dims: [3], dataType: 1, rawData: new Uint8Array(8) })).toContain("tensor 'r': 8 bytes of raw_data, but float32 [3] needs 12");
    expect(bad({ name: 'f', dims: [3], dataType: 1, floatData: [1] })).toContain("tensor 'f': holds 1 values");
    expect(bad({ name: 'c', dims: [1], dataType: 14, floatData: [1, 2] })).toContain("tensor 'c': unsupported dtype complex64");
    expect(bad({ name: 'i4', dims: [2], dataType: 22, rawData: new Uint8Array(1) })).toContain("tensor 'i4': unsupported dtype int4");
  });

  it('external data at an offset, read only on load', () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'ext-'));
    const values = [0.5, -1, 2 ** -10];
    const bytes = le(3, 4, (dv, i) => dv.setFloat32(i * 4, values[i]!, true));
    fs.writeFileSync(path.join(dir, 'w.bin'), Buffer.concat([Buffer.alloc(100, 0xff), bytes]));
    const proto = onnx.TensorProto.create({
      name: 'w', dims: [3], dataType: 1, dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [{ key: 'location', value: 'w.bin' }, { key: 'offset', value: '100' }, { key: 'length', value: '12' }],
    });
    const t = OnnxTensor.fromProto(proto, { file: path.join(dir, 'm.onnx'), dir });
    expect(t.location).toBe('external:w.bin@100+12');
    fs.writeFileSync(path.join(dir, 'w.bin'), Buffer.concat([Buffer.alloc(100, 0xff), bytes])); // still lazy: rewrite is seen
    expect(Array.from(t.load().data)).toEqual(values);
    const wrongLength = onnx.TensorProto.create({ ...proto, externalData: [{ key: 'location', value: 'w.bin' }, { key: 'length', value: '10' }] });
    expect(fhecError(() => OnnxTensor.fromProto(wrongLength, { file: 'm.onnx', dir })).line).toContain("tensor 'w': external data length is 10");
  });

  it('a Constant node\'s tensor stays a lazy OnnxTensor, inline', () => {
    const { graph } = importOnnx(model('A_nocache_opset14'));
    const c = graph.constants.find((v) => v.name === '/model/Constant_output_0')!;
    expect(c.constant).toBeInstanceOf(OnnxTensor);
    expect(c.constant!.location).toBe('inline');
    expect(c.constant).not.toBeInstanceOf(MaterializedTensor);
  });
});

describe('readTensorProtoFile on ONNX node tests', () => {
  const pb = (t: string, f: string) => path.join(NODE_TESTS, t, 'test_data_set_0', f);

  it('test_add_bcast: dims and dtypes match the model, output = input_0 + input_1', () => {
    const { graph } = importOnnx(path.join(NODE_TESTS, 'test_add_bcast/model.onnx'));
    const [a, b, y] = [pb('test_add_bcast', 'input_0.pb'), pb('test_add_bcast', 'input_1.pb'), pb('test_add_bcast', 'output_0.pb')].map(readTensorProtoFile);
    expect([a!.name, b!.name, y!.name]).toEqual([graph.inputs[0]!.name, graph.inputs[1]!.name, graph.outputs[0]!.name]);
    expect(a!.tensor.dims).toEqual(graph.inputs[0]!.shape);
    expect(b!.tensor.dims).toEqual(graph.inputs[1]!.shape);
    expect(y!.tensor.dims).toEqual(graph.outputs[0]!.shape);
    expect([a!.tensor.dtype, b!.tensor.dtype, y!.tensor.dtype]).toEqual(['float32', 'float32', 'float32']);
    const n = b!.tensor.size;
    const sum = a!.tensor.data.map((x, i) => Math.fround(x + b!.tensor.data[i % n]!));
    expect(firstMismatch(y!.tensor.data, sum)).toBe(-1);
  });

  it('test_cast_FLOAT_to_FLOAT16: the float16 output is the input rounded to half', () => {
    const x = readTensorProtoFile(pb('test_cast_FLOAT_to_FLOAT16', 'input_0.pb')).tensor;
    const y = readTensorProtoFile(pb('test_cast_FLOAT_to_FLOAT16', 'output_0.pb')).tensor;
    expect([x.dtype, y.dtype]).toEqual(['float32', 'float16']);
    expect(y.dims).toEqual(x.dims);
    expect(firstMismatch(y.data, Float16Array.from(x.data))).toBe(-1);
  });

  it('bool and int64 tensors (test_where_example), zero-element (test_constantofshape_int_shape_zero)', () => {
    const cond = readTensorProtoFile(pb('test_where_example', 'input_0.pb')).tensor;
    expect(cond.dtype).toBe('bool');
    expect(cond.data.every((v) => v === 0 || v === 1)).toBe(true);
    const shape = readTensorProtoFile(pb('test_constantofshape_int_shape_zero', 'input_0.pb')).tensor;
    expect([shape.dtype, Array.from(shape.data)]).toEqual(['int64', [0]]);
    const out = readTensorProtoFile(pb('test_constantofshape_int_shape_zero', 'output_0.pb')).tensor;
    expect([out.dims, out.size]).toEqual([[0], 0]);
  });

  it('a bad .pb file is a FhecError naming it', () => {
    const file = path.join(tmp, 'bad.pb');
    fs.writeFileSync(file, Buffer.from([0x0a, 0xff, 0xff, 0xff]));
    const { err } = fhecError(() => readTensorProtoFile(file));
    expect(err.where.file).toBe(file);
  });
});
