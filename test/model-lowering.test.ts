// The canonical-model lowering (passes/fhe/lower-canonical): each op's FHE program, evaluated without
// CKKS error (ir/fhe/plain-eval.ts), against an independent float64 computation; then the
// whole model A lowered and evaluated the same way against the reference interpreter.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FheBuilder } from '../ir/fhe/builder.js';
import type { FheValue, SlotLayout } from '../ir/fhe/types.js';
import { verifyFhe } from '../ir/fhe/verify.js';
import { Tensor } from '../ir/tensor.js';
import { approximate } from '../passes/approx/select.js';
import { replicatedLayout } from '../passes/fhe/layout/packing.js';
import { lowerPrefillAttention } from '../passes/fhe/lower-canonical/attention.js';
import { planSoftmax } from '../passes/fhe/lower-canonical/softmax-plan.js';
import { lowerLinearColumns } from '../passes/fhe/lower-canonical/linear.js';
import { lowerRmsNormBlock } from '../passes/fhe/lower-canonical/rms-norm.js';
import { lowerRopeBlock } from '../passes/fhe/lower-canonical/rope.js';
import { evaluatePlain } from '../ir/fhe/plain-eval.js';
import { embedTokens } from '../runtime/model-session.js';
import { compileModel } from '../compiler/model-plan.js';
import { lowerCanonicalModel } from '../passes/fhe/lower-canonical/lower-model.js';
import { lastTokenRow } from '../passes/fhe/lower-canonical/last-token.js';
import { multiplicativeDepth } from '../passes/fhe/analysis/depth.js';
import { referenceLogits } from '../compiler/accuracy.js';
import { MODELS } from './helpers/shared.js';

const SLOTS = 1024;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  };
}
const randoms = (n: number, r: () => number, scale = 1) => Float64Array.from({ length: n }, () => r() * scale);

/** Value of `v` (tokens x length, read at offsets 0..length-1 of each token block) and every copy. */
function read(slots: Float64Array, layout: SlotLayout, copy = 0): Float64Array {
  const out = new Float64Array(layout.tokens * layout.length);
  for (let t = 0; t < layout.tokens; t++) for (let j = 0; j < layout.length; j++) out[t * layout.length + j] = slots[t * layout.stride + copy * layout.period + j]!;
  return out;
}

function run(b: FheBuilder, x: Record<string, Float64Array>, value: FheValue): Float64Array {
  b.output('y', value, { length: b.slots, tokens: 1, stride: b.slots, period: b.slots, copies: 1 });
  const p = b.build();
  verifyFhe(p);
  return evaluatePlain(p, x).outputs.get('y')!;
}

const maxDiff = (a: ArrayLike<number>, c: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - c[i]!));
  return m;
};

describe('linear', () => {
  it('computes x @ W + b for merged parts with GQA-repeated heads, replicated in every copy', () => {
    const r = rng(1);
    const [T, K, N] = [3, 48, 80];
    const x = randoms(T * K, r);
    const w = randoms(K * N, r);
    const bias = randoms(N, r);
    const b = new FheBuilder('t', SLOTS);
    const layout = replicatedLayout(K, SLOTS, T);
    const xv = b.input('x', layout);
    // Part = columns 16..47 (2 KV heads of 16), each head repeated twice: 64 columns.
    const cols: number[] = [];
    for (let h = 0; h < 4; h++) for (let c = 0; c < 16; c++) cols.push(16 + Math.floor(h / 2) * 16 + c);
    const stats = { rotations: 0, plainMultiplications: 0 };
    const act = lowerLinearColumns(b, { tokens: T, length: K, blocks: [{ value: xv, layout, colStart: 0, tokenStart: 0 }] }, Tensor.from('float32', [K, N], w), Tensor.from('float32', [N], bias), cols, { replicate: true }, stats);
    expect(act.length).toBe(64);
    const want = new Float64Array(T * 64);
    for (let t = 0; t < T; t++) for (let e = 0; e < 64; e++) {
      let s = Math.fround(bias[cols[e]!]!);
      for (let k = 0; k < K; k++) s += x[t * K + k]! * Math.fround(w[k * N + cols[e]!]!);
      want[t * 64 + e] = s;
    }
    // Evaluate the real program once, reading each block in each copy.
    const outs = act.blocks.map((blk, i) => {
      b.output(`y${i}`, blk.value, blk.layout);
      return blk;
    });
    const ev = evaluatePlain(b.build(), { x }).values;
    for (const blk of outs) {
      const slots = ev.get(blk.value.name)!;
      for (let copy = 0; copy < blk.layout.copies; copy++) {
        const got = read(slots, blk.layout, copy);
        const part = new Float64Array(T * blk.layout.length);
        for (let t = 0; t < T; t++) for (let j = 0; j < blk.layout.length; j++) part[t * blk.layout.length + j] = want[t * 64 + blk.colStart + j]!;
        expect(maxDiff(got, part)).toBeLessThan(1e-9);
      }
    }
    expect(stats.rotations).toBeGreaterThan(0);
  });
});

