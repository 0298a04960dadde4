// Layouts for any model shape (passes/fhe/lower-canonical): attention heads whose size is not a power
// of two are held padded to nextPow2(head size) channels; prefills whose tokens do not fit one
// ciphertext with 2 copies of a row are split into token groups. Kernels are checked against float64
// without CKKS error (ir/fhe/plain-eval.ts); whole synthetic Llamas (bench/llama-synth.ts, random
// weights) are compiled and their plans run on the CKKS simulator against the reference interpreter.

import { shiftedSoftmaxPlan } from '../passes/fhe/lower-canonical/softmax-plan.js';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildLlamaGraph, randomLlamaWeights, type LlamaConfig } from '../bench/llama-synth.js';
import { referenceLogits } from '../compiler/accuracy.js';
import { compileModel, writeModelPlan } from '../compiler/model-plan.js';
import { exportOnnx } from '../compiler/onnx/export.js';
import { FhecError } from '../ir/errors.js';
import { FheBuilder } from '../ir/fhe/builder.js';
import { evaluatePlain } from '../ir/fhe/plain-eval.js';
import { verifyFhe } from '../ir/fhe/verify.js';
import { approximate } from '../passes/approx/select.js';
import { tokenGrouping } from '../passes/fhe/lower-canonical/activation.js';
import { lowerGroupedPrefillAttention } from '../passes/fhe/lower-canonical/attention.js';
import { cacheGroups, cacheLayout, lowerGroupedDecodeAttention } from '../passes/fhe/lower-canonical/attention-decode.js';
import { replicatedLayout } from '../passes/fhe/layout/packing.js';
import { embeddingInputs, embedTokens, loadModelPlan, ModelSession } from '../runtime/model-session.js';
import { simBackend } from '../runtime/sim/backend.js';
import { MODELS } from './helpers/shared.js';
import { selectParameters, topLevel } from '../ir/ckks/params.js';
import { packSlots } from '../ir/fhe/layout.js';
import { CacheRefresher, handleCacheRefresh } from '../runtime/generate/cache-refresh.js';
import { RefreshScheduleGuard, type RefreshPoint } from '../runtime/refresh/schedule.js';
import { pieceOverlaps } from '../runtime/generate/relayout.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  };
}
const randoms = (n: number, r: () => number, scale = 1) => Float64Array.from({ length: n }, () => r() * scale);
const CALIBRATION = path.join(MODELS, 'calibration.txt');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-layout-'));

