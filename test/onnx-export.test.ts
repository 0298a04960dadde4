// ONNX export: round trips through our importer, onnxruntime running what we wrote (inline and
// external data), and a Llama-3-8B-shaped model written with sparse external data without
// allocating its 16 GB of weights.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeclaredTensor } from '../compiler/onnx/declared-tensor.js';
import { exportOnnx } from '../compiler/onnx/export.js';
import { importOnnx } from '../compiler/onnx/import.js';
import { onnx } from '../compiler/onnx/proto.js';
import { OnnxTensor } from '../compiler/onnx/tensor-proto.js';
import type { DType } from '../ir/dtype.js';
import { FhecError } from '../ir/errors.js';
import { attr, GraphBuilder } from '../ir/graph/builder.js';
import { MaterializedTensor } from '../ir/graph/types.js';
import type { AttrValue, Graph, LazyTensor, Value } from '../ir/graph/types.js';
import { verifyGraph } from '../ir/graph/verify.js';
import { Tensor } from '../ir/tensor.js';

import { MODELS } from './helpers/shared.js';
const A14 = path.join(MODELS, 'A_nocache_opset14.onnx');
const FP16_DIR = path.join(MODELS, 'ortgenai-tiny-llama-fp16');

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-onnx-export-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function firstMismatch(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return i;
  return -1;
}

const sig = (v: Value) => `${v.name}:${v.dtype}[${v.shape?.map(String).join(',') ?? '?'}]`;

function plainAttr(a: AttrValue): unknown {
  if (a.kind !== 'tensor') return a;
  const t = a.value.load();
  return { kind: 'tensor', dtype: t.dtype, dims: t.dims, data: Array.from(t.data) };
}

/** Everything about a graph's structure, as plain data (weights by dtype and dims only). */
function structure(g: Graph) {
  return {
    opsets: g.opsets,
    inputs: g.inputs.map(sig),
    outputs: g.outputs.map(sig),
    constants: g.constants.map((c) => `${c.name}:${c.dtype}[${c.constant!.dims.join(',')}]`),
    nodes: g.nodes.map((n) => ({
      name: n.name, op: n.op, domain: n.domain,
      inputs: n.inputs.map((v) => v?.name ?? null),
      outputs: n.outputs.map(sig),
      attrs: Object.fromEntries(Object.entries(n.attrs).map(([k, a]) => [k, plainAttr(a)])),
    })),
  };
}

function expectSameWeights(a: Graph, b: Graph): void {
  expect(b.constants.length).toBe(a.constants.length);
  a.constants.forEach((c, i) => {
    const x = c.constant!.load();
    const y = b.constants[i]!.constant!.load();
    expect([y.dtype, y.dims]).toEqual([x.dtype, x.dims]);
    expect(firstMismatch(x.data, y.data), c.name).toBe(-1);
  });
}

/** Counts load() calls of a wrapped lazy tensor. */
class CountingTensor implements LazyTensor {
  loads = 0;
  constructor(private readonly inner: LazyTensor) {}
  get dtype() { return this.inner.dtype; }
  get dims() { return this.inner.dims; }
  get location() { return this.inner.location; }
  get byteLength() { return this.inner.byteLength; }
  load(): Tensor {
    this.loads++;
    return this.inner.load();
  }
}

type RefTensor = { dims: number[]; dtype: string; data: number[] };

function ortInput(t: RefTensor): ort.Tensor {
  if (t.dtype === 'int64') return new ort.Tensor('int64', BigInt64Array.from(t.data, (v) => BigInt(v)), t.dims);
  if (t.dtype === 'float16') return new ort.Tensor('float16', new Uint16Array(Float16Array.from(t.data).buffer), t.dims);
  return new ort.Tensor('float32', Float32Array.from(t.data), t.dims);
}

async function runOrt(file: string, inputs: Record<string, RefTensor>): Promise<ort.InferenceSession.OnnxValueMapType> {
  const session = await ort.InferenceSession.create(file);
  try {
    return await session.run(Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, ortInput(v)])));
  } finally {
    await session.release();
  }
}

