// The canonical lowering's attention (passes/fhe/lower-canonical: lowerPrefillAttention, causal, and
// lowerDecodeAttention against an encrypted KV cache) on the CKKS simulator (SEAL for one decode step)
// against the float64 canonical attention kernel, on random inputs and on real q/k/v of model A. GQA:
// K/V arrive with each KV head repeated for its query heads (the projections' weights do it), and the
// reference takes them unexpanded. Approximations are fitted as lower-model.ts does, on attention
// statistics (attention-stats.ts) of the data or of calibration. The circuits are deeper than one chain:
// refreshes are placed by passes/fhe/refresh-greedy.ts and carried out by the client-aided refresher.

import { beforeAll, describe, expect, it } from 'vitest';
import { FheBuilder } from '../ir/fhe/index.js';
import type { FheProgram, SlotLayout } from '../ir/fhe/types.js';
import { fheChain, selectParameters, topLevel } from '../ir/ckks/params.js';
import type { Node } from '../ir/graph/types.js';
import type { Tensor } from '../ir/tensor.js';
import { fheCost, type FheCost } from '../passes/fhe/analysis/cost.js';
import { foldableInputMap } from '../passes/approx/approximation.js';
import type { SoftmaxPlan } from '../passes/fhe/lower-canonical/softmax-plan.js';
import { lowerPrefillAttention } from '../passes/fhe/lower-canonical/attention.js';
import { cacheLayout, decodeBuckets, lowerDecodeAttention, lowerGroupedDecodeAttention } from '../passes/fhe/lower-canonical/attention-decode.js';
import { PastConstants } from '../passes/fhe/lower-canonical/past-constants.js';
import { programAtPast } from '../ir/fhe/past-instance.js';
import { collectAttentionStats, observeAttention, type AttentionStats } from '../passes/fhe/lower-canonical/attention-stats.js';
import { manageScales } from '../passes/fhe/manage/manage-scales.js';
import { nextPow2, replicatedLayout } from '../passes/fhe/layout/packing.js';
import { placeRefreshesGreedy } from '../passes/fhe/refresh/refresh-greedy.js';
import type { CkksBackend } from '../runtime/backend.js';
import { runProgram } from '../runtime/ckks/execute.js';
import { sealBackend } from '../runtime/seal/backend.js';
import { simBackend } from '../runtime/sim/backend.js';
import { calibratedRefreshBounds } from '../passes/fhe/refresh/refresh-bounds.js';
import { kernelMaskPolicy } from './helpers/refresh-mask.js';
import {
  attentionBound,
  attentionFor,
  emptyAttentionStats,
  expandHeads,
  f64,
  fakeNode,
  fullLayout,
  loadModelA,
  maxAbs,
  maxDiff,
  reference,
  replicated,
  rng,
  type AttentionFit,
  type ModelA,
} from './helpers/fhe-lower.js';

/** Model A's attention: 4 query heads, 2 KV heads of 16. */
const A = { N: 4, Nkv: 2, H: 16, scale: 0.25 };
const G = A.N / A.Nkv;
const W = A.N * A.H;
const D = A.Nkv * A.H;
const node: Node = fakeNode('attention', { num_heads: A.N, kv_num_heads: A.Nkv, scale: A.scale, causal: 1 });

/** The canonical attention kernel: q [1,S,N*H], k/v [1,S,Nkv*H], past [1,Nkv,P,H]. */
function referenceAttention(q: Tensor, k: Tensor, v: Tensor, pastK: Tensor | null, pastV: Tensor | null): Float64Array {
  return reference('attention', { num_heads: A.N, kv_num_heads: A.Nkv, scale: A.scale, causal: 1 }, [q, k, v, pastK, pastV])[0]!.data;
}

/** [T, Nkv*H] rows -> past tensor [1, Nkv, T, H]. */
function pastOf(rowsKV: ArrayLike<number>, T: number): Tensor {
  const out = new Float64Array(T * D);
  for (let t = 0; t < T; t++) for (let g = 0; g < A.Nkv; g++) for (let h = 0; h < A.H; h++) out[(g * T + t) * A.H + h] = rowsKV[t * D + g * A.H + h]!;
  return f64([1, A.Nkv, T, A.H], out);
}

