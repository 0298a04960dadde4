// Unit tests of the float64 reference interpreter's kernels on the tricky cases, against values
// computed by hand or by naive loops written here (independently of the kernels).

import fs from 'node:fs';
import { MODELS } from './helpers/shared.js';
import { describe, expect, it } from 'vitest';
import { importOnnx } from '../compiler/onnx/import.js';
import type { DType } from '../ir/dtype.js';
import { FhecError } from '../ir/errors.js';
import { attr, GraphBuilder } from '../ir/graph/builder.js';
import type { AttrValue, LazyTensor, Node, Value } from '../ir/graph/types.js';
import { Tensor } from '../ir/tensor.js';
import { evalNode, runGraph } from '../runtime/reference/interpreter.js';
import { isOpSupported, supportedOps } from '../runtime/reference/registry.js';

/** A detached node with placeholder values (evalNode reads only op, domain, attrs and output count). */
function node(op: string, attrs: Record<string, AttrValue> = {}, nOut = 1, domain = ''): Node {
  const n: Node = { name: `test_${op}`, op, domain, inputs: [], outputs: [], attrs };
  n.outputs = Array.from({ length: nOut }, (_, i): Value => ({ name: `out${i}`, dtype: 'float64', shape: undefined, producer: n }));
  return n;
}

const f32 = (dims: number[], v: number[]) => Tensor.from('float32', dims, v);
const f64 = (dims: number[], v: number[]) => Tensor.from('float64', dims, v);
const i64 = (dims: number[], v: number[]) => Tensor.from('int64', dims, v);

/** Deterministic pseudo-random values in [-1, 1). */
function rand(n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol = 1e-12): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    if (Math.abs(got[i]! - want[i]!) > tol) {
      throw new Error(`index ${i}: got ${got[i]}, want ${want[i]} (tol ${tol})`);
    }
  }
}

describe('broadcasting', () => {
  it('adds [2,1,3] and [4,1] into [2,4,3]', () => {
    const a = f64([2, 1, 3], [1, 2, 3, 10, 20, 30]);
    const b = f64([4, 1], [100, 200, 300, 400]);
    const [y] = evalNode(node('Add'), [a, b], 14);
    expect(y!.dims).toEqual([2, 4, 3]);
    const want: number[] = [];
    for (let i = 0; i < 2; i++) for (let j = 0; j < 4; j++) for (let k = 0; k < 3; k++) want.push(a.data[i * 3 + k]! + b.data[j]!);
    expectClose(y!.data, want);
  });

  it('Where broadcasts condition, X and Y', () => {
    const c = Tensor.from('bool', [2, 1], [1, 0]);
    const [y] = evalNode(node('Where'), [c, f32([3], [1, 2, 3]), f32([], [-1])], 16);
    expect(y!.dims).toEqual([2, 3]);
    expect(Array.from(y!.data)).toEqual([1, 2, 3, -1, -1, -1]);
  });

  it('names the node and both shapes when shapes do not broadcast', () => {
    expect(() => evalNode(node('Mul'), [f32([2, 3], rand(6, 1)), f32([4], rand(4, 2))], 14)).toThrowError(
      /\[2, 3\] and \[4\] cannot be broadcast/,
    );
    try {
      evalNode(node('Mul'), [f32([2, 3], rand(6, 1)), f32([4], rand(4, 2))], 14);
    } catch (e) {
      expect(e).toBeInstanceOf(FhecError);
      expect((e as FhecError).where.node).toBe('test_Mul (Mul)');
    }
  });

  it('MatMul broadcasts batch dims and reports mismatched inner dims', () => {
    const a = f64([2, 1, 2, 3], rand(12, 3));
    const b = f64([3, 3, 2], rand(18, 4));
    const [y] = evalNode(node('MatMul'), [a, b], 13);
    expect(y!.dims).toEqual([2, 3, 2, 2]);
    for (let p = 0; p < 2; p++)
      for (let q = 0; q < 3; q++)
        for (let i = 0; i < 2; i++)
          for (let j = 0; j < 2; j++) {
            let s = 0;
            for (let k = 0; k < 3; k++) s += a.data[p * 6 + i * 3 + k]! * b.data[q * 6 + k * 2 + j]!;
            expect(y!.data[((p * 3 + q) * 2 + i) * 2 + j]).toBeCloseTo(s, 12);
          }
    expect(() => evalNode(node('MatMul'), [f32([2, 3], rand(6, 1)), f32([4, 2], rand(8, 1))], 13)).toThrowError(
      /MatMul shapes \[2, 3\] and \[4, 2\] do not match/,
    );
  });
});