/** ORT returns float16 as raw bits (Uint16Array) or as Float16Array, depending on version. */
function halfValues(data: unknown): Float16Array {
  if (data instanceof Float16Array) return data;
  const u = data as Uint16Array;
  return new Float16Array(u.buffer, u.byteOffset, u.length);
}

describe('round trip through our importer', () => {
  it('A_nocache_opset14, inline initializers: same structure and weights', () => {
    const a = importOnnx(A14).graph;
    const file = path.join(tmp, 'a14.onnx');
    const r = exportOnnx(a, file);
    expect(r.externalBytes).toBe(0);
    expect(fs.statSync(file).size).toBe(r.modelBytes);
    const { graph: b, info } = importOnnx(file);
    verifyGraph(b);
    expect(structure(b)).toEqual(structure(a));
    expectSameWeights(a, b);
    expect(info).toMatchObject({ producerName: 'fhec', irVersion: 8, opsets: { '': 14 }, constantNodeCount: 0 });
    // Constant nodes came back as initializers: 21 weights + 188 folded Constant values.
    expect(info.parameterCount).toBe(131_392 + a.constants.slice(21).reduce((s, c) => s + c.constant!.dims.reduce((x, y) => x * y, 1), 0));
  });

  it('ortgenai fp16 with external data: 64-byte-aligned offsets, exact fp16 values', () => {
    const a = importOnnx(path.join(FP16_DIR, 'model.onnx')).graph;
    const dir = fs.mkdtempSync(path.join(tmp, 'fp16-'));
    const file = path.join(dir, 'out.onnx');
    const r = exportOnnx(a, file, { externalData: { location: 'weights.bin' } });
    const { graph: b, info } = importOnnx(file);
    verifyGraph(b);
    expect(structure(b)).toEqual(structure(a));
    expectSameWeights(a, b);
    expect(info.opsets).toEqual({ '': 14, 'com.microsoft': 1 });
    const size = fs.statSync(path.join(dir, 'weights.bin')).size;
    expect(size).toBe(r.externalBytes);
    const externalSum = b.constants.reduce((s, c) => s + (c.constant!.location === 'inline' ? 0 : c.constant!.byteLength), 0);
    expect(externalSum).toBeGreaterThan(0.99 * info.parameterBytes);
    expect(info.externalFiles).toEqual([
      { location: 'weights.bin', path: path.join(dir, 'weights.bin'), bytesReferenced: externalSum, exists: true, size },
    ]);
    let end = 0;
    for (const c of b.constants) {
      const ref = (c.constant as OnnxTensor).external;
      // Small tensors (shape constants) stay inline; onnxruntime refuses external ones in shape inference.
      expect(ref === undefined, c.name).toBe(c.constant!.byteLength < 1024);
      if (!ref) continue;
      expect(ref.offset % 64).toBe(0);
      expect(ref.offset).toBeGreaterThanOrEqual(end);
      expect(ref.offset - end).toBeLessThan(64);
      end = ref.offset + ref.length;
    }
    expect(end).toBe(size);
  });

  it('int64 extremes: INT64_MAX (a common Slice end) survives decode and re-encode', () => {
    const b = new GraphBuilder();
    const big = b.constant('ends', Tensor.from('int64', [3], [2 ** 63, -(2 ** 63), 2 ** 53]));
    b.output(big);
    const file = path.join(tmp, 'int64.onnx');
    exportOnnx(b.graph, file);
    const raw = onnx.ModelProto.decode(fs.readFileSync(file)).graph!.initializer![0]!.rawData!;
    const v = new BigInt64Array(new Uint8Array(raw).buffer);
    expect(Array.from(v)).toEqual([2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n]);
  });

  it('every dtype and attribute kind from a built graph', () => {
    const b = new GraphBuilder('kinds', { '': 17, 'com.example': 2 });
    const x = b.input('x', 'float32', [2, 'n', null]);
    const dtypes: [DType, number[]][] = [
      ['float32', [1.5, -2]], ['float16', [65504, 2 ** -24]], ['bfloat16', [3.140625, -0]], ['float64', [Math.PI, 1e-300]],
      ['int8', [-128, 127]], ['uint8', [0, 255]], ['int16', [-32768, 5]], ['uint16', [65535, 0]],
      ['int32', [-(2 ** 31), 7]], ['uint32', [2 ** 32 - 1, 1]], ['int64', [-(2 ** 53), 2 ** 40]], ['uint64', [2 ** 53, 3]], ['bool', [1, 0]],
    ];
    const consts = dtypes.map(([d, v]) => b.constant(`c_${d}`, Tensor.from(d, [2], v)));
    const empty = b.constant('empty', Tensor.zeros('float32', [0, 4]));
    const y = b.op1('Custom', [x, null, ...consts, empty], 'float16', [2], {
      i: attr.int(-3), f: attr.float(0.25), s: attr.string('ünïcode'), is: attr.ints([1, 2 ** 40]), fs: attr.floats([0.5, -1]),
      ss: attr.strings(['a', '']), t: attr.tensor(Tensor.from('int64', [3], [1, -2, 3])),
    }, { domain: 'com.example', name: 'custom' });
    b.output(y);
    const file = path.join(tmp, 'kinds.onnx');
    exportOnnx(b.graph, file);
    const back = importOnnx(file).graph;
    expect(structure(back)).toEqual(structure(b.graph));
    expectSameWeights(b.graph, back);
    expect(back.constants.map((c) => Array.from(c.constant!.load().data)).slice(0, dtypes.length)).toEqual(dtypes.map(([, v]) => v));
  });
});