const N_RING = 16384;
const SLOTS = N_RING / 2;
const simParams = selectParameters({ depth: 7, ringDegree: N_RING });
// SEAL at N=16384 takes ~4x longer per op: N=8192 with a 3-level, 35-bit chain (more refreshes,
// 128-bit secure) is precise to ~1e-4 on these values.
const sealParams = selectParameters({ depth: 3, scaleBits: 35, ringDegree: N_RING / 2 });

/** Places refreshes for the chain, manages, runs; returns the output slots and the refresh count. */
async function execute(program: FheProgram, tensors: Record<string, ArrayLike<number>>, backend: CkksBackend = simBackend) {
  const params = backend === sealBackend ? sealParams : simParams;
  const L = topLevel(params);
  const placed = placeRefreshesGreedy(program, L);
  const managed = manageScales(placed.program, { chain: fheChain(params), topScale: params.scale, inputLevel: L });
  const t0 = performance.now();
  // Refresh bounds calibrated on these inputs, without margin, and the widest mask that fits: greedy
  // placement refreshes at level 0, where the modulus leaves 18 bits above the scale, and these values
  // reach 2^12 (model plans refresh at level >= 1, with 58 bits). These tests are about the kernels.
  const bounds = calibratedRefreshBounds(managed, [tensors], 0);
  const res = await runProgram(managed, params, backend, tensors, { refreshBounds: bounds, mask: kernelMaskPolicy(managed, params, bounds) });
  return { outputs: res.outputs, refreshes: placed.refreshed.length, ms: performance.now() - t0 };
}

const costText = (c: FheCost) => `${c.rotations} rotations (${c.galoisSteps.length} keys), ${c.ctMultiplications} ct x ct, ${c.plainMultiplications} pt muls, depth ${c.depth}`;

/** Decode: log2(H) for the within-head sums and as many to broadcast over the head, 3 + k rotate-and-sums over the P+1 blocks (k normalize-and-square rounds). */
const decodeRotations = (P: number, fit: AttentionFit) => 2 * Math.log2(A.H) + (3 + fit.squarings) * Math.log2(nextPow2(P + 1));
/** Prefill: per key offset d < T, log2(H) within-head sums; for d > 0 also rot(k), rot(v) and log2(H) to broadcast. */
const prefillRotations = (T: number) => T * Math.log2(A.H) + (T - 1) * (2 + Math.log2(A.H));

interface DecodeBuilt {
  program: FheProgram;
  cost: FheCost;
  /** The builder's own count. */
  rotations: number;
  qLayout: SlotLayout;
  cache: SlotLayout;
}

/** Builds one decode step after P cached tokens: q (N*H), new k/v and the cache, all GQA-expanded. */
function buildDecode(P: number, fit: AttentionFit, slots: number): DecodeBuilt {
  const b = new FheBuilder('decode', slots);
  const qLayout = replicatedLayout(W, slots, 1);
  const past = cacheLayout(W, slots, P, P + 1);
  const res = lowerDecodeAttention(b, b.input('q', qLayout), b.input('k', qLayout), b.input('v', qLayout), b.input('past_k', past), b.input('past_v', past), cacheLayout(W, slots, P + 1, P + 1), A.N, A.scale, fit);
  b.output('y', res.value, fullLayout(qLayout));
  const cache = cacheLayout(W, slots, P + 1, P + 1);
  b.output('present_k', res.presentKey, fullLayout(cache));
  const program = b.build();
  return { program, cost: fheCost(program), rotations: res.rotations, qLayout, cache };
}