describe('integer semantics', () => {
  it('wraps int8 and uint8 arithmetic', () => {
    const [s] = evalNode(node('Add'), [Tensor.from('int8', [3], [100, -100, 127]), Tensor.from('int8', [3], [100, -100, 1])], 14);
    expect(Array.from(s!.data)).toEqual([-56, 56, -128]);
    const [m] = evalNode(node('Mul'), [Tensor.from('uint8', [2], [16, 200]), Tensor.from('uint8', [2], [17, 2])], 14);
    expect(Array.from(m!.data)).toEqual([16, 144]);
    const [n] = evalNode(node('Neg'), [Tensor.from('int8', [2], [-128, 5])], 13);
    expect(Array.from(n!.data)).toEqual([-128, -5]);
  });

  it('divides integers toward zero and computes exact integer powers', () => {
    const [d] = evalNode(node('Div'), [Tensor.from('int32', [4], [7, -7, 7, -7]), Tensor.from('int32', [4], [2, 2, -2, -2])], 14);
    expect(Array.from(d!.data)).toEqual([3, -3, -3, 3]);
    const [p] = evalNode(node('Pow'), [i64([2], [3, 7]), i64([2], [33, 18])], 15);
    expect(Array.from(p!.data)).toEqual([5559060566555523, 1628413597910449]);
    const [w] = evalNode(node('Pow'), [Tensor.from('int32', [1], [3]), Tensor.from('int32', [1], [21])], 15);
    expect(Array.from(w!.data)).toEqual([10460353203 - 2 * 4294967296]); // 3^21 wraps in int32
  });

  it('Mod follows the divisor sign unless fmod=1', () => {
    const a = i64([4], [7, -7, 7, -7]);
    const b = i64([4], [3, 3, -3, -3]);
    expect(Array.from(evalNode(node('Mod'), [a, b], 13)[0]!.data)).toEqual([1, 2, -2, -1]);
    expect(Array.from(evalNode(node('Mod', { fmod: attr.int(1) }), [a, b], 13)[0]!.data)).toEqual([1, -1, 1, -1]);
  });

  it('Cast rounds float32 to float16 and truncates to int', () => {
    const x = f64([4], [1 + 2 ** -11, 1 + 3 * 2 ** -11, -2.7, 70000]);
    const [h] = evalNode(node('Cast', { to: attr.int(10) }), [x], 21);
    expect(h!.dtype).toBe('float16');
    expect(Array.from(h!.data)).toEqual([1, 1 + 2 * 2 ** -10, -2.69921875, Infinity]);
    const [i] = evalNode(node('Cast', { to: attr.int(6) }), [x], 21);
    expect(Array.from(i!.data)).toEqual([1, 1, -2, 70000]);
  });
});

describe('Softmax axis semantics', () => {
  const x = f64([2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 9]);
  it('opset 11 normalizes the flattened block from axis 1', () => {
    const [y] = evalNode(node('Softmax'), [x], 11);
    const want: number[] = [];
    for (let b = 0; b < 2; b++) {
      const row = Array.from(x.data.slice(b * 4, b * 4 + 4));
      const s = row.reduce((a, v) => a + Math.exp(v), 0);
      want.push(...row.map((v) => Math.exp(v) / s));
    }
    expectClose(y!.data, want);
  });
  it('opset 13 normalizes along the last axis only', () => {
    const [y] = evalNode(node('Softmax'), [x], 13);
    const want: number[] = [];
    for (let r = 0; r < 4; r++) {
      const [p, q] = [x.data[2 * r]!, x.data[2 * r + 1]!];
      want.push(1 / (1 + Math.exp(q - p)), 1 / (1 + Math.exp(p - q)));
    }
    expectClose(y!.data, want);
  });
  it('is stable for large inputs (max subtraction)', () => {
    const [y] = evalNode(node('Softmax'), [f64([3], [1000, 1000, 999])], 13);
    const e = Math.exp(-1);
    expectClose(y!.data, [1 / (2 + e), 1 / (2 + e), e / (2 + e)]);
  });
});