describe('onnxruntime runs what we write', () => {
  it('A_nocache_opset14 re-encoded from decoded weights reproduces the reference logits', async () => {
    const g = importOnnx(A14).graph;
    // Materialize every constant so the writer encodes from our decoded values, not the file's bytes.
    for (const c of g.constants) c.constant = new MaterializedTensor(c.constant!.load());
    const file = path.join(tmp, 'a14-materialized.onnx');
    exportOnnx(g, file);
    const ref = JSON.parse(fs.readFileSync(path.join(MODELS, 'A_nocache_opset14.ref.json'), 'utf8'));
    const step = ref.cases.find((c: { name: string }) => c.name === 'prompt16').steps[0];
    const out = await runOrt(file, step.inputs);
    const logits = out['logits']!;
    expect(logits.dims).toEqual(step.outputs.logits.dims);
    const want = Float32Array.from(step.outputs.logits.data as number[]);
    expect(firstMismatch(logits.data as Float32Array, want)).toBe(-1);
  });

  it('A_kvcache_opset23 (written as IR 11) reproduces its decode-step reference', async () => {
    const g = importOnnx(path.join(MODELS, 'A_kvcache_opset23.onnx')).graph;
    const file = path.join(tmp, 'a23.onnx');
    exportOnnx(g, file);
    expect(Number(onnx.ModelProto.decode(fs.readFileSync(file)).irVersion)).toBe(11);
    const ref = JSON.parse(fs.readFileSync(path.join(MODELS, 'A_kvcache_opset23.ref.json'), 'utf8'));
    const step = ref.cases.find((c: { name: string }) => c.name === 'decode_prefill12_plus4').steps[2];
    const out = await runOrt(file, step.inputs);
    for (const name of ['logits', 'present.1.key']) {
      expect(out[name]!.dims).toEqual(step.outputs[name].dims);
      expect(firstMismatch(out[name]!.data as Float32Array, Float32Array.from(step.outputs[name].data as number[])), name).toBe(-1);
    }
  });

  it('ortgenai fp16 written with external data reproduces its reference', async () => {
    const g = importOnnx(path.join(FP16_DIR, 'model.onnx')).graph;
    const dir = fs.mkdtempSync(path.join(tmp, 'fp16-ort-'));
    const file = path.join(dir, 'model.onnx');
    exportOnnx(g, file, { externalData: { location: 'model.data' } });
    const ref = JSON.parse(fs.readFileSync(path.join(FP16_DIR, 'ref.json'), 'utf8'));
    const out = await runOrt(file, ref.inputs);
    const logits = halfValues(out['logits']!.data);
    expect(out['logits']!.dims).toEqual([1, 4, 32000]);
    const last = logits.subarray(3 * 32000);
    expect(firstMismatch(last, Float16Array.from(ref.outputs.logits_last.data as number[]))).toBe(-1);
    let best = 0;
    for (let i = 1; i < last.length; i++) if (last[i]! > last[best]!) best = i;
    expect(best).toBe(25190);
    const present = halfValues(out['present.1.value']!.data);
    expect(firstMismatch(present, Float16Array.from(ref.outputs['present.1.value'].data as number[]))).toBe(-1);
  });
});