/** One decode step: query `q` (N*H), keys/values rows [P+1, Nkv*H] (the last row is the new token's). */
async function decodeCase(q: ArrayLike<number>, kRows: ArrayLike<number>, vRows: ArrayLike<number>, P: number, fit: AttentionFit, backend: CkksBackend = simBackend) {
  const slots = backend === sealBackend ? sealParams.ringDegree / 2 : SLOTS;
  const built = buildDecode(P, fit, slots);
  const kx = expandHeads(kRows, P + 1, A.Nkv, A.H, G);
  const vx = expandHeads(vRows, P + 1, A.Nkv, A.H, G);
  const run = await execute(
    built.program,
    { q, k: kx.subarray(P * W), v: vx.subarray(P * W), past_k: kx.subarray(0, P * W), past_v: vx.subarray(0, P * W) },
    backend,
  );
  const want = referenceAttention(
    f64([1, 1, W], q),
    f64([1, 1, D], Array.from(kRows).slice(P * D)),
    f64([1, 1, D], Array.from(vRows).slice(P * D)),
    P ? pastOf(kRows, P) : null,
    P ? pastOf(vRows, P) : null,
  );
  const err = maxDiff(run.outputs.get('y')!.values, replicated(built.qLayout, want));
  // The updated cache: block t holds key t (the new one masked into block P), in every copy.
  const cacheErr = maxDiff(run.outputs.get('present_k')!.values, replicated(built.cache, kx));
  const bound = attentionBound(fit, P + 1, maxAbs(vRows)) + 1e-4;
  return { err, cacheErr, bound, built, run, want };
}

/** Attention statistics of the rows (prefill of q/k, or one decode row with its past), as calibration records them. */
function statsOf(q: ArrayLike<number>, kRows: ArrayLike<number>, P: number): AttentionStats {
  const st = emptyAttentionStats();
  const S = q.length / W;
  const past = P ? pastOf(kRows, P) : undefined;
  observeAttention(node, f64([1, S, W], q), f64([1, S, D], Array.from(kRows).slice(P * D)), st, past);
  return st;
}

/** exp's map onto [-1, 1] goes into the score masks (foldableInputMap): the plan's depth counts it, the circuit does not. */
const foldedMap = (fit: SoftmaxPlan) => (foldableInputMap(fit.exp) ? 1 : 0);

const randoms = (n: number, r: () => number, scale: number) => Float64Array.from({ length: n }, () => scale * (2 * r() - 1));

describe('attention decode with an encrypted KV cache (lowerDecodeAttention)', () => {
  it('random q/k/v, 7 cached keys + the new one (sim): output, updated cache, depth and rotations', async () => {
    const r = rng(11);
    const P = 7;
    const q = randoms(W, r, 3);
    const k = randoms((P + 1) * D, r, 1);
    const v = randoms((P + 1) * D, r, 1);
    const fit = attentionFor(statsOf(q, k, P), P + 1);
    const { err, cacheErr, bound, built, run, want } = await decodeCase(q, k, v, P, fit);
    console.log(`decode P=${P}: ${costText(built.cost)}; ${fit.describe()}; ${run.refreshes} refreshes, ${run.ms.toFixed(0)} ms; max error ${err.toExponential(2)} vs bound ${bound.toExponential(2)} (|y| <= ${maxAbs(want).toFixed(2)})`);
    // Mask the new K/V in, q K, mask, softmax (exp, 1/x rounds), mask, product.
    expect(built.cost.depth).toBe(5 + fit.depth - foldedMap(fit));
    expect(built.cost.rotations).toBe(decodeRotations(P, fit));
    expect(built.rotations).toBe(built.cost.rotations);
    expect(err).toBeLessThan(bound);
    expect(cacheErr).toBeLessThan(1e-5);
  });

  it('one decode step on SEAL, 3 cached keys', async () => {
    const r = rng(13);
    const P = 3;
    const q = randoms(W, r, 2);
    const k = randoms((P + 1) * D, r, 1);
    const v = randoms((P + 1) * D, r, 1);
    const fit = attentionFor(statsOf(q, k, P), P + 1);
    const { err, cacheErr, bound, built, run, want } = await decodeCase(q, k, v, P, fit, sealBackend);
    console.log(`SEAL decode P=${P} (N=${sealParams.ringDegree}, ${sealParams.bitSizes.join('/')} bits): ${costText(built.cost)}; ${run.refreshes} refreshes, ${run.ms.toFixed(0)} ms; max error ${err.toExponential(2)} vs bound ${bound.toExponential(2)} (|y| <= ${maxAbs(want).toFixed(2)})`);
    expect(err).toBeLessThan(bound);
    expect(cacheErr).toBeLessThan(1e-3);
  });
});

