// The canonical ops' reference kernels against independent references: the interpreter's ONNX
// kernels for the same computation (RMSNormalization, RotaryEmbedding, Attention-23, MatMul+Add,
// Gather, Softmax, Split, Sigmoid*Mul) on random data, plus hand-computed cases for what only the
// canonical semantics define (masked-row behaviour, 0/1 padding check). Also the shape rules, the
// node checker, the generator specializations of every shared model, and the FHE-minded folds.
import { describe, expect, it } from 'vitest';
import { importOnnx } from '../compiler/onnx/import.js';
import { FLOAT32_LOWEST } from '../ir/canonical/ops.js';
import { checkCanonicalNode } from '../ir/canonical/ops.js';
import { FhecError } from '../ir/errors.js';
import { attr } from '../ir/graph/builder.js';
import { GraphBuilder } from '../ir/graph/builder.js';
import type { AttrValue, Node } from '../ir/graph/types.js';
import { inferGraph } from '../ir/ops/infer-graph.js';
import { Tensor } from '../ir/tensor.js';
import { evalNode, runGraph } from '../runtime/reference/interpreter.js';
import { foldRmsGainPass } from '../passes/canonical/fold-rms-gain.js';
import { mergeCost } from '../passes/canonical/merge-projections.js';
import { generatorBindings } from '../passes/canonical/specialize.js';
import { maxAbsDiff } from './helpers/compare.js';
import { ALL_MODELS } from './helpers/shared.js';

function rand(dims: number[], seed: number, dtype: Tensor['dtype'] = 'float32'): Tensor {
  let s = seed >>> 0;
  const n = dims.reduce((a, d) => a * d, 1);
  return Tensor.from(dtype, dims, Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5) * 2));
}

function node(op: string, domain: string, nIn: number, nOut: number, attrs: Record<string, AttrValue> = {}, outDtype: Tensor['dtype'] = 'float32'): Node {
  const v = (name: string) => ({ name, dtype: outDtype, shape: undefined });
  return { name: `${op}_test`, op, domain, inputs: Array.from({ length: nIn }, (_, i) => v(`in${i}`)), outputs: Array.from({ length: nOut }, (_, i) => v(`out${i}`)), attrs };
}

const run = (op: string, domain: string, ins: (Tensor | null)[], attrs: Record<string, AttrValue> = {}, nOut = 1, opset?: number) =>
  evalNode(node(op, domain, ins.length, nOut, attrs), ins, opset);
const fhec = (op: string, ins: (Tensor | null)[], attrs: Record<string, AttrValue> = {}, nOut = 1) => run(op, 'fhec', ins, attrs, nOut);