describe('normalization', () => {
  it('RMSNormalization over the last axis', () => {
    const x = f64([2, 4], [1, 2, 3, 4, -1, 0, 1, 2]);
    const w = f64([4], [1, 0.5, 2, -1]);
    const [y] = evalNode(node('RMSNormalization', { epsilon: attr.float(1e-5) }), [x, w], 23);
    const r0 = Math.sqrt((1 + 4 + 9 + 16) / 4 + 1e-5);
    const r1 = Math.sqrt((1 + 0 + 1 + 4) / 4 + 1e-5);
    expectClose(y!.data, [1 / r0, 1 / r0, 6 / r0, -4 / r0, -1 / r1, 0, 2 / r1, -2 / r1]);
  });

  it('RMSNormalization with axis 1 of a 3-D input normalizes the trailing block', () => {
    const x = f64([2, 2, 2], rand(8, 9));
    const [y] = evalNode(node('RMSNormalization', { axis: attr.int(1) }), [x, f64([1], [2])], 23);
    for (let b = 0; b < 2; b++) {
      const blk = Array.from(x.data.slice(b * 4, b * 4 + 4));
      const r = Math.sqrt(blk.reduce((s, v) => s + v * v, 0) / 4 + 1e-5);
      expectClose(y!.data.slice(b * 4, b * 4 + 4), blk.map((v) => (2 * v) / r));
    }
  });

  it('SkipSimplifiedLayerNormalization returns output, mean, inv_std_var and the sum', () => {
    const x = f64([1, 2, 3], [1, 2, 3, 4, 5, 6]);
    const skip = f64([1, 2, 3], [0.5, -1, 0, 1, 1, 1]);
    const gamma = f64([3], [1, 2, 3]);
    const bias = f64([3], [0, 0, 1]);
    const n = node('SkipSimplifiedLayerNormalization', { epsilon: attr.float(1e-6) }, 4, 'com.microsoft');
    const [y, , inv, sum] = evalNode(n, [x, skip, gamma, bias], 1);
    const s = [1.5, 1, 4, 5, 6, 8];
    expect(Array.from(sum!.data)).toEqual(s);
    const r0 = 1 / Math.sqrt((1.5 ** 2 + 1 + 16) / 3 + 1e-6);
    const r1 = 1 / Math.sqrt((25 + 36 + 64) / 3 + 1e-6);
    expectClose(y!.data, [1.5 * r0, 2 * r0, 12 * r0, 5 * r1, 12 * r1, 24 * r1]);
    expect(inv!.dims).toEqual([1, 2, 1]);
    expectClose(inv!.data, [r0, r1]);
  });

  it('LayerNormalization subtracts the mean and applies scale and bias', () => {
    const x = f64([1, 4], [1, 2, 3, 6]);
    const [y, mean, inv] = evalNode(node('LayerNormalization', { epsilon: attr.float(0) }, 3), [x, f64([4], [1, 1, 1, 2]), f64([4], [0, 0, 0, 1])], 17);
    const sd = Math.sqrt((4 + 1 + 0 + 9) / 4);
    expectClose(y!.data, [-2 / sd, -1 / sd, 0, (2 * 3) / sd + 1]);
    expectClose(mean!.data, [3]);
    expectClose(inv!.data, [1 / sd]);
  });
});

/** Naive rotate-half / interleaved RoPE on one head vector. */
function ropeVec(v: number[], cos: number[], sin: number[], interleaved: boolean, rd = v.length): number[] {
  const out = [...v];
  const half = rd / 2;
  for (let i = 0; i < half; i++) {
    const [a, b] = interleaved ? [2 * i, 2 * i + 1] : [i, i + half];
    out[a] = v[a]! * cos[i]! - v[b]! * sin[i]!;
    out[b] = v[a]! * sin[i]! + v[b]! * cos[i]!;
  }
  return out;
}