describe('last token row (logits of the last position only)', () => {
  it('masks the other tokens and replicates the last one over the whole ciphertext', () => {
    const r = rng(5);
    const [T, K] = [3, 48];
    const b = new FheBuilder('t', SLOTS);
    const layout = replicatedLayout(K, SLOTS, T);
    // Every slot holds something, the unused 4th token block too: only the last real token may survive.
    const xs = randoms(SLOTS, r);
    const stats = { rotations: 0 };
    const whole = b.input('x', { length: SLOTS, tokens: 1, stride: SLOTS, period: SLOTS, copies: 1 });
    const row = lastTokenRow(b, { tokens: T, length: K, blocks: [{ value: whole, layout, colStart: 0, tokenStart: 0 }] }, false, stats);
    const blk = row.blocks[0]!;
    expect(blk.layout).toEqual({ length: K, tokens: 1, stride: SLOTS, period: 64, copies: SLOTS / 64 });
    expect(stats.rotations).toBe(2);
    const slots = run(b, { x: xs }, blk.value);
    const want = Float64Array.from({ length: K }, (_, j) => xs[(T - 1) * layout.stride + j]!);
    for (let copy = 0; copy < blk.layout.copies; copy++) {
      // Copy k of the result sums copy (k mod 4) of every token block: the others were masked to 0.
      const src = Float64Array.from({ length: K }, (_, j) => xs[(T - 1) * layout.stride + (copy % layout.copies) * 64 + j]!);
      expect(maxDiff(read(slots, blk.layout, copy), src)).toBeLessThan(1e-12);
    }
    expect(maxDiff(read(slots, blk.layout, 0), want)).toBeLessThan(1e-12);
  });
});

describe('rope', () => {
  for (const interleaved of [false, true]) {
    it(`rotates each head at its token's position (${interleaved ? 'interleaved' : 'rotate-half'})`, () => {
      const r = rng(2);
      const [T, H, heads] = [3, 8, 4];
      const width = H * heads;
      const x = randoms(T * width, r, 4);
      const rows = 16;
      const cos = new Float64Array(rows * H / 2);
      const sin = new Float64Array(rows * H / 2);
      for (let p = 0; p < rows; p++) for (let i = 0; i < H / 2; i++) {
        const a = p / 10000 ** ((2 * i) / H);
        cos[p * (H / 2) + i] = Math.cos(a);
        sin[p * (H / 2) + i] = Math.sin(a);
      }
      const positions = [5, 9, 2];
      const b = new FheBuilder('t', SLOTS);
      const layout = replicatedLayout(width, SLOTS, T);
      const xv = b.input('x', layout);
      const y = lowerRopeBlock(b, xv, layout, { headSize: H, rotaryDim: H, interleaved, positions, cos: Tensor.from('float64', [rows, H / 2], cos), sin: Tensor.from('float64', [rows, H / 2], sin) });
      const slots = run(b, { x }, y);
      const want = new Float64Array(T * width);
      for (let t = 0; t < T; t++) for (let h = 0; h < heads; h++) for (let i = 0; i < H / 2; i++) {
        const [i1, i2] = interleaved ? [2 * i, 2 * i + 1] : [i, i + H / 2];
        const base = t * width + h * H;
        const c = cos[positions[t]! * (H / 2) + i]!;
        const s = sin[positions[t]! * (H / 2) + i]!;
        want[base + i1] = x[base + i1]! * c - x[base + i2]! * s;
        want[base + i2] = x[base + i1]! * s + x[base + i2]! * c;
      }
      for (let copy = 0; copy < layout.copies; copy++) expect(maxDiff(read(slots, layout, copy), want)).toBeLessThan(1e-12);
    });
  }
});