describe('decode plans by buckets of past length', () => {
  it('buckets follow the cache layout: doubling within one ciphertext, then one group of blocks at a time', () => {
    // 64-channel rows: 64 blocks per ciphertext at 4096 slots.
    expect(decodeBuckets(64, 4096, 8, 127)).toEqual([{ from: 8, to: 15 }, { from: 16, to: 31 }, { from: 32, to: 63 }, { from: 64, to: 64 }, { from: 65, to: 127 }]);
    expect(decodeBuckets(64, 8192, 8, 127)).toEqual([{ from: 8, to: 15 }, { from: 16, to: 31 }, { from: 32, to: 63 }, { from: 64, to: 127 }]);
  });

  it('a decode step lowered for past 7 runs past 4 with its past constants: blocks past 4 masked, the output as the reference (sim)', async () => {
    const r = rng(23);
    const [Pmax, Q] = [7, 4];
    const q = randoms(W, r, 3);
    const k = randoms((Q + 1) * D, r, 1);
    const v = randoms((Q + 1) * D, r, 1);
    const fit = attentionFor(statsOf(q, k, Q), Pmax + 1);
    const b = new FheBuilder('decode', SLOTS);
    const qLayout = replicatedLayout(W, SLOTS, 1);
    const past = cacheLayout(W, SLOTS, Pmax, Pmax + 1);
    const pc = new PastConstants(Pmax);
    const pk = b.input('past_k', past);
    const pv = b.input('past_v', past);
    const res = lowerGroupedDecodeAttention(b, b.input('q', qLayout), b.input('k', qLayout), b.input('v', qLayout), [{ k: pk, v: pv }], Pmax, past.stride, W, A.N, A.scale, fit, pc);
    b.output('y', res.value, fullLayout(qLayout));
    const program = b.build();
    expect([...pc.rules.keys()].length).toBeGreaterThanOrEqual(5);
    const atQ = programAtPast(program, { constants: new Map([...pc.rules].map(([n, rule]) => [n, rule(Q)])), layouts: new Map() });
    const kx = expandHeads(k, Q + 1, A.Nkv, A.H, G);
    const vx = expandHeads(v, Q + 1, A.Nkv, A.H, G);
    // Blocks Q + 1 .. Pmax - 1 hold values of up to 40 (scores of ~1e3: counted, they would swamp the row);
    // block Q, where the new token goes, is empty (the cache carry leaves slots of no token at zero).
    const padded = (x: Float64Array) => {
      const out = randoms(Pmax * W, r, 40);
      out.set(x.subarray(0, Q * W));
      out.fill(0, Q * W, (Q + 1) * W);
      return out;
    };
    const run = await execute(atQ, { q, k: kx.subarray(Q * W), v: vx.subarray(Q * W), past_k: padded(kx), past_v: padded(vx) }, simBackend);
    const want = referenceAttention(f64([1, 1, W], q), f64([1, 1, D], Array.from(k).slice(Q * D)), f64([1, 1, D], Array.from(v).slice(Q * D)), pastOf(k, Q), pastOf(v, Q));
    const err = maxDiff(run.outputs.get('y')!.values, replicated(qLayout, want));
    const bound = attentionBound(fit, Pmax + 1, maxAbs(v)) + 1e-4;
    console.log(`decode lowered for past ${Pmax}, run at past ${Q}: max error ${err.toExponential(2)} vs bound ${bound.toExponential(2)}`);
    expect(err).toBeLessThan(bound);
  });
});