/** A Llama-3-8B-shaped graph whose weights only declare dtype and dims (fp16 matrices, fp32 norms). */
function llama8b(): { graph: Graph; params: number } {
  const [vocab, hidden, layers, kv, ffn] = [128_256, 4096, 32, 1024, 14_336];
  const b = new GraphBuilder('llama3-8b-shape', { '': 23 });
  let params = 0;
  const w = (name: string, dtype: DType, dims: number[]) => {
    params += dims.reduce((x, y) => x * y, 1);
    return b.constant(name, new DeclaredTensor(dtype, dims, name));
  };
  const ids = b.input('input_ids', 'int64', [1, 'sequence_length']);
  const act = (): [DType, (string | number)[]] => ['float16', [1, 'sequence_length', hidden]];
  let h = b.op1('Gather', [w('model.embed_tokens.weight', 'float16', [vocab, hidden]), ids], ...act());
  const norm = (x: Value, name: string) =>
    b.op1('RMSNormalization', [x, w(name, 'float32', [hidden])], ...act(), { epsilon: attr.float(1e-5) });
  const mm = (x: Value, name: string, k: number, n: number) =>
    b.op1('MatMul', [x, w(name, 'float16', [k, n])], 'float16', [1, 'sequence_length', n]);
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}`;
    const x = norm(h, `${p}.input_layernorm.weight`);
    const q = mm(x, `${p}.self_attn.q_proj.weight`, hidden, hidden);
    const k = mm(x, `${p}.self_attn.k_proj.weight`, hidden, kv);
    const v = mm(x, `${p}.self_attn.v_proj.weight`, hidden, kv);
    const a = b.op1('Attention', [q, k, v], ...act(), { q_num_heads: attr.int(32), kv_num_heads: attr.int(8), is_causal: attr.int(1) });
    h = b.op1('Add', [h, mm(a, `${p}.self_attn.o_proj.weight`, hidden, hidden)], ...act());
    const y = norm(h, `${p}.post_attention_layernorm.weight`);
    const gate = mm(y, `${p}.mlp.gate_proj.weight`, hidden, ffn);
    const silu = b.op1('Mul', [gate, b.op1('Sigmoid', [gate], 'float16')], 'float16');
    const up = mm(y, `${p}.mlp.up_proj.weight`, hidden, ffn);
    h = b.op1('Add', [h, mm(b.op1('Mul', [silu, up], 'float16'), `${p}.mlp.down_proj.weight`, ffn, hidden)], ...act());
  }
  b.output(mm(norm(h, 'model.norm.weight'), 'lm_head.weight', hidden, vocab));
  return { graph: b.graph, params };
}

describe('Llama-3-8B-shaped model with declared weights', () => {
  it('is written with a sparse external file in seconds, and imports back without reading weights', () => {
    const { graph, params } = llama8b();
    expect(params).toBe(8_030_261_248);
    const counters = graph.constants.map((c) => (c.constant = new CountingTensor(c.constant!)));
    const dir = fs.mkdtempSync(path.join(tmp, 'llama8b-'));
    const file = path.join(dir, 'model.onnx');
    const t0 = performance.now();
    const r = exportOnnx(graph, file, { externalData: { location: 'model.onnx.data', sparse: true } });
    const ms = performance.now() - t0;
    expect(ms).toBeLessThan(5000);
    expect(counters.every((c) => c.loads === 0)).toBe(true);

    const data = path.join(dir, 'model.onnx.data');
    const st = fs.statSync(data);
    expect(st.size).toBe(r.externalBytes);
    // 2 bytes per fp16 weight, 4 per fp32 norm weight (65 norms of 4096), plus < 64 bytes of padding per tensor.
    const exact = (params - 65 * 4096) * 2 + 65 * 4096 * 4;
    expect(st.size).toBeGreaterThanOrEqual(exact);
    expect(st.size - exact).toBeLessThan(64 * graph.constants.length);
    expect(st.size).toBeGreaterThan(16e9);
    expect(st.blocks * 512).toBeLessThan(1 << 20); // sparse: nothing allocated on disk
    expect(r.modelBytes).toBeLessThan(1 << 20);

    const t1 = performance.now();
    const { graph: back, info } = importOnnx(file);
    expect(performance.now() - t1).toBeLessThan(5000);
    verifyGraph(back);
    expect(info.parameterCount).toBe(params);
    expect(info.externalFiles).toEqual([
      { location: 'model.onnx.data', path: data, bytesReferenced: info.parameterBytes, exists: true, size: st.size },
    ]);
    expect(info.opsets).toEqual({ '': 23 });
    expect(info.irVersion).toBe(11);
    expect(back.nodes.length).toBe(graph.nodes.length);
    const lm = back.constants.at(-1)!;
    expect([lm.name, lm.dtype, lm.constant!.dims]).toEqual(['lm_head.weight', 'float16', [4096, 128_256]]);
    expect(lm.constant!.location).toMatch(/^external:model\.onnx\.data@\d+\+1050673152$/);
    // The sparse file reads back as zeros.
    const normW = back.constants.find((c) => c.name === 'model.norm.weight')!.constant!.load();
    expect([normW.dtype, normW.size, normW.data.every((v) => v === 0)]).toEqual(['float32', 4096, true]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('without sparse, a declared weight is a FhecError naming the tensor', () => {
    const b = new GraphBuilder();
    const x = b.input('x', 'float32', [4]);
    b.output(b.op1('Add', [x, b.constant('bias', new DeclaredTensor('float32', [4], 'bias'))], 'float32', [4]));
    const dir = fs.mkdtempSync(path.join(tmp, 'declared-'));
    for (const opts of [{}, { externalData: { location: 'w.bin' } }]) {
      let err: unknown;
      try {
        exportOnnx(b.graph, path.join(dir, 'm.onnx'), opts);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(FhecError);
      expect((err as FhecError).format()).toContain("tensor 'bias'");
    }
  });

  it('an external location outside the model folder is refused', () => {
    const b = new GraphBuilder();
    b.output(b.constant('c', Tensor.from('float32', [1], [1])));
    const file = path.join(tmp, 'escape.onnx');
    expect(() => exportOnnx(b.graph, file, { externalData: { location: '../w.bin' } })).toThrow(FhecError);
    expect(fs.existsSync(file)).toBe(false);
  });
});

describe('writer details', () => {
  it('writes a ModelProto with ir_version 8 for opset <= 18 and the declared opsets', () => {
    const b = new GraphBuilder('g', { '': 17, 'com.microsoft': 1 });
    const x = b.input('x', 'float32', ['n']);
    b.output(b.op1('Relu', [x], 'float32', ['n']));
    const file = path.join(tmp, 'plain.onnx');
    exportOnnx(b.graph, file);
    const m = onnx.ModelProto.decode(fs.readFileSync(file));
    expect(Number(m.irVersion)).toBe(8);
    expect(m.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([['', 17], ['com.microsoft', 1]]);
    expect(m.graph!.input![0]!.type!.tensorType!.shape!.dim![0]!.dimParam).toBe('n');
    expect(m.graph!.node![0]).toMatchObject({ opType: 'Relu', input: ['x'], output: [b.graph.outputs[0]!.name] });
  });
});