describe('rms_norm', () => {
  it('normalizes every token within the approximation error, in every copy', () => {
    const r = rng(3);
    const [T, d] = [3, 48];
    const x = randoms(T * d, r, 2);
    let lo = Infinity;
    let hi = -Infinity;
    for (let t = 0; t < T; t++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += x[t * d + j]! ** 2;
      lo = Math.min(lo, s / d);
      hi = Math.max(hi, s / d);
    }
    const inv = approximate('invsqrt', [d * lo * 0.9, d * hi * 1.1], { maxRelError: 1e-4 });
    const b = new FheBuilder('t', SLOTS);
    const layout = replicatedLayout(d, SLOTS, T);
    const res = lowerRmsNormBlock(b, b.input('x', layout), layout, 1e-5, undefined, inv);
    const slots = run(b, { x }, res.value);
    const want = new Float64Array(T * d);
    for (let t = 0; t < T; t++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += x[t * d + j]! ** 2;
      for (let j = 0; j < d; j++) want[t * d + j] = x[t * d + j]! / Math.sqrt(s / d + 1e-5);
    }
    const bound = 2 * inv.maxRelError * Math.max(...want.map(Math.abs));
    for (let copy = 0; copy < layout.copies; copy++) expect(maxDiff(read(slots, layout, copy), want)).toBeLessThan(bound);
    // The approximation never sees a value outside its interval, padding blocks included.
    const arg = evaluatePlain(b.build(), { x }).values.get(res.arg.name)!;
    for (const v of arg) expect(v >= inv.interval[0] && v <= inv.interval[1]).toBe(true);
  });
});

describe('attention (prefill, causal, GQA)', () => {
  it('matches float64 softmax attention within the approximations\' error', () => {
    const r = rng(4);
    const [T, N, Nkv, H] = [5, 4, 2, 8];
    const g = N / Nkv;
    const width = N * H;
    const q = randoms(T * width, r, 3);
    const kk = randoms(T * Nkv * H, r, 3);
    const vv = randoms(T * Nkv * H, r, 2);
    const expand = (a: Float64Array) => {
      const out = new Float64Array(T * width);
      for (let t = 0; t < T; t++) for (let h = 0; h < N; h++) for (let c = 0; c < H; c++) out[t * width + h * H + c] = a[t * Nkv * H + Math.floor(h / g) * H + c]!;
      return out;
    };
    const scale = 1 / Math.sqrt(H);
    // Exact attention and the calibration-like ranges the lowering needs.
    const want = new Float64Array(T * width);
    let [relMin, relMax, sumMax, diagMin, diagMax] = [0, 0, 1, Infinity, -Infinity];
    for (let h = 0; h < N; h++) for (let i = 0; i < T; i++) {
      const s: number[] = [];
      for (let j = 0; j <= i; j++) {
        let dot = 0;
        for (let c = 0; c < H; c++) dot += q[i * width + h * H + c]! * kk[j * Nkv * H + Math.floor(h / g) * H + c]!;
        s.push(dot * scale);
      }
      const m = Math.max(...s);
      const e = s.map((x) => Math.exp(x - m));
      const z = e.reduce((a, c) => a + c, 0);
      for (let c = 0; c < H; c++) want[i * width + h * H + c] = e.reduce((acc, ej, j) => acc + (ej / z) * vv[j * Nkv * H + Math.floor(h / g) * H + c]!, 0);
      diagMin = Math.min(diagMin, s[i]!);
      diagMax = Math.max(diagMax, s[i]!);
      let sum = 0;
      for (const x of s) {
        relMin = Math.min(relMin, x - s[i]!);
        relMax = Math.max(relMax, x - s[i]!);
        sum += Math.exp(x - s[i]!);
      }
      sumMax = Math.max(sumMax, sum);
    }
    const stats = { relMin, relMax, sumMin: 1, sumMax, diagMin, diagMax, scoreMin: 0, scoreMax: 0, rows: N * T };
    const plan = planSoftmax(stats, { margin: 0.1, rowLength: T, expError: 1e-4, reciprocalRel: 1e-4 }, (fn, iv, t) => approximate(fn, iv, t));
    const b = new FheBuilder('t', SLOTS);
    const layout = replicatedLayout(width, SLOTS, T);
    const [qv, kv, vv2] = ['q', 'k', 'v'].map((n) => b.input(n, layout));
    const res = lowerPrefillAttention(b, qv!, kv!, vv2!, layout, N, scale, plan);
    const slots = run(b, { q, k: expand(kk), v: expand(vv) }, res.value);
    expect(maxDiff(read(slots, layout, 0), want)).toBeLessThan(2e-3);
    expect(res.sites.filter((s) => s.role === 'exp')).toHaveLength(T - 1);
  });
});