describe('attention prefill, causal (lowerPrefillAttention)', () => {
  it('random q/k/v, 6 tokens (sim): output, depth and rotations', async () => {
    const r = rng(12);
    const S = 6;
    const q = randoms(S * W, r, 3);
    const k = randoms(S * D, r, 1);
    const v = randoms(S * D, r, 1);
    const fit = attentionFor(statsOf(q, k, 0), S);
    const layout = replicatedLayout(W, SLOTS, S);
    const b = new FheBuilder('prefill', SLOTS);
    const res = lowerPrefillAttention(b, b.input('q', layout), b.input('k', layout), b.input('v', layout), layout, A.N, A.scale, fit);
    b.output('y', res.value, fullLayout(layout));
    const program = b.build();
    const cost = fheCost(program);
    const run = await execute(program, { q, k: expandHeads(k, S, A.Nkv, A.H, G), v: expandHeads(v, S, A.Nkv, A.H, G) });
    const want = referenceAttention(f64([1, S, W], q), f64([1, S, D], k), f64([1, S, D], v), null, null);
    const err = maxDiff(run.outputs.get('y')!.values, replicated(layout, want));
    const bound = attentionBound(fit, S, maxAbs(v)) + 1e-4;
    console.log(`prefill S=${S}: ${costText(cost)}; ${run.refreshes} refreshes; max error ${err.toExponential(2)} vs bound ${bound.toExponential(2)}`);
    // q k, mask, softmax (exp, 1/x rounds), mask, product.
    expect(cost.depth).toBe(4 + fit.depth - foldedMap(fit));
    expect(cost.rotations).toBe(prefillRotations(S));
    expect(res.rotations).toBe(cost.rotations);
    expect(res.sites.filter((s) => s.role === 'exp')).toHaveLength(S - 1);
    expect(err).toBeLessThan(bound);
  });
});

describe('attention head size', () => {
  it('rejects a head size that is not a power of two (the within-head sums would read the next head)', () => {
    const st = { ...emptyAttentionStats(), relMin: -5, relMax: 0, sumMin: 1, sumMax: 3, diagMin: -1, diagMax: 1 };
    const fit = attentionFor(st, 2);
    const layout = replicatedLayout(24, 1024, 2);
    const b = new FheBuilder('h12', 1024);
    const [q, k, v] = ['q', 'k', 'v'].map((n) => b.input(n, layout));
    expect(() => lowerPrefillAttention(b, q!, k!, v!, layout, 2, 1, fit)).toThrow(/head size 24\/2 must be a power of two/);
    const cache = cacheLayout(24, 1024, 2, 3);
    expect(() => lowerDecodeAttention(b, q!, k!, v!, b.input('pk', cache), b.input('pv', cache), cacheLayout(24, 1024, 3, 3), 2, 1, fit)).toThrow(/must be a power of two/);
  });
});

// ---------------------------------------------------------------------------------------------------
// Model A: q/k/v (after RoPE) of both attention layers for one 64-token window of calibration.txt, and
// the attention statistics of the 3 calibration windows.

let M: ModelA;
let stats: Map<string, AttentionStats>;
const fits = new Map<string, AttentionFit>();
const attentionNodes = (): Node[] => M.opsOf('attention');
/** The softmax plan lower-model.ts would make for layer `layer` and rows of at most `rowLength` keys (calibration margin). */
function fitOf(layer: number, rowLength: number): AttentionFit {
  const key = `${layer}/${rowLength}`;
  let f = fits.get(key);
  if (!f) {
    const n = attentionNodes()[layer]!;
    fits.set(key, (f = attentionFor(stats.get(n.name)!, rowLength, n.outputs[0]!.range?.margin ?? 0.1)));
  }
  return f;
}

beforeAll(() => {
  M = loadModelA();
  stats = collectAttentionStats(M.graph, M.sets);
});