describe('RotaryEmbedding', () => {
  const B = 1, S = 3, N = 2, H = 4, maxPos = 8;
  const theta = (p: number, i: number) => p / 10000 ** ((2 * i) / H);
  const cos = f64([maxPos, H / 2], Array.from({ length: maxPos * 2 }, (_, k) => Math.cos(theta(Math.floor(k / 2), k % 2))));
  const sin = f64([maxPos, H / 2], Array.from({ length: maxPos * 2 }, (_, k) => Math.sin(theta(Math.floor(k / 2), k % 2))));
  const pos = i64([B, S], [5, 0, 2]);
  const x3 = f64([B, S, N * H], rand(S * N * H, 11));

  for (const interleaved of [0, 1]) {
    it(`ONNX 3-D and 4-D layouts agree with a naive rotation (interleaved=${interleaved})`, () => {
      const want: number[] = [];
      for (let s = 0; s < S; s++) {
        const p = pos.data[s]!;
        for (let n = 0; n < N; n++) {
          const v = Array.from(x3.data.slice(s * N * H + n * H, s * N * H + (n + 1) * H));
          want.push(...ropeVec(v, [Math.cos(theta(p, 0)), Math.cos(theta(p, 1))], [Math.sin(theta(p, 0)), Math.sin(theta(p, 1))], !!interleaved));
        }
      }
      const n3 = node('RotaryEmbedding', { num_heads: attr.int(N), interleaved: attr.int(interleaved) });
      const [y3] = evalNode(n3, [x3, cos, sin, pos], 23);
      expectClose(y3!.data, want);
      // 4-D (B, N, S, H): transpose the same data and compare.
      const x4 = f64([B, N, S, H], Array.from({ length: N * S * H }, (_, k) => {
        const n = Math.floor(k / (S * H)), s = Math.floor(k / H) % S, h = k % H;
        return x3.data[s * N * H + n * H + h]!;
      }));
      const [y4] = evalNode(node('RotaryEmbedding', { interleaved: attr.int(interleaved) }), [x4, cos, sin, pos], 23);
      for (let n = 0; n < N; n++)
        for (let s = 0; s < S; s++)
          for (let h = 0; h < H; h++) expect(y4!.data[(n * S + s) * H + h]).toBeCloseTo(want[s * N * H + n * H + h]!, 12);
      // com.microsoft form: input, position_ids, cos, sin.
      const [ym] = evalNode(node('RotaryEmbedding', { interleaved: attr.int(interleaved) }, 1, 'com.microsoft'), [x3, pos, cos, sin], 1);
      expectClose(ym!.data, want);
    });
  }

  it('rotates only the first rotary_embedding_dim channels', () => {
    const cos2 = f64([maxPos, 1], Array.from({ length: maxPos }, (_, p) => Math.cos(p)));
    const sin2 = f64([maxPos, 1], Array.from({ length: maxPos }, (_, p) => Math.sin(p)));
    const [y] = evalNode(node('RotaryEmbedding', { num_heads: attr.int(N), rotary_embedding_dim: attr.int(2) }), [x3, cos2, sin2, pos], 23);
    const s = 1; // position 0: identity rotation
    expectClose(y!.data.slice(s * N * H, (s + 1) * N * H), x3.data.slice(s * N * H, (s + 1) * N * H));
    const v = Array.from(x3.data.slice(0, H)); // position 5, head 0
    expectClose(y!.data.slice(0, H), [...ropeVec(v.slice(0, 2), [Math.cos(5)], [Math.sin(5)], false), v[2]!, v[3]!]);
  });
});

/** Naive grouped-query causal attention with a KV cache, BNSH layout, returns (B, Nq, S, H). */
function naiveAttention(
  q: number[], k: number[], v: number[], B: number, Nq: number, Nkv: number, S: number, T: number, H: number,
  allowed: (b: number, n: number, i: number, j: number) => boolean, scale: number,
): number[] {
  const out: number[] = [];
  for (let b = 0; b < B; b++)
    for (let n = 0; n < Nq; n++) {
      const g = Math.floor(n / (Nq / Nkv));
      for (let i = 0; i < S; i++) {
        const scores: number[] = [];
        for (let j = 0; j < T; j++) {
          let d = 0;
          for (let h = 0; h < H; h++) d += q[((b * Nq + n) * S + i) * H + h]! * k[((b * Nkv + g) * T + j) * H + h]!;
          scores.push(allowed(b, n, i, j) ? d * scale : -Infinity);
        }
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((a, x) => a + x, 0);
        for (let h = 0; h < H; h++) {
          let acc = 0;
          for (let j = 0; j < T; j++) acc += (e[j]! / z) * v[((b * Nkv + g) * T + j) * H + h]!;
          out.push(acc);
        }
      }
    }
  return out;
}