describe('model A lowered whole', () => {
  it('gives the reference logits without CKKS noise (approximation error only)', () => {
    const model = path.join(MODELS, 'A_nocache_opset14.onnx');
    const c = compileModel(model, { calibration: path.join(MODELS, 'calibration.txt'), prefill: 8, maxWindows: 16, ringDegree: 16384 });
    // A calibrated window (inputs outside the calibrated intervals are model-accuracy.test.ts's subject).
    const tokens = Array.from(fs.readFileSync(path.join(MODELS, 'calibration.txt')).subarray(8, 16));
    const e = c.lowered.embedding;
    const emb = embedTokens(new Float32Array(e.table.load().data), e.table.dims[0]!, e.table.dims[1]!, tokens);
    const out = evaluatePlain(c.lowered.program, { embeddings: emb }).outputs;
    const ref = referenceLogits(model, tokens);
    const V = 256;
    let worst = 0;
    for (const o of c.lowered.outputs) for (const blk of o.blocks) {
      const slots = out.get(blk.fhe)!;
      // decrypt-side unpacking: evaluatePlain keeps whole slot vectors.
      for (let t = 0; t < 8; t++) for (let j = 0; j < blk.layout.length; j++) worst = Math.max(worst, Math.abs(slots[t * blk.layout.stride + j]! - ref.data[t * V + blk.colStart + j]!));
    }
    expect(worst).toBeLessThan(0.1);
    // A generation prefill's logits: the last position only, on one token (the same calibrated graph).
    const last = lowerCanonicalModel(c.graph, { slots: c.lowered.slots, attention: c.attention, logits: 'last' });
    const lo = last.outputs.find((o) => o.name === 'logits')!;
    expect({ tokens: lo.tokens, fromToken: lo.fromToken, dims: lo.dims }).toEqual({ tokens: 1, fromToken: 7, dims: [1, 1, V] });
    const kv = last.outputs.filter((o) => o.kv);
    expect(kv.map((o) => o.tokens)).toEqual(c.lowered.outputs.filter((o) => o.kv).map((o) => o.tokens));
    const lastOut = evaluatePlain(last.program, { embeddings: emb }).outputs;
    let worstLast = 0;
    for (const blk of lo.blocks) {
      expect(blk.layout).toMatchObject({ tokens: 1, stride: c.lowered.slots });
      const slots = lastOut.get(blk.fhe)!;
      for (let j = 0; j < blk.layout.length; j++) worstLast = Math.max(worstLast, Math.abs(slots[j]! - ref.data[7 * V + blk.colStart + j]!));
    }
    expect(worstLast).toBeLessThan(0.1);
    // No extra level: the final norm's gain zeroes the other tokens.
    expect(multiplicativeDepth(last.program)).toBe(multiplicativeDepth(c.lowered.program));
    // Per decoder layer: a fixed op set, and every approximation recorded with its interval.
    expect(c.lowered.ops.filter((o) => o.op === 'attention')).toHaveLength(2);
    expect(c.lowered.probes.some((p) => p.fn === 'invsqrt') && c.lowered.probes.some((p) => p.fn === 'exp') && c.lowered.probes.some((p) => p.fn === 'reciprocal') && c.lowered.probes.some((p) => p.fn === 'silu')).toBe(true);
    expect(c.refreshes).toBeGreaterThan(0);
    expect(c.refreshes).toBeLessThanOrEqual(c.greedyRefreshes);
  }, 120000);
});