describe('attention on model A activations', () => {
  for (const layer of [0, 1]) {
    it(`decode, layer ${layer}: query 40 against 40 encrypted cached keys + itself (sim)`, async () => {
      const n = attentionNodes()[layer]!;
      const [qT, kT, vT] = n.inputs.map((v) => M.tensorOf(v!));
      const i = 40;
      const q = qT!.data.slice(i * W, (i + 1) * W);
      const fit = fitOf(layer, i + 1);
      const { err, cacheErr, bound, built, run, want } = await decodeCase(q, kT!.data.slice(0, (i + 1) * D), vT!.data.slice(0, (i + 1) * D), i, fit);
      expect(maxDiff(want, M.tensorOf(n.outputs[0]!).data.slice(i * W, (i + 1) * W))).toBeLessThan(1e-5); // the decode reference is the prefill's row
      console.log(
        `model A layer ${layer} decode P=${i}: ${fit.describe()}; ${costText(built.cost)}; ` +
          `${run.refreshes} refreshes, ${run.ms.toFixed(0)} ms; max error ${err.toExponential(2)} vs bound ${bound.toExponential(2)} (|y| <= ${maxAbs(want).toFixed(2)})`,
      );
      expect(err).toBeLessThan(bound);
      expect(cacheErr).toBeLessThan(1e-5);
    });
  }

  it('prefill, layer 1: 16 tokens, causal (sim)', async () => {
    const n = attentionNodes()[1]!;
    const [qT, kT, vT] = n.inputs.map((v) => M.tensorOf(v!));
    const S = 16;
    const layout = replicatedLayout(W, SLOTS, S);
    const fit = fitOf(1, S);
    const b = new FheBuilder('prefill', SLOTS);
    const res = lowerPrefillAttention(b, b.input('q', layout), b.input('k', layout), b.input('v', layout), layout, A.N, A.scale, fit);
    b.output('y', res.value, fullLayout(layout));
    const program = b.build();
    const v = vT!.data.slice(0, S * D);
    const run = await execute(program, { q: qT!.data.slice(0, S * W), k: expandHeads(kT!.data, S, A.Nkv, A.H, G), v: expandHeads(v, S, A.Nkv, A.H, G) });
    const want = M.tensorOf(n.outputs[0]!).data.slice(0, S * W);
    const err = maxDiff(run.outputs.get('y')!.values, replicated(layout, want));
    const bound = attentionBound(fit, S, maxAbs(v)) + 1e-4;
    console.log(`model A layer 1 prefill S=${S}: ${costText(fheCost(program))}; ${run.refreshes} refreshes, ${run.ms.toFixed(0)} ms; max error ${err.toExponential(2)} vs bound ${bound.toExponential(2)} (|y| <= ${maxAbs(want).toFixed(2)})`);
    expect(err).toBeLessThan(bound);
  });
});

describe('attention cost at model A sizes (built, not run)', () => {
  it('decode with 7 and 63 cached keys, 64-token prefill: depth = softmax + 5 (decode) or + 4 (prefill); rotations as counted; cheaper than the shifted softmax', () => {
    const rowsOut: string[] = [];
    const layer = attentionNodes()[1]!;
    const shiftedOf = (n: number) => attentionFor(stats.get(layer.name)!, n, layer.outputs[0]!.range?.margin ?? 0.1, 'shifted');
    for (const P of [7, 63]) {
      const fit = fitOf(1, P + 1);
      const d = buildDecode(P, fit, SLOTS);
      expect(d.cost.depth).toBe(5 + fit.depth - foldedMap(fit));
      expect(d.cost.rotations).toBe(decodeRotations(P, fit));
      const shifted = buildDecode(P, shiftedOf(P + 1), SLOTS);
      rowsOut.push(`decode P=${P} (N=${2 * SLOTS}): ${fit.describe()}\n    squaring: ${costText(d.cost)}\n    shifted:  ${costText(shifted.cost)}`);
      expect(d.cost.ctMultiplications).toBeLessThan(shifted.cost.ctMultiplications);
    }
    for (const slots of [8192, 16384]) {
      const fit = fitOf(1, 64);
      const b = new FheBuilder('prefill', slots);
      const layout = replicatedLayout(W, slots, 64);
      const res = lowerPrefillAttention(b, b.input('q', layout), b.input('k', layout), b.input('v', layout), layout, A.N, A.scale, fit);
      b.output('y', res.value, layout);
      const cost = fheCost(b.build());
      expect(cost.depth).toBe(4 + fit.depth - foldedMap(fit));
      expect(cost.rotations).toBe(prefillRotations(64));
      rowsOut.push(`prefill T=64 (N=${2 * slots}): ${fit.describe()}\n    ${costText(cost)}`);
    }
    console.log(`model A layer 1 attention:\n${rowsOut.join('\n')}`);
  });
});