describe('canonical kernels vs the ONNX kernels', () => {
  it('linear = MatMul + Add', () => {
    const x = rand([2, 3, 5], 1), w = rand([5, 7], 2), b = rand([7], 3);
    const want = run('Add', '', [run('MatMul', '', [x, w])[0]!, b])[0]!;
    expect(maxAbsDiff(fhec('linear', [x, w, b])[0]!.data, want.data)).toBeLessThanOrEqual(1e-6);
    expect(fhec('linear', [x, w])[0]!.dims).toEqual([2, 3, 7]);
  });

  it('rms_norm = RMSNormalization-23 over the last axis; no gamma = all-ones gamma', () => {
    const x = rand([2, 3, 8], 4), g = rand([8], 5);
    const eps = attr.float(1e-5);
    const want = run('RMSNormalization', '', [x, g], { epsilon: eps }, 1, 23)[0]!;
    expect(maxAbsDiff(fhec('rms_norm', [x, g], { epsilon: eps })[0]!.data, want.data)).toBeLessThanOrEqual(1e-6);
    const ones = Tensor.from('float32', [8], new Array(8).fill(1));
    expect(Array.from(fhec('rms_norm', [x], { epsilon: eps })[0]!.data)).toEqual(Array.from(fhec('rms_norm', [x, ones], { epsilon: eps })[0]!.data));
  });

  for (const [layout, interleaved, rotaryDim] of [['3-D', 0, 0], ['3-D', 1, 0], ['4-D', 0, 0], ['3-D', 0, 4]] as const) {
    it(`rope = RotaryEmbedding-23 with position_ids (${layout}, interleaved=${interleaved}, rotary_dim=${rotaryDim || 'head'})`, () => {
      const [B, S, N, H] = [2, 3, 2, 8];
      const x = layout === '3-D' ? rand([B, S, N * H], 6) : rand([B, N, S, H], 6);
      const half = (rotaryDim || H) / 2;
      const cos = rand([10, half], 7), sin = rand([10, half], 8);
      const pos = Tensor.from('int64', [B, S], [0, 4, 9, 2, 2, 7]);
      const a = { num_heads: attr.int(layout === '3-D' ? N : 0), interleaved: attr.int(interleaved), rotary_dim: attr.int(rotaryDim) };
      const want = run('RotaryEmbedding', '', [x, cos, sin, pos], { num_heads: a.num_heads, interleaved: a.interleaved, rotary_embedding_dim: attr.int(rotaryDim) }, 1, 23)[0]!;
      expect(maxAbsDiff(fhec('rope', [x, pos, cos, sin], a)[0]!.data, want.data)).toBeLessThanOrEqual(1e-6);
      expect(() => fhec('rope', [x, Tensor.from('int64', [B, S], [0, 1, 10, 0, 0, 0]), cos, sin], a)).toThrow(/position 10 is outside the cos\/sin cache \(10 rows\)/);
    });
  }

  it('attention = Attention-23 (GQA, causal offset by the past, KV cache, padding as a boolean mask)', () => {
    const [B, S, P, N, Nkv, H] = [1, 3, 4, 4, 2, 8];
    const q = rand([B, S, N * H], 9), k = rand([B, S, Nkv * H], 10), v = rand([B, S, Nkv * H], 11);
    const pk = rand([B, Nkv, P, H], 12), pv = rand([B, Nkv, P, H], 13);
    const pad = [1, 0, 1, 1, 1, 0, 1];
    const am = Tensor.from('int64', [B, P + S], pad);
    const boolMask = Tensor.from('bool', [B, 1, 1, P + S], pad);
    const scale = 1 / Math.sqrt(H);
    const want = run('Attention', '', [q, k, v, boolMask, pk, pv], { q_num_heads: attr.int(N), kv_num_heads: attr.int(Nkv), is_causal: attr.int(1), scale: attr.float(scale) }, 3, 23);
    const got = fhec('attention', [q, k, v, pk, pv, am], { num_heads: attr.int(N), kv_num_heads: attr.int(Nkv), scale: attr.float(scale), causal: attr.int(1) }, 3);
    for (let i = 0; i < 3; i++) {
      expect(got[i]!.dims).toEqual(want[i]!.dims);
      expect(maxAbsDiff(got[i]!.data, want[i]!.data), `output ${i}`).toBeLessThanOrEqual(1e-6);
    }
    expect(() => fhec('attention', [q, k, v, pk, pv, Tensor.from('int64', [B, P + S], [1, 2, 1, 1, 1, 1, 1])], { num_heads: attr.int(N), kv_num_heads: attr.int(Nkv), scale: attr.float(scale) }, 3)).toThrow(/values must be 0 or 1, got 2/);
  });

  it('attention: a row whose every key is masked averages V uniformly (the fp32 additive-mask result)', () => {
    const q = rand([1, 2, 4], 14), k = rand([1, 2, 4], 15), v = Tensor.from('float32', [1, 2, 4], [1, 2, 3, 4, 5, 6, 7, 8]);
    const am = Tensor.from('int64', [1, 2], [0, 1]);
    const y = fhec('attention', [q, k, v, null, null, am], { num_heads: attr.int(1), kv_num_heads: attr.int(1), scale: attr.float(0.5), causal: attr.int(1), mask_value: attr.float(FLOAT32_LOWEST) })[0]!;
    // Query 0 sees only key 0, which is padded: uniform over both keys. Query 1 sees key 1 only.
    expect(Array.from(y.data)).toEqual([3, 4, 5, 6, 5, 6, 7, 8]);
  });

  it('silu, swiglu (two inputs and the fused halves) = Sigmoid and Mul', () => {
    const g = rand([2, 6], 16), u = rand([2, 6], 17);
    const silu = run('Mul', '', [g, run('Sigmoid', '', [g])[0]!])[0]!;
    expect(maxAbsDiff(fhec('silu', [g])[0]!.data, silu.data)).toBeLessThanOrEqual(1e-6);
    const sw = run('Mul', '', [silu, u])[0]!;
    expect(maxAbsDiff(fhec('swiglu', [g, u])[0]!.data, sw.data)).toBeLessThanOrEqual(1e-6);
    const gu = run('Concat', '', [g, u], { axis: attr.int(-1) })[0]!;
    expect(maxAbsDiff(fhec('swiglu', [gu])[0]!.data, sw.data)).toBeLessThanOrEqual(1e-6);
  });

  it('embedding = Gather on axis 0 (negative ids count from the end); out-of-range ids are an error', () => {
    const t = rand([5, 3], 18);
    const ids = Tensor.from('int64', [2, 2], [0, 4, -1, 2]);
    expect(Array.from(fhec('embedding', [ids, t])[0]!.data)).toEqual(Array.from(run('Gather', '', [t, ids], { axis: attr.int(0) })[0]!.data));
    expect(() => fhec('embedding', [Tensor.from('int64', [1], [5]), t])).toThrow(/id 5 is outside the table \(5 rows\)/);
  });

  it('add, mul, softmax and split = Add, Mul, Softmax and Split', () => {
    const a = rand([2, 3, 4], 19), b = rand([4], 20);
    expect(Array.from(fhec('add', [a, b])[0]!.data)).toEqual(Array.from(run('Add', '', [a, b])[0]!.data));
    expect(Array.from(fhec('mul', [a, b])[0]!.data)).toEqual(Array.from(run('Mul', '', [a, b])[0]!.data));
    expect(maxAbsDiff(fhec('softmax', [a])[0]!.data, run('Softmax', '', [a], { axis: attr.int(-1) }, 1, 17)[0]!.data)).toBeLessThanOrEqual(1e-7);
    const parts = fhec('split', [a], { sizes: attr.ints([1, 3]) }, 2);
    const want = run('Split', '', [a, Tensor.from('int64', [2], [1, 3])], { axis: attr.int(-1) }, 2, 17);
    expect(parts.map((p) => p.dims)).toEqual([[2, 3, 1], [2, 3, 3]]);
    expect(parts.map((p) => Array.from(p.data))).toEqual(want.map((p) => Array.from(p.data)));
  });
});