describe('prefill attention in token groups, heads padded (3 query heads of 12 per KV head)', () => {
  it('matches float64 softmax attention within the approximations\' error', () => {
    const r = rng(11);
    // 11 tokens in groups of 4 (the last holds 3): keys come from up to three groups.
    const [T, N, Nkv, H, Hs, B, slots] = [11, 3, 1, 12, 16, 4, 1024];
    const g = N / Nkv;
    const width = N * Hs;
    const q = randoms(T * N * H, r, 2);
    const kk = randoms(T * Nkv * H, r, 2);
    const vv = randoms(T * Nkv * H, r, 2);
    const scale = 1 / Math.sqrt(H);
    const want = new Float64Array(T * N * H);
    let [relMin, relMax, sumMax, diagMin, diagMax] = [0, 0, 1, Infinity, -Infinity];
    for (let h = 0; h < N; h++) for (let i = 0; i < T; i++) {
      const s: number[] = [];
      for (let j = 0; j <= i; j++) {
        let dot = 0;
        for (let c = 0; c < H; c++) dot += q[i * N * H + h * H + c]! * kk[j * Nkv * H + Math.floor(h / g) * H + c]!;
        s.push(dot * scale);
      }
      const m = Math.max(...s);
      const e = s.map((x) => Math.exp(x - m));
      const z = e.reduce((a, c) => a + c, 0);
      for (let c = 0; c < H; c++) want[i * N * H + h * H + c] = e.reduce((acc, ej, j) => acc + (ej / z) * vv[j * Nkv * H + Math.floor(h / g) * H + c]!, 0);
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
    const expLo = Math.min(relMin * 1.1, -25 - (diagMax - diagMin));
    const exp = approximate('exp', [expLo, relMax * 1.1 + 1], { maxAbsError: 1e-5 });
    const reciprocal = approximate('reciprocal', [0.9, sumMax * 1.1], { maxRelError: 1e-4 });
    // Held rows: head n in channels [n*16, n*16 + 12), zeros after; K/V GQA-expanded.
    const held = (a: Float64Array, heads: number, t0: number, t1: number) => {
      const out = new Float64Array((t1 - t0) * width);
      for (let t = t0; t < t1; t++) for (let n = 0; n < N; n++) for (let c = 0; c < H; c++) out[(t - t0) * width + n * Hs + c] = a[t * heads * H + (heads === N ? n : Math.floor(n / g)) * H + c]!;
      return out;
    };
    const b = new FheBuilder('t', slots);
    const inputs: Record<string, Float64Array> = {};
    const groups = [0, 4, 8].map((t0, gi) => {
      const t1 = Math.min(T, t0 + B);
      const layout = replicatedLayout(width, slots, t1 - t0, slots / B);
      const [qv, kv, vv2] = ['q', 'k', 'v'].map((n) => b.input(`${n}${gi}`, layout));
      inputs[`q${gi}`] = held(q, N, t0, t1);
      inputs[`k${gi}`] = held(kk, Nkv, t0, t1);
      inputs[`v${gi}`] = held(vv, Nkv, t0, t1);
      return { q: qv!, k: kv!, v: vv2!, layout, tokenStart: t0 };
    });
    const res = lowerGroupedPrefillAttention(b, groups, N, scale, shiftedSoftmaxPlan(exp, reciprocal, expLo + Math.max(0, diagMax)));
    res.values.forEach((v, gi) => b.output(`y${gi}`, v, groups[gi]!.layout));
    const p = b.build();
    verifyFhe(p);
    const out = evaluatePlain(p, inputs).outputs;
    let worst = 0;
    let padding = 0;
    groups.forEach((grp, gi) => {
      const y = out.get(`y${gi}`)!;
      for (let t = 0; t < grp.layout.tokens; t++) for (let n = 0; n < N; n++) for (let c = 0; c < Hs; c++) {
        const got = y[t * grp.layout.stride + n * Hs + c]!;
        if (c < H) worst = Math.max(worst, Math.abs(got - want[(grp.tokenStart + t) * N * H + n * H + c]!));
        else padding = Math.max(padding, Math.abs(got));
      }
    });
    expect(worst).toBeLessThan(2e-3);
    expect(padding).toBeLessThan(1e-9);
    // Query group g meets 4g + its own tokens - 1 key offsets, each one exp.
    expect(res.sites.filter((s) => s.role === 'exp')).toHaveLength(3 + 7 + 10);
  });
});

describe('decode attention over a cache split into groups, heads padded (GQA 3:1, head 12)', () => {
  it('matches float64 softmax attention; the present cache holds every token in its group', () => {
    const r = rng(12);
    // Width 48 (period 64) in 512 slots: 8 blocks per ciphertext; P = 17 past tokens + the new one in 3 groups.
    const [P, N, Nkv, H, Hs, slots] = [17, 3, 1, 12, 16, 512];
    const width = N * Hs;
    const cg = cacheGroups(width, slots, P);
    expect([cg.blocks, cg.stride, cg.groups.map((g) => [g.tokenStart, g.past, g.present])]).toEqual([8, 64, [[0, 8, 8], [8, 8, 8], [16, 1, 2]]]);
    const q = randoms(N * H, r, 2);
    const kk = randoms((P + 1) * Nkv * H, r, 2);
    const vv = randoms((P + 1) * Nkv * H, r, 2);
    const scale = 1 / Math.sqrt(H);
    const want = new Float64Array(N * H);
    let [relMin, relMax, sumMax] = [0, 0, 1];
    for (let n = 0; n < N; n++) {
      const s: number[] = [];
      for (let j = 0; j <= P; j++) {
        let dot = 0;
        for (let c = 0; c < H; c++) dot += q[n * H + c]! * kk[j * H + c]!;
        s.push(dot * scale);
      }
      const m = Math.max(...s);
      const e = s.map((x) => Math.exp(x - m));
      const z = e.reduce((a, c) => a + c, 0);
      for (let c = 0; c < H; c++) want[n * H + c] = e.reduce((acc, ej, j) => acc + (ej / z) * vv[j * H + c]!, 0);
      let sum = 0;
      for (const x of s) {
        relMin = Math.min(relMin, x - s[P]!);
        relMax = Math.max(relMax, x - s[P]!);
        sum += Math.exp(x - s[P]!);
      }
      sumMax = Math.max(sumMax, sum);
    }
    const expLo = Math.min(relMin * 1.1, -25);
    const exp = approximate('exp', [expLo, relMax * 1.1 + 1], { maxAbsError: 1e-5 });
    const reciprocal = approximate('reciprocal', [0.9, sumMax * 1.1], { maxRelError: 1e-4 });
    /** Rows [t0, t1) of a [T, Nkv*H] tensor, GQA-expanded and padded, one row per block of `stride`. */
    const rows = (a: Float64Array, t0: number, t1: number, stride: number, replicate: boolean) => {
      const out = new Float64Array(slots);
      for (let t = t0; t < t1; t++) for (let copy = 0; copy < (replicate ? stride / 64 : 1); copy++) for (let n = 0; n < N; n++) for (let c = 0; c < H; c++) {
        out[(t - t0) * stride + copy * 64 + n * Hs + c] = a[t * Nkv * H + Math.floor(n / N) * H + c]!;
      }
      return out;
    };
    const one = (a: Float64Array) => rows(a, 0, 1, slots, true);
    const b = new FheBuilder('t', slots);
    const full = { length: slots, tokens: 1, stride: slots, period: slots, copies: 1 };
    // q has its own N heads (not expanded): packed directly, replicated over the slots.
    const qs = new Float64Array(slots);
    for (let copy = 0; copy < slots / 64; copy++) for (let n = 0; n < N; n++) for (let c = 0; c < H; c++) qs[copy * 64 + n * Hs + c] = q[n * H + c]!;
    const inputs: Record<string, Float64Array> = { q: qs, kn: one(kk.slice(P * H)), vn: one(vv.slice(P * H)) };
    const past = cg.groups.map((g, gi) => {
      if (g.past === 0) return {};
      inputs[`k${gi}`] = rows(kk, g.tokenStart, g.tokenStart + g.past, cg.stride, false);
      inputs[`v${gi}`] = rows(vv, g.tokenStart, g.tokenStart + g.past, cg.stride, false);
      return { k: b.input(`k${gi}`, full), v: b.input(`v${gi}`, full) };
    });
    const res = lowerGroupedDecodeAttention(b, b.input('q', full), b.input('kn', full), b.input('vn', full), past, P, cg.stride, width, N, scale, shiftedSoftmaxPlan(exp, reciprocal, expLo));
    b.output('y', res.value, full);
    res.presentKeys.forEach((k, gi) => b.output(`pk${gi}`, k, full));
    const p = b.build();
    verifyFhe(p);
    const out = evaluatePlain(p, inputs).outputs;
    const y = out.get('y')!;
    let worst = 0;
    // Every 64-slot period of the result holds the output (the one-token replicated layout).
    for (const copy of [0, 3, slots / 64 - 1]) for (let n = 0; n < N; n++) for (let c = 0; c < H; c++) worst = Math.max(worst, Math.abs(y[copy * 64 + n * Hs + c]! - want[n * H + c]!));
    expect(worst).toBeLessThan(2e-3);
    cg.groups.forEach((g, gi) => {
      const pk = out.get(`pk${gi}`)!;
      const wantK = rows(kk, g.tokenStart, g.tokenStart + g.present, cg.stride, false);
      for (let t = 0; t < g.present; t++) for (let j = 0; j < width; j++) expect(Math.abs(pk[t * cg.stride + j]! - wantK[t * cg.stride + j]!)).toBeLessThan(1e-9);
    });
    expect(res.sites.filter((x) => x.role === 'exp')).toHaveLength(3);
  });
});

describe('carrying a KV cache into a split layout (generation)', () => {
  it('moves a 12-token cache into groups of 8 and 5 tokens by masked pieces that add up', async () => {
    const params = selectParameters({ depth: 2 });
    const slots = params.ringDegree / 2;
    const width = 64;
    // The evaluator moves the slots itself before masking (power-of-two rotation keys, one level).
    const powers = Array.from({ length: Math.log2(slots) }, (_, i) => 2 ** i);
    const client = await simBackend.createClient(params, { galoisSteps: powers, relin: false });
    const ev = await simBackend.createEvaluator(params, structuredClone(client.evaluationKeys()));
    const T = 12;
    const data = Float64Array.from({ length: T * width }, (_, i) => 2 * Math.sin(i));
    const from = { length: width, tokens: T, stride: slots / 16, period: width, copies: slots / 16 / width };
    // Destination: groups of 8 blocks of slots / 8; the second holds tokens 8..12 (5 of the 13 with the new one; 4 past).
    const stride = slots / 8;
    const dest = [
      { toStart: 0, layout: { length: width, tokens: 8, stride, period: width, copies: stride / width } },
      { toStart: 8, layout: { length: width, tokens: 4, stride, period: width, copies: stride / width } },
    ];
    const top = topLevel(params);
    const src = ev.loadCiphertext(client.encrypt(packSlots(from, slots, data), top, params.scale));
    const moved = (params.scale * Number(params.primes[top]!)) / Number(params.primes[top]!);
    // The key holder's schedule: one carry per piece, each with its token offsets.
    const points: RefreshPoint[] = dest.map((d) => ({ id: 'present.0.key', kind: 'carry', level: top - 1, scale: moved, toLevel: top, toScale: params.scale, slots, bound: 4, from, to: d.layout, piece: { fromStart: 0, toStart: d.toStart } }));
    const guard = new RefreshScheduleGuard(() => points);
    guard.beginStep(0);
    const refresher = new CacheRefresher(ev, (req) => handleCacheRefresh(client, guard, req).reply);
    for (const d of dest) {
      const piece = { fromStart: 0, toStart: d.toStart };
      expect(pieceOverlaps(from, d.layout, piece)).toBe(true);
      const [bytes] = refresher.refresh([{ ct: src, from, to: d.layout, level: topLevel(params), scale: params.scale, bound: 4, name: 'present.0.key', piece }]);
      const got = client.decrypt(bytes!);
      const want = packSlots(d.layout, slots, data.subarray(d.toStart * width, (d.toStart + d.layout.tokens) * width));
      let err = 0;
      for (let u = 0; u < slots; u++) err = Math.max(err, Math.abs(got[u]! - want[u]!));
      expect(err).toBeLessThan(1e-5);
    }
    // A source of tokens [12, 24) meets neither destination; one of [4, 16) meets both.
    expect(pieceOverlaps(from, dest[1]!.layout, { fromStart: 12, toStart: 8 })).toBe(false);
    expect(pieceOverlaps(from, dest[0]!.layout, { fromStart: 4, toStart: 0 })).toBe(true);
    expect(pieceOverlaps(from, dest[1]!.layout, { fromStart: 4, toStart: 8 })).toBe(true);
    ev.free(src);
    ev.dispose();
    client.dispose();
  });
});

describe('token grouping and cache layout limits', () => {
  it('splits tokens only when 2 copies of the widest row do not fit, and names the flag when nothing fits', () => {
    expect(tokenGrouping(8192, 64, 128, 'x')).toEqual({ tokens: 64, groupSize: 32, stride: 256 });
    expect(tokenGrouping(16384, 64, 128, 'x')).toEqual({ tokens: 64, groupSize: 64, stride: 256 });
    expect(tokenGrouping(16384, 12, 64, 'x')).toEqual({ tokens: 12, groupSize: 16, stride: 1024 });
    expect(() => tokenGrouping(256, 4, 256, 'the residual stream (4 x 256)')).toThrow(/the residual stream \(4 x 256\): a token's row of 256 slots needs 2 copies \(512 slots\).*--ring-degree/);
    expect(() => cacheLayout(256, 16384, 128, 129)).toThrow(FhecError);
    expect(() => cacheLayout(256, 16384, 128, 129)).toThrow(/KV cache of 129 token\(s\) of 256 channels.*256 x 256 = 65536 slots.*--max-context/);
  });
});

/** A synthetic Llama with random weights, exported to ONNX (fp32). */
function synthModel(name: string, cfg: Omit<LlamaConfig, 'vocab' | 'maxPositions' | 'dtype'>): string {
  const file = path.join(dir, `${name}.onnx`);
  exportOnnx(buildLlamaGraph({ ...cfg, vocab: 256, maxPositions: 128, dtype: 'float32' }, randomLlamaWeights(7)), file);
  return file;
}

/** Spread (max - min) of a tensor's values. */
const spread = (a: ArrayLike<number>) => Math.max(...Array.from(a)) - Math.min(...Array.from(a));

describe('whole synthetic models of shapes that are not powers of two', () => {
  const cases = [
    { name: 'h48-mha-head12', cfg: { layers: 1, hidden: 48, heads: 4, kvHeads: 4, headDim: 12, ffn: 136 }, S: 8, ring: 16384, groups: 1 },
    { name: 'h96-gqa3-head12', cfg: { layers: 1, hidden: 96, heads: 6, kvHeads: 2, headDim: 12, ffn: 232 }, S: 8, ring: 16384, groups: 1 },
  ];
  for (const c of cases) {
    it(`${c.name}: compiled plan on sim matches the reference logits`, async () => {
      const model = synthModel(c.name, c.cfg);
      const compiled = compileModel(model, { calibration: CALIBRATION, prefill: c.S, maxWindows: 8, ringDegree: c.ring });
      expect(compiled.lowered.embedding.groups?.length ?? 1).toBe(c.groups);
      const file = path.join(dir, `${c.name}.json`);
      writeModelPlan(file, compiled);
      const tokens = Array.from(fs.readFileSync(CALIBRATION).subarray(100, 100 + c.S));
      const ref = referenceLogits(model, tokens);
      const out = await new ModelSession(loadModelPlan(file), simBackend, { monitor: false }).run({ input_ids: tokens });
      const got = out.outputs['logits']!.data;
      let worst = 0;
      for (let i = 0; i < ref.data.length; i++) worst = Math.max(worst, Math.abs(got[i]! - ref.data[i]!));
      const e = compiled.lowered.embedding.layout;
      console.log(`${c.name} (sim, N=${compiled.params.ringDegree}, ${compiled.refreshes} refreshes): rows in ${compiled.lowered.embedding.groups?.length ?? 1} ciphertext(s), stride ${e.stride}, period ${e.period}, ${e.copies} copies; max logit error ${worst.toExponential(2)}, spread ${spread(ref.data).toFixed(2)}`);
      // Random weights: logits spread ~6; the plan is within 1% of it.
      expect(worst).toBeLessThan(0.01 * spread(ref.data));
    }, 120000);
  }

  it('hidden 96, GQA 3:1, 64-token prefill at N=16384: two token groups of 32, reference logits without CKKS noise', () => {
    const model = synthModel('h96-gqa3-s64', { layers: 1, hidden: 96, heads: 6, kvHeads: 2, headDim: 16, ffn: 232 });
    const S = 64;
    const compiled = compileModel(model, { calibration: CALIBRATION, prefill: S, maxWindows: 4, ringDegree: 16384 });
    const e = compiled.lowered.embedding;
    expect(e.groups?.map((g) => [g.tokenStart, g.layout.tokens, g.layout.stride])).toEqual([[0, 32, 256], [32, 32, 256]]);
    const tokens = Array.from(fs.readFileSync(CALIBRATION).subarray(100, 100 + S));
    const emb = embedTokens(new Float32Array(e.table.load().data), e.table.dims[0]!, e.table.dims[1]!, tokens);
    const out = evaluatePlain(compiled.lowered.program, embeddingInputs(e, emb)).outputs;
    const ref = referenceLogits(model, tokens);
    let worst = 0;
    for (const o of compiled.lowered.outputs) for (const blk of o.blocks) {
      const slots = out.get(blk.fhe)!;
      for (let t = 0; t < blk.layout.tokens; t++) for (let j = 0; j < blk.layout.length; j++) {
        worst = Math.max(worst, Math.abs(slots[t * blk.layout.stride + j]! - ref.data[((blk.tokenStart ?? 0) + t) * 256 + blk.colStart + j]!));
      }
    }
    expect(worst).toBeLessThan(0.01 * spread(ref.data));
  }, 120000);
});