/** (B, S, N*H) <-> (B, N, S, H). */
function bsdToBnsh(x: ArrayLike<number>, B: number, S: number, N: number, H: number): number[] {
  const out = new Array<number>(B * N * S * H);
  for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) for (let n = 0; n < N; n++) for (let h = 0; h < H; h++)
    out[((b * N + n) * S + s) * H + h] = x[(b * S + s) * N * H + n * H + h]!;
  return out;
}

describe('attention', () => {
  const B = 2, Nq = 4, Nkv = 2, S = 3, P = 2, H = 4, T = P + S;
  const qIn = rand(B * S * Nq * H, 21), kIn = rand(B * S * Nkv * H, 22), vIn = rand(B * S * Nkv * H, 23);
  const pastK = rand(B * Nkv * P * H, 24), pastV = rand(B * Nkv * P * H, 25);
  // Full K/V per kv head: past then new (BNSH).
  const cat = (past: number[], cur: number[]) => {
    const out: number[] = [];
    for (let bn = 0; bn < B * Nkv; bn++) out.push(...past.slice(bn * P * H, (bn + 1) * P * H), ...cur.slice(bn * S * H, (bn + 1) * S * H));
    return out;
  };
  const kAll = cat(pastK, bsdToBnsh(kIn, B, S, Nkv, H));
  const vAll = cat(pastV, bsdToBnsh(vIn, B, S, Nkv, H));
  const causal = (_b: number, _n: number, i: number, j: number) => j <= i + P;

  it('ONNX Attention: GQA, is_causal bottom-right aligned with a past, 3-D inputs', () => {
    const n = node('Attention', { q_num_heads: attr.int(Nq), kv_num_heads: attr.int(Nkv), is_causal: attr.int(1) }, 3);
    const [y, pk, pv] = evalNode(n, [
      f64([B, S, Nq * H], qIn), f64([B, S, Nkv * H], kIn), f64([B, S, Nkv * H], vIn), null,
      f64([B, Nkv, P, H], pastK), f64([B, Nkv, P, H], pastV),
    ], 23);
    const want = naiveAttention(bsdToBnsh(qIn, B, S, Nq, H), kAll, vAll, B, Nq, Nkv, S, T, H, causal, 1 / Math.sqrt(H));
    expect(y!.dims).toEqual([B, S, Nq * H]);
    expectClose(bsdToBnsh(y!.data, B, S, Nq, H), want, 1e-12);
    expect(pk!.dims).toEqual([B, Nkv, T, H]);
    expectClose(pk!.data, kAll);
    expectClose(pv!.data, vAll);
  });

  it('ONNX Attention: a boolean mask composes with causal masking; a fully masked row gives zeros', () => {
    // Mask out key 0 everywhere and, for batch 1, every key of query 0 (a fully masked row).
    const mask = Array.from({ length: B * S * T }, (_, k) => {
      const b = Math.floor(k / (S * T)), i = Math.floor(k / T) % S, j = k % T;
      return j !== 0 && !(b === 1 && i === 0) ? 1 : 0;
    });
    const n = node('Attention', { q_num_heads: attr.int(Nq), kv_num_heads: attr.int(Nkv), is_causal: attr.int(1), scale: attr.float(0.3) }, 1);
    const [y] = evalNode(n, [
      f64([B, S, Nq * H], qIn), f64([B, S, Nkv * H], kIn), f64([B, S, Nkv * H], vIn),
      Tensor.from('bool', [B, 1, S, T], mask), f64([B, Nkv, P, H], pastK), f64([B, Nkv, P, H], pastV),
    ], 23);
    const allowed = (b: number, _n: number, i: number, j: number) => causal(b, 0, i, j) && mask[(b * S + i) * T + j] === 1;
    const want = naiveAttention(bsdToBnsh(qIn, B, S, Nq, H), kAll, vAll, B, Nq, Nkv, S, T, H, allowed, 0.3);
    for (let n2 = 0; n2 < Nq; n2++) for (let h = 0; h < H; h++) want[((1 * Nq + n2) * S + 0) * H + h] = 0;
    expectClose(bsdToBnsh(y!.data, B, S, Nq, H), want, 1e-12);
  });

  it('com.microsoft GroupQueryAttention matches the same naive loop (decode-style past)', () => {
    const n = node('GroupQueryAttention', { num_heads: attr.int(Nq), kv_num_heads: attr.int(Nkv) }, 3, 'com.microsoft');
    const seqlens = Tensor.from('int32', [B], [T - 1, T - 1]);
    const [y, pk] = evalNode(n, [
      f64([B, S, Nq * H], qIn), f64([B, S, Nkv * H], kIn), f64([B, S, Nkv * H], vIn),
      f64([B, Nkv, P, H], pastK), f64([B, Nkv, P, H], pastV), seqlens, Tensor.scalar('int32', T),
    ], 1);
    const want = naiveAttention(bsdToBnsh(qIn, B, S, Nq, H), kAll, vAll, B, Nq, Nkv, S, T, H, causal, 1 / Math.sqrt(H));
    expectClose(bsdToBnsh(y!.data, B, S, Nq, H), want, 1e-12);
    expectClose(pk!.data, kAll);
  });

  it('com.microsoft GroupQueryAttention: local window and in-op rotary at positions past + i', () => {
    const W = 2;
    const maxPos = 16;
    const cosC = f64([maxPos, H / 2], Array.from({ length: maxPos * H / 2 }, (_, k) => Math.cos(Math.floor(k / 2) * 0.3 * (1 + (k % 2)))));
    const sinC = f64([maxPos, H / 2], Array.from({ length: maxPos * H / 2 }, (_, k) => Math.sin(Math.floor(k / 2) * 0.3 * (1 + (k % 2)))));
    const rot = (x: number[], N: number) => {
      const out: number[] = [];
      for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) for (let n = 0; n < N; n++) {
        const o = ((b * S + s) * N + n) * H;
        const p = P + s;
        out.push(...ropeVec(x.slice(o, o + H), [cosC.data[p * 2]!, cosC.data[p * 2 + 1]!], [sinC.data[p * 2]!, sinC.data[p * 2 + 1]!], false));
      }
      return out;
    };
    const n = node('GroupQueryAttention', { num_heads: attr.int(Nq), kv_num_heads: attr.int(Nkv), local_window_size: attr.int(W), do_rotary: attr.int(1) }, 3, 'com.microsoft');
    const [y] = evalNode(n, [
      f64([B, S, Nq * H], qIn), f64([B, S, Nkv * H], kIn), f64([B, S, Nkv * H], vIn),
      f64([B, Nkv, P, H], pastK), f64([B, Nkv, P, H], pastV), Tensor.from('int32', [B], [T - 1, T - 1]), Tensor.scalar('int32', T), cosC, sinC,
    ], 1);
    const kRot = cat(pastK, bsdToBnsh(rot(kIn, Nkv), B, S, Nkv, H));
    const allowed = (_b: number, _n: number, i: number, j: number) => j <= i + P && j >= i + P - W;
    const want = naiveAttention(bsdToBnsh(rot(qIn, Nq), B, S, Nq, H), kRot, vAll, B, Nq, Nkv, S, T, H, allowed, 1 / Math.sqrt(H));
    expectClose(bsdToBnsh(y!.data, B, S, Nq, H), want, 1e-12);
  });

  it('com.microsoft MultiHeadAttention: key padding mask, unidirectional, past', () => {
    const N = 2;
    const q = rand(B * S * N * H, 31), k = rand(B * S * N * H, 32), v = rand(B * S * N * H, 33);
    const pk = rand(B * N * P * H, 34), pv = rand(B * N * P * H, 35);
    const pad = Array.from({ length: B * T }, (_, idx) => (idx === T + 1 ? 0 : 1)); // batch 1 hides key 1
    const n = node('MultiHeadAttention', { num_heads: attr.int(N), unidirectional: attr.int(1) }, 3, 'com.microsoft');
    const [y, presentK] = evalNode(n, [
      f64([B, S, N * H], q), f64([B, S, N * H], k), f64([B, S, N * H], v), null,
      Tensor.from('int32', [B, T], pad), null, f64([B, N, P, H], pk), f64([B, N, P, H], pv),
    ], 1);
    const catN = (past: number[], cur: number[]) => {
      const out: number[] = [];
      for (let bn = 0; bn < B * N; bn++) out.push(...past.slice(bn * P * H, (bn + 1) * P * H), ...cur.slice(bn * S * H, (bn + 1) * S * H));
      return out;
    };
    const kA = catN(pk, bsdToBnsh(k, B, S, N, H));
    const vA = catN(pv, bsdToBnsh(v, B, S, N, H));
    // mask_filter_value -10000 is additive, not -inf: emulate it by scaling inside the naive softmax.
    const want: number[] = [];
    for (let b = 0; b < B; b++)
      for (let hd = 0; hd < N; hd++)
        for (let i = 0; i < S; i++) {
          const sc: number[] = [];
          for (let j = 0; j < T; j++) {
            let d = 0;
            for (let h = 0; h < H; h++) d += q[(b * S + i) * N * H + hd * H + h]! * kA[((b * N + hd) * T + j) * H + h]!;
            sc.push(d / Math.sqrt(H) + (pad[b * T + j] ? 0 : -10000) + (j > i + P ? -3.4028234663852886e38 : 0));
          }
          const m = Math.max(...sc);
          const e = sc.map((s) => Math.exp(s - m));
          const z = e.reduce((a, x) => a + x, 0);
          for (let h = 0; h < H; h++) want.push(e.reduce((a, w, j) => a + (w / z) * vA[((b * N + hd) * T + j) * H + h]!, 0));
        }
    expectClose(bsdToBnsh(y!.data, B, S, N, H), want, 1e-12);
    expectClose(presentK!.data, kA);
  });
});