describe('canonical shape rules and node checks', () => {
  it('infers the shapes of a small canonical graph, including attention presents', () => {
    const b = new GraphBuilder('g', { '': 17 });
    const x = b.input('x', 'float32', [1, 'seq', 16]);
    const w = b.constant('w', rand([16, 32], 1));
    const pk = b.input('pk', 'float32', [1, 2, 'past', 4]);
    const qkv = b.node('split', [b.op1('linear', [x, w], 'float32', undefined, {}, { domain: 'fhec' })], [{ dtype: 'float32' }, { dtype: 'float32' }, { dtype: 'float32' }], { sizes: attr.ints([16, 8, 8]) }, { domain: 'fhec' });
    const [q, k, v] = qkv.outputs;
    const att = b.node('attention', [q!, k!, v!, pk, pk], [{ dtype: 'float32' }, { dtype: 'float32' }, { dtype: 'float32' }], { num_heads: attr.int(4), kv_num_heads: attr.int(2), scale: attr.float(0.5) }, { domain: 'fhec' });
    inferGraph(b.graph);
    expect(q!.shape).toEqual([1, 'seq', 16]);
    expect(att.outputs[0]!.shape).toEqual([1, 'seq', 16]);
    expect(att.outputs[1]!.shape).toEqual([1, 2, null, 4]);
    b.graph.inputs[0]!.shape = [1, 3, 16];
    b.graph.inputs[1]!.shape = [1, 2, 5, 4];
    for (const n of b.graph.nodes) for (const o of n.outputs) o.shape = undefined;
    inferGraph(b.graph);
    expect(att.outputs[1]!.shape).toEqual([1, 2, 8, 4]);
  });

  it('rejects wrong head counts, unknown ops and attributes with a node-naming FhecError', () => {
    const bad = node('attention', 'fhec', 3, 1, { num_heads: attr.int(3), kv_num_heads: attr.int(2), scale: attr.float(1) });
    bad.inputs = bad.inputs.map((v) => ({ ...v!, shape: [1, 2, 12] }));
    const b = new GraphBuilder('g');
    b.graph.nodes.push(bad);
    expect(() => inferGraph(b.graph)).toThrow(/num_heads 3 must be a positive multiple of kv_num_heads 2/);
    expect(() => checkCanonicalNode(node('gelu', 'fhec', 1, 1))).toThrow(FhecError);
    expect(() => checkCanonicalNode(node('rms_norm', 'fhec', 1, 1, { epsilon: attr.float(1e-5), eps: attr.float(1) }))).toThrow(/unknown attribute 'eps'/);
    expect(() => checkCanonicalNode(node('rms_norm', 'fhec', 1, 1))).toThrow(/required attribute 'epsilon'/);
  });
});