describe('softmax methods compared on model A (sim)', () => {
  it('normalize-and-square vs shifted, layer 1: decode P=40 and prefill of 16, depth / ct x ct / rotations / measured error', async () => {
    const n = attentionNodes()[1]!;
    const [qT, kT, vT] = n.inputs.map((v) => M.tensorOf(v!));
    const margin = n.outputs[0]!.range?.margin ?? 0.1;
    const rows: string[] = ['| step | method | softmax plan depth | circuit depth | ct x ct | pt muls | rotations | max error | bound |', '|---|---|---:|---:|---:|---:|---:|---:|---:|'];
    const results = new Map<string, { ct: number; err: number }>();
    for (const method of ['squaring', 'shifted'] as const) {
      const i = 40;
      const fit = attentionFor(stats.get(n.name)!, i + 1, margin, method);
      const d = await decodeCase(qT!.data.slice(i * W, (i + 1) * W), kT!.data.slice(0, (i + 1) * D), vT!.data.slice(0, (i + 1) * D), i, fit);
      expect(d.err).toBeLessThan(d.bound);
      rows.push(`| decode P=${i} | ${method}${method === 'squaring' ? ` k=${fit.squarings}` : ''} | ${fit.depth} | ${d.built.cost.depth} | ${d.built.cost.ctMultiplications} | ${d.built.cost.plainMultiplications} | ${d.built.cost.rotations} | ${d.err.toExponential(2)} | ${d.bound.toExponential(2)} |`);
      results.set(`decode ${method}`, { ct: d.built.cost.ctMultiplications, err: d.err });
      const S = 16;
      const pf = attentionFor(stats.get(n.name)!, S, margin, method);
      const layout = replicatedLayout(W, SLOTS, S);
      const b = new FheBuilder('prefill', SLOTS);
      const res = lowerPrefillAttention(b, b.input('q', layout), b.input('k', layout), b.input('v', layout), layout, A.N, A.scale, pf);
      b.output('y', res.value, fullLayout(layout));
      const program = b.build();
      const cost = fheCost(program);
      const v = vT!.data.slice(0, S * D);
      const run = await execute(program, { q: qT!.data.slice(0, S * W), k: expandHeads(kT!.data, S, A.Nkv, A.H, G), v: expandHeads(v, S, A.Nkv, A.H, G) });
      const err = maxDiff(run.outputs.get('y')!.values, replicated(layout, M.tensorOf(n.outputs[0]!).data.slice(0, S * W)));
      const bound = attentionBound(pf, S, maxAbs(v)) + 1e-4;
      expect(err).toBeLessThan(bound);
      rows.push(`| prefill S=${S} | ${method}${method === 'squaring' ? ` k=${pf.squarings}` : ''} | ${pf.depth} | ${cost.depth} | ${cost.ctMultiplications} | ${cost.plainMultiplications} | ${cost.rotations} | ${err.toExponential(2)} | ${bound.toExponential(2)} |`);
      results.set(`prefill ${method}`, { ct: cost.ctMultiplications, err });
    }
    console.log(rows.join('\n'));
    expect(results.get('decode squaring')!.ct).toBeLessThan(results.get('decode shifted')!.ct);
    expect(results.get('prefill squaring')!.ct).toBeLessThan(results.get('prefill shifted')!.ct);
  });
});