describe('shape operators', () => {
  it('Reshape copies 0 dims, infers -1, and honours allowzero', () => {
    const x = f32([2, 3, 4], rand(24, 5));
    expect(evalNode(node('Reshape'), [x, i64([3], [0, -1, 2])], 14)[0]!.dims).toEqual([2, 6, 2]);
    expect(evalNode(node('Reshape', { allowzero: attr.int(1) }), [f32([0, 3], []), i64([2], [3, 0])], 14)[0]!.dims).toEqual([3, 0]);
    expect(() => evalNode(node('Reshape'), [x, i64([2], [5, -1])], 14)).toThrowError(/cannot reshape \[2, 3, 4\]/);
  });

  it('Slice clamps, counts negative steps, and Gather takes negative indices', () => {
    const x = f64([6], [0, 1, 2, 3, 4, 5]);
    const [s] = evalNode(node('Slice'), [x, i64([1], [-1]), i64([1], [-1e18]), i64([1], [0]), i64([1], [-2])], 13);
    expect(Array.from(s!.data)).toEqual([5, 3, 1]);
    const [g] = evalNode(node('Gather', { axis: attr.int(0) }), [x, i64([2, 1], [-1, 2])], 13);
    expect(g!.dims).toEqual([2, 1]);
    expect(Array.from(g!.data)).toEqual([5, 2]);
  });

  it('Unsqueeze/Squeeze/Split read axes from attributes before opset 13 and inputs after', () => {
    const x = f32([2, 3], rand(6, 7));
    expect(evalNode(node('Unsqueeze', { axes: attr.ints([0, -1]) }), [x], 11)[0]!.dims).toEqual([1, 2, 3, 1]);
    expect(evalNode(node('Unsqueeze'), [x, i64([2], [0, -1])], 13)[0]!.dims).toEqual([1, 2, 3, 1]);
    expect(evalNode(node('Squeeze'), [f32([1, 3, 1], [1, 2, 3]), i64([1], [0])], 13)[0]!.dims).toEqual([3, 1]);
    const parts = evalNode(node('Split', { axis: attr.int(1), num_outputs: attr.int(2) }, 2), [x], 18);
    expect(parts.map((p) => p.dims)).toEqual([[2, 2], [2, 1]]);
  });
});