describe('generator specializations', () => {
  for (const file of ALL_MODELS) {
    it(`binds prefill and decode dims of ${file.split('/').slice(-2).join('/')}`, () => {
      const g = importOnnx(file).graph;
      const pre = generatorBindings(g, { kind: 'prefill', sequence: 7 });
      const cache = g.inputs.some((v) => v.name.includes('past'));
      for (const [name, size] of Object.entries(pre)) expect(size, name).toBe(name.includes('batch') ? 1 : name.includes('past') ? 0 : 7);
      if (!cache) {
        expect(() => generatorBindings(g, { kind: 'decode', past: 3 })).toThrow(/decode needs a KV cache/);
        return;
      }
      const dec = generatorBindings(g, { kind: 'decode', past: 3 });
      for (const [name, size] of Object.entries(dec)) expect(size, name).toBe(name.includes('batch') ? 1 : name.includes('past') ? 3 : name.includes('total') ? 4 : 1);
      expect(Object.keys(dec).some((n) => n.includes('total'))).toBe(true);
    });
  }
});

describe('FHE-minded folds', () => {
  function normThenLinears(dtype: 'float32' | 'float64') {
    const b = new GraphBuilder('g', { '': 17 });
    const x = b.input('x', dtype, [1, 2, 4]);
    const n = b.op1('rms_norm', [x, b.constant('g', rand([4], 1, dtype))], dtype, undefined, { epsilon: attr.float(1e-6) }, { domain: 'fhec' });
    const y1 = b.op1('linear', [n, b.constant('w1', rand([4, 3], 2, dtype))], dtype, undefined, {}, { domain: 'fhec', outName: 'y1' });
    const y2 = b.op1('linear', [n, b.constant('w2', rand([4, 5], 3, dtype))], dtype, undefined, {}, { domain: 'fhec', outName: 'y2' });
    b.output(y1);
    b.output(y2);
    inferGraph(b.graph);
    return b.graph;
  }

  for (const dtype of ['float64', 'float32'] as const) {
    it(`fold-rms-gain moves the gain into both linears (${dtype}) and reports the weight rounding`, () => {
      const g = normThenLinears(dtype);
      const x = rand([1, 2, 4], 9, dtype);
      const before = runGraph(g, { x });
      const r = foldRmsGainPass.run(g, {});
      expect(r.stats).toEqual({ folded: 1, weights: 2 });
      expect(g.nodes[0]!.inputs.length).toBe(1);
      const after = runGraph(g, { x });
      for (const k of ['y1', 'y2']) expect(maxAbsDiff(after[k]!.data, before[k]!.data)).toBeLessThanOrEqual(dtype === 'float64' ? 1e-12 : 1e-6);
      if (dtype === 'float64') expect(r.error!.maxAbs).toBe(0);
      else expect(r.error!.maxAbs).toBeGreaterThan(0), expect(r.error!.maxAbs).toBeLessThan(2 ** -24);
    });
  }

  it('the merge cost model: shared input rotations against split rotations and ciphertext width', () => {
    expect(mergeCost(64, [64, 32, 32], 8192)).toEqual({ separate: 48, merged: 18 });
    expect(mergeCost(4096, [4096, 1024, 1024], 8192)).toEqual({ separate: 384, merged: 130 });
    // Outputs far wider than a ciphertext: no saving left.
    expect(mergeCost(16, [8192, 8192], 8192)).toEqual({ separate: 16, merged: 17 });
  });
});