describe('less common operators used by LLM exports', () => {
  it('Pad in constant, edge, reflect and wrap modes', () => {
    const x = f64([3], [1, 2, 3]);
    const pads = i64([2], [2, 1]);
    const run = (mode: string) => Array.from(evalNode(node('Pad', { mode: attr.string(mode) }), [x, pads, f64([], [9])], 18)[0]!.data);
    expect(run('constant')).toEqual([9, 9, 1, 2, 3, 9]);
    expect(run('edge')).toEqual([1, 1, 1, 2, 3, 3]);
    expect(run('reflect')).toEqual([3, 2, 1, 2, 3, 2]);
    expect(run('wrap')).toEqual([2, 3, 1, 2, 3, 1]);
  });

  it('CumSum (plain, exclusive, reverse), GatherElements and ScatterND', () => {
    const x = i64([2, 3], [1, 2, 3, 4, 5, 6]);
    const axis = i64([], [1]);
    expect(Array.from(evalNode(node('CumSum'), [x, axis], 14)[0]!.data)).toEqual([1, 3, 6, 4, 9, 15]);
    expect(Array.from(evalNode(node('CumSum', { exclusive: attr.int(1), reverse: attr.int(1) }), [x, axis], 14)[0]!.data)).toEqual([5, 3, 0, 11, 6, 0]);
    const [g] = evalNode(node('GatherElements', { axis: attr.int(1) }), [x, i64([2, 2], [2, 0, -1, 1])], 13);
    expect(Array.from(g!.data)).toEqual([3, 1, 6, 5]);
    const [s] = evalNode(node('ScatterND'), [x, i64([1, 1], [1]), i64([1, 3], [7, 8, 9])], 18);
    expect(Array.from(s!.data)).toEqual([1, 2, 3, 7, 8, 9]);
  });
});

describe('interpreter', () => {
  it('reports unsupported operators with the node name', () => {
    expect(isOpSupported('', 'MatMul')).toBe(true);
    expect(isOpSupported('com.microsoft', 'GroupQueryAttention')).toBe(true);
    expect(isOpSupported('', 'Loop')).toBe(false);
    expect(supportedOps().length).toBeGreaterThan(80);
    expect(() => evalNode(node('Loop'), [], 13)).toThrowError(/operator Loop is not supported/);
  });

  it('runs a graph, loads constants lazily once, and reports each node', () => {
    const b = new GraphBuilder('g', { '': 17 });
    const x = b.input('x', 'float32', [2]);
    let loads = 0;
    const lazy = (t: Tensor): LazyTensor => ({
      dtype: t.dtype as DType, dims: t.dims, location: 'test', byteLength: 8, load: () => { loads++; return t; },
    });
    const w = b.constant('w', lazy(f32([2], [3, 4])));
    b.constant('unused', lazy(f32([1], [0])));
    const y = b.op1('Mul', [x, w], 'float32', [2]);
    const z = b.op1('Add', [y, w], 'float32', [2]);
    b.output(z);
    const seen: string[] = [];
    const out = runGraph(b.graph, { x: f32([2], [1, 2]) }, { onNode: (n, o) => seen.push(`${n.op}:${o[0]!.data.join(',')}`) });
    expect(Array.from(out[z.name]!.data)).toEqual([6, 12]);
    expect(seen).toEqual(['Mul:3,8', 'Add:6,12']);
    expect(loads).toBe(1);
    expect(() => runGraph(b.graph, {})).toThrowError(/graph input 'x' was not given/);
  });

  it('reproduces the stored onnxruntime logits of A_nocache_opset14 prompt16', () => {
    const dir = `${MODELS}/`;
    const ref = JSON.parse(fs.readFileSync(`${dir}A_nocache_opset14.ref.json`, 'utf8'));
    const step = ref.cases.find((c: { name: string }) => c.name === 'prompt16').steps[0];
    const ids = step.inputs.input_ids;
    const out = runGraph(importOnnx(`${dir}A_nocache_opset14.onnx`).graph, { input_ids: i64(ids.dims, ids.data) });
    const want = step.outputs.logits;
    expect(out.logits!.dims).toEqual(want.dims);
    let err = 0;
    for (let i = 0; i < want.data.length; i++) err = Math.max(err, Math.abs(out.logits!.data[i]! - Math.fround(want.data[i])));
    expect(err).toBeLessThan(1e-4);
  });
});
