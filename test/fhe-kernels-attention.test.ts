// Attention kernels (decode against an encrypted KV cache, causal prefill, GQA) and the softmax plan,
// on the CKKS simulator (SEAL for one decode step) against the float64 canonical attention kernel, on
// random inputs and on real q/k/v of model A. The circuits are deeper than one chain: refreshes are
// placed by passes/fhe/refresh-greedy.ts and carried out by the client-aided refresher.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { textCalibrationSets } from '../compiler/calibration-data.js';
import { loadModel } from '../compiler/driver.js';
import { FheBuilder } from '../ir/fhe/index.js';
import type { FheProgram, FheValue, SlotLayout } from '../ir/fhe/types.js';
import type { Graph, Node, Value } from '../ir/graph/types.js';
import { Tensor } from '../ir/tensor.js';
import { calibrate } from '../passes/calibrate/calibrate.js';
import { multiplicativeDepth } from '../passes/fhe/depth.js';
import { gqaHeadPositions, lowerAttentionDecode, lowerAttentionPrefill, splitTokens, type AttentionResult } from '../passes/fhe/kernels/attention.js';
import { planSoftmax } from '../passes/fhe/kernels/softmax.js';
import { manageScales } from '../passes/fhe/manage.js';
import { replicatedLayout } from '../passes/fhe/packing.js';
import { placeRefreshesGreedy } from '../passes/fhe/refresh-greedy.js';
import type { CkksBackend } from '../runtime/backend.js';
import { runProgram } from '../runtime/ckks/execute.js';
import { fheChain, selectParameters, topLevel } from '../ir/ckks/params.js';
import { runGraph } from '../runtime/reference/interpreter.js';
import { canonicalKernels } from '../runtime/reference/ops/canonical.js';
import { sealBackend } from '../runtime/seal/backend.js';
import { simBackend } from '../runtime/sim/backend.js';
import { MODELS } from './helpers/shared.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}
const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, x) => Math.max(m, Math.abs(x)), 0);
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
const f64 = (dims: number[], data: ArrayLike<number>) => Tensor.from('float64', dims, Array.from(data));
const fullLayout = (l: SlotLayout): SlotLayout => ({ length: l.stride, tokens: l.tokens, stride: l.stride, period: l.stride, copies: 1 });
function replicated(l: SlotLayout, data: ArrayLike<number>): Float64Array {
  const out = new Float64Array(l.stride * l.tokens);
  for (let t = 0; t < l.tokens; t++) for (let r = 0; r < l.copies; r++) for (let j = 0; j < l.length; j++) out[t * l.stride + r * l.period + j] = data[t * l.length + j]!;
  return out;
}

const A = { N: 4, Nkv: 2, H: 16, scale: 0.25 };

/** The canonical attention kernel: q [1,S,N*H], k/v [1,S,Nkv*H], past [1,Nkv,P,H]. */
function referenceAttention(q: Tensor, k: Tensor, v: Tensor, pastK: Tensor | null, pastV: Tensor | null): Float64Array {
  const node = {
    op: 'attention',
    domain: 'fhec',
    name: 'attention',
    inputs: [],
    outputs: [],
    attrs: {
      num_heads: { kind: 'int', value: A.N },
      kv_num_heads: { kind: 'int', value: A.Nkv },
      scale: { kind: 'float', value: A.scale },
      causal: { kind: 'int', value: 1 },
    },
  } as unknown as Node;
  return canonicalKernels.attention!({ node, opset: 1 }, [q, k, v, pastK, pastV])[0]!.data;
}

/** [T, Nkv*H] rows -> past tensor [1, Nkv, T, H]. */
function pastOf(rowsKV: Float64Array, T: number): Tensor {
  const out = new Float64Array(T * A.Nkv * A.H);
  for (let t = 0; t < T; t++) for (let g = 0; g < A.Nkv; g++) for (let h = 0; h < A.H; h++) out[(g * T + t) * A.H + h] = rowsKV[t * A.Nkv * A.H + g * A.H + h]!;
  return f64([1, A.Nkv, T, A.H], out);
}

const N_RING = 16384;
const simParams = selectParameters({ depth: 7, ringDegree: N_RING });
const SLOTS = N_RING / 2;

/** Places refreshes for the chain, manages, runs; returns the output slots and the refresh count. */
// SEAL at N=16384 takes ~15 s for one step; N=8192 with a 3-level, 35-bit chain (more refreshes, 128-bit
// secure) is 4x cheaper per op and still precise to ~1e-4 on these values.
const sealParams = selectParameters({ depth: 3, scaleBits: 35, ringDegree: N_RING / 2 });

async function execute(program: FheProgram, tensors: Record<string, ArrayLike<number>>, backend: CkksBackend = simBackend) {
  const params = backend === sealBackend ? sealParams : simParams;
  const L = topLevel(params);
  const placed = placeRefreshesGreedy(program, L);
  const managed = manageScales(placed.program, { chain: fheChain(params), topScale: params.scale, inputLevel: L });
  const t0 = performance.now();
  const res = await runProgram(managed, params, backend, tensors);
  return { slots: res.outputs.get('y')!.values, refreshes: placed.refreshed.length, ms: performance.now() - t0 };
}

function summary(r: AttentionResult): string {
  const c = r.cost;
  return `${c.rotations} rotations (${c.galoisSteps.length} keys), ${c.ctMultiplications} ct x ct, ${c.plainMultiplications} pt muls, depth ${c.depth}`;
}

/** One decode step: query `q` (N*H), new k/v (Nkv*H), cache rows [P, Nkv*H]. */
async function decodeCase(q: Float64Array, kRows: Float64Array, vRows: Float64Array, P: number, scores: { lo: number; hi: number }, backend: CkksBackend = simBackend, headsPermuted = false) {
  const pos = gqaHeadPositions(A.N, A.Nkv, A.H);
  /** Natural head order -> the packed order (what a driver gets by permuting W_q rows / W_o columns). */
  const permute = (x: ArrayLike<number>) => {
    const out = new Float64Array(x.length);
    for (let n = 0; n < A.N; n++) for (let h = 0; h < A.H; h++) out[pos[n]! * A.H + h] = x[n * A.H + h]!;
    return out;
  };
  const slots = backend === sealBackend ? sealParams.ringDegree / 2 : SLOTS;
  const qLayout = replicatedLayout(A.N * A.H, slots, 1);
  const kvLayout = replicatedLayout(A.Nkv * A.H, slots, 1);
  const b = new FheBuilder('decode', slots);
  const D = A.Nkv * A.H;
  const cache = { keys: [] as FheValue[], values: [] as FheValue[] };
  const tensors: Record<string, ArrayLike<number>> = { q: headsPermuted ? permute(q) : q };
  for (let j = 0; j < P; j++) {
    cache.keys.push(b.input(`k${j}`, kvLayout));
    cache.values.push(b.input(`v${j}`, kvLayout));
    tensors[`k${j}`] = kRows.subarray(j * D, (j + 1) * D);
    tensors[`v${j}`] = vRows.subarray(j * D, (j + 1) * D);
  }
  tensors.k = kRows.subarray(P * D, (P + 1) * D);
  tensors.v = vRows.subarray(P * D, (P + 1) * D);
  const softmax = planSoftmax({ scores, length: P + 1 });
  const res = lowerAttentionDecode(b, b.input('q', qLayout), qLayout, b.input('k', kvLayout), b.input('v', kvLayout), kvLayout, cache, {
    numHeads: A.N,
    kvNumHeads: A.Nkv,
    headDim: A.H,
    scale: A.scale,
    softmax,
    headsPermuted,
  });
  expect(res.present.keys.length).toBe(P + 1);
  b.output('y', res.value, fullLayout(qLayout));
  const program = b.build();
  expect(multiplicativeDepth(program)).toBe(res.cost.depth);
  const run = await execute(program, tensors, backend);
  const natural = referenceAttention(
    f64([1, 1, A.N * A.H], q),
    f64([1, 1, D], tensors.k),
    f64([1, 1, D], tensors.v),
    P ? pastOf(kRows.subarray(0, P * D), P) : null,
    P ? pastOf(vRows.subarray(0, P * D), P) : null,
  );
  const want = headsPermuted ? permute(natural) : natural;
  const err = maxDiff(run.slots, replicated(qLayout, want));
  return { err, res, softmax, run, want };
}

describe('GQA packing and the softmax plan', () => {
  it('places query heads against their KV heads (model A: [q0 q2 q1 q3])', () => {
    expect(gqaHeadPositions(4, 2, 16)).toEqual([0, 2, 1, 3]);
    expect(gqaHeadPositions(4, 4, 16)).toEqual([0, 1, 2, 3]);
    expect(gqaHeadPositions(8, 2, 8)).toEqual([0, 2, 4, 6, 1, 3, 5, 7]);
    expect(gqaHeadPositions(4, 1, 16)).toEqual([0, 1, 2, 3]);
  });

  it('the float64 model of the planned softmax stays within its predicted error on rows of real spread', () => {
    const r = rng(5);
    for (const [lo, hi, n] of [[-3, 2, 16], [-30, 17, 65], [-49.3, 10.7, 64]] as const) {
      const plan = planSoftmax({ scores: { lo, hi }, length: n });
      let worst = 0;
      for (let trial = 0; trial < 200; trial++) {
        const len = 1 + Math.floor(r() * n);
        // Rows whose max sits anywhere in the range (the case a constant shift gets wrong).
        const top = lo + (hi - lo) * r();
        const z = Array.from({ length: len }, () => lo + (top - lo) * r());
        const m = Math.max(...z);
        const e = z.map((x) => Math.exp(x - m));
        const s = e.reduce((a, x) => a + x, 0);
        const got = plan.evaluate(z);
        got.forEach((p, i) => (worst = Math.max(worst, Math.abs(p - e[i]! / s) / Math.max(e[i]! / s, 1e-3))));
      }
      console.log(`softmax on [${lo}, ${hi}] x${n}: cooling ${plan.cooling}, depth ${plan.depth}, predicted rel ${plan.predictedMaxRelError.toExponential(2)}, observed ${worst.toExponential(2)}`);
      expect(worst).toBeLessThan(2 * plan.predictedMaxRelError + 1e-6);
    }
  });

  it('a calibrated row-max range needs less cooling (model A layer 1: row max in [-3.85, 9.71])', () => {
    const r = rng(6);
    const scores = { lo: -49.3, hi: 10.7 };
    const rowMax = { lo: -4.3, hi: 10.7 };
    const without = planSoftmax({ scores, length: 64 });
    const withRowMax = planSoftmax({ scores, length: 64, rowMax });
    let worst = 0;
    for (let trial = 0; trial < 200; trial++) {
      const len = 1 + Math.floor(r() * 64);
      const top = rowMax.lo + (rowMax.hi - rowMax.lo) * r();
      const z = [top, ...Array.from({ length: len - 1 }, () => scores.lo + (top - scores.lo) * r())];
      const e = z.map((x) => Math.exp(x - top));
      const s = e.reduce((a, x) => a + x, 0);
      withRowMax.evaluate(z).forEach((p, i) => (worst = Math.max(worst, Math.abs(p - e[i]! / s) / Math.max(e[i]! / s, 1e-3))));
    }
    console.log(`row max known: cooling ${withRowMax.cooling}, depth ${withRowMax.depth} (without: cooling ${without.cooling}, depth ${without.depth}); observed rel error ${worst.toExponential(2)}`);
    expect(withRowMax.depth).toBeLessThan(without.depth);
    expect(worst).toBeLessThan(2 * withRowMax.predictedMaxRelError + 1e-6);
  });
});

describe('attention decode with an encrypted KV cache', () => {
  it('random q/k/v, 7 cached keys + the new one (sim)', async () => {
    const r = rng(11);
    const P = 7;
    const q = Float64Array.from({ length: A.N * A.H }, () => 3 * (2 * r() - 1));
    const k = Float64Array.from({ length: (P + 1) * A.Nkv * A.H }, () => 2 * r() - 1);
    const v = Float64Array.from({ length: (P + 1) * A.Nkv * A.H }, () => 2 * r() - 1);
    const { err, res, softmax, run, want } = await decodeCase(q, k, v, P, { lo: -6, hi: 6 });
    console.log(`decode P=${P}: ${summary(res)}; softmax cooling ${softmax.cooling}; ${run.refreshes} refreshes, ${run.ms.toFixed(0)} ms; max error ${err.toExponential(2)} (|y| <= ${maxAbs(want).toFixed(2)})`);
    // Probabilities off by a relative e move the output by at most e * max|v|.
    expect(err).toBeLessThan(2 * softmax.predictedMaxRelError * maxAbs(v) + 1e-4);
  });

  it('heads already permuted by the driver: no permutation levels or rotations (sim)', async () => {
    const r = rng(12);
    const P = 4;
    const q = Float64Array.from({ length: A.N * A.H }, () => 3 * (2 * r() - 1));
    const k = Float64Array.from({ length: (P + 1) * A.Nkv * A.H }, () => 2 * r() - 1);
    const v = Float64Array.from({ length: (P + 1) * A.Nkv * A.H }, () => 2 * r() - 1);
    const plain = await decodeCase(q, k, v, P, { lo: -6, hi: 6 });
    const folded = await decodeCase(q, k, v, P, { lo: -6, hi: 6 }, simBackend, true);
    console.log(`decode P=${P}: natural order ${summary(plain.res)}; permuted by the driver ${summary(folded.res)}; errors ${plain.err.toExponential(2)}, ${folded.err.toExponential(2)}`);
    expect(folded.res.cost.depth).toBe(plain.res.cost.depth - 1);
    expect(folded.res.cost.rotations).toBeLessThan(plain.res.cost.rotations);
    expect(folded.err).toBeLessThan(2 * folded.softmax.predictedMaxRelError * maxAbs(v) + 1e-4);
  });

  it('one decode step on SEAL, 3 cached keys', async () => {
    const r = rng(13);
    const P = 3;
    const q = Float64Array.from({ length: A.N * A.H }, () => 2 * (2 * r() - 1));
    const k = Float64Array.from({ length: (P + 1) * A.Nkv * A.H }, () => 2 * r() - 1);
    const v = Float64Array.from({ length: (P + 1) * A.Nkv * A.H }, () => 2 * r() - 1);
    const { err, res, softmax, run, want } = await decodeCase(q, k, v, P, { lo: -3, hi: 3 }, sealBackend);
    console.log(`SEAL decode P=${P} (N=${sealParams.ringDegree}, ${sealParams.bitSizes.join('/')} bits): ${summary(res)}; softmax cooling ${softmax.cooling}; ${run.refreshes} refreshes, ${run.ms.toFixed(0)} ms; max error ${err.toExponential(2)} (|y| <= ${maxAbs(want).toFixed(2)})`);
    expect(err).toBeLessThan(2 * softmax.predictedMaxRelError * maxAbs(v) + 1e-4);
  });

  it('splitTokens turns a prefill K into cache entries', async () => {
    const r = rng(14);
    const S = 5;
    const D = A.Nkv * A.H;
    const layout = replicatedLayout(D, SLOTS, S);
    const k = Float64Array.from({ length: S * D }, () => 2 * r() - 1);
    const b = new FheBuilder('split', SLOTS);
    const parts = splitTokens(b, b.input('k', layout), layout);
    b.output('y', b.add(parts.values[3]!, b.mulConst(parts.values[1]!, { kind: 'splat', value: 10 })), fullLayout(parts.layout));
    const run = await execute(b.build(), { k });
    const want = replicated(parts.layout, k.subarray(3 * D, 4 * D).map((x, j) => x + 10 * k[D + j]!));
    expect(maxDiff(run.slots, want)).toBeLessThan(1e-5);
  });
});

// ---------------------------------------------------------------------------------------------------
// Model A: q/k/v (after RoPE) of both attention layers for one 64-token window of calibration.txt.

let graph: Graph;
let acts: Map<string, Tensor>;
const T = 64;
const tensorOf = (v: Value): Tensor => acts.get(v.name) ?? v.constant!.load();
const attentionNodes = (): Node[] => graph.nodes.filter((n) => n.domain === 'fhec' && n.op === 'attention');

beforeAll(() => {
  graph = loadModel(path.join(MODELS, 'A_nocache_opset14.onnx'), { canonical: true, bindings: { sequence_length: T } }).graph;
  const text = fs.readFileSync(path.join(MODELS, 'calibration.txt'));
  const sets = textCalibrationSets(graph, text, 'calibration.txt', { maxWindows: 3 }).map((s) => s.inputs);
  calibrate(graph, sets);
  acts = new Map();
  runGraph(graph, sets[1]!, { onNode: (node, outs) => node.outputs.forEach((v, i) => acts.set(v.name, outs[i]!)) });
});

describe('attention on model A activations', () => {
  for (const layer of [0, 1]) {
    it(`decode, layer ${layer}: query 40 against 40 encrypted cached keys + itself (sim)`, async () => {
      const node = attentionNodes()[layer]!;
      const [qT, kT, vT] = node.inputs.map((v) => tensorOf(v!));
      const scores = node.outputs[0]!.range!.inner!.scores!;
      const i = 40;
      const D = A.Nkv * A.H;
      const q = qT!.data.slice(i * 64, (i + 1) * 64);
      const { err, res, softmax, run, want } = await decodeCase(q, kT!.data.slice(0, (i + 1) * D), vT!.data.slice(0, (i + 1) * D), i, scores);
      const graphRow = tensorOf(node.outputs[0]!).data.slice(i * 64, (i + 1) * 64);
      expect(maxDiff(want, graphRow)).toBeLessThan(1e-5); // the decode reference is the prefill's row
      console.log(
        `model A layer ${layer} decode P=${i}: scores [${scores.lo.toFixed(1)}, ${scores.hi.toFixed(1)}], cooling ${softmax.cooling}; ${summary(res)}; ` +
          `${run.refreshes} refreshes, ${run.ms.toFixed(0)} ms; max error ${err.toExponential(2)} (|y| <= ${maxAbs(want).toFixed(2)})`,
      );
      expect(err).toBeLessThan(2 * softmax.predictedMaxRelError * maxAbs(vT!.data.slice(0, (i + 1) * D)) + 1e-4);
    });
  }

  it('prefill, layer 1: 16 tokens, causal (sim)', async () => {
    const node = attentionNodes()[1]!;
    const [qT, kT, vT] = node.inputs.map((v) => tensorOf(v!));
    const scores = node.outputs[0]!.range!.inner!.scores!;
    const S = 16;
    const qLayout = replicatedLayout(A.N * A.H, SLOTS, S);
    const kvLayout = replicatedLayout(A.Nkv * A.H, SLOTS, S);
    const b = new FheBuilder('prefill', SLOTS);
    const softmax = planSoftmax({ scores, length: T });
    const res = lowerAttentionPrefill(b, b.input('q', qLayout), qLayout, b.input('k', kvLayout), b.input('v', kvLayout), kvLayout, {
      numHeads: A.N,
      kvNumHeads: A.Nkv,
      headDim: A.H,
      scale: A.scale,
      softmax,
    });
    b.output('y', res.value, fullLayout(qLayout));
    const run = await execute(b.build(), {
      q: qT!.data.slice(0, S * 64),
      k: kT!.data.slice(0, S * 32),
      v: vT!.data.slice(0, S * 32),
    });
    const want = tensorOf(node.outputs[0]!).data.slice(0, S * 64);
    const err = maxDiff(run.slots, replicated(qLayout, want));
    console.log(`model A layer 1 prefill S=${S}: cooling ${softmax.cooling}; ${summary(res)}; ${run.refreshes} refreshes, ${run.ms.toFixed(0)} ms; max error ${err.toExponential(2)} (|y| <= ${maxAbs(want).toFixed(2)})`);
    expect(err).toBeLessThan(2 * softmax.predictedMaxRelError * maxAbs(vT!.data.slice(0, S * 32)) + 1e-4);
  });
});

describe('attention cost at model A sizes (built, not run)', () => {
  it('decode with 63 cached keys and a 64-token prefill: depth = softmax depth + 4, rotations independent of the cache', () => {
    const softmax = planSoftmax({ scores: { lo: -49.3, hi: 10.7 }, length: 64 });
    const opts = { numHeads: A.N, kvNumHeads: A.Nkv, headDim: A.H, scale: A.scale, softmax };
    const rowsOut: string[] = [];
    const decodeRotations: number[] = [];
    for (const P of [7, 63]) {
      const b = new FheBuilder('decode', SLOTS);
      const qLayout = replicatedLayout(64, SLOTS, 1);
      const kvLayout = replicatedLayout(32, SLOTS, 1);
      const cache = { keys: [...Array(P).keys()].map((j) => b.input(`k${j}`, kvLayout)), values: [...Array(P).keys()].map((j) => b.input(`v${j}`, kvLayout)) };
      const res = lowerAttentionDecode(b, b.input('q', qLayout), qLayout, b.input('k', kvLayout), b.input('v', kvLayout), kvLayout, cache, opts);
      expect(res.cost.depth).toBe(softmax.depth + 4);
      decodeRotations.push(res.cost.rotations);
      rowsOut.push(`decode P=${P} (N=${2 * SLOTS}): ${summary(res)}`);
    }
    expect(decodeRotations[0]).toBe(decodeRotations[1]);
    for (const slots of [8192, 16384]) {
      const b = new FheBuilder('prefill', slots);
      const qLayout = replicatedLayout(64, slots, 64);
      const kvLayout = replicatedLayout(32, slots, 64);
      const res = lowerAttentionPrefill(b, b.input('q', qLayout), qLayout, b.input('k', kvLayout), b.input('v', kvLayout), kvLayout, opts);
      expect(res.cost.depth).toBe(softmax.depth + 4);
      rowsOut.push(`prefill T=64 (N=${2 * slots}, ${qLayout.stride / 64} queries per pass): ${summary(res)}`);
    }
    console.log(`softmax for scores [-49.3, 10.7]: cooling ${softmax.cooling}, depth ${softmax.depth}\n  ${softmax.exp.describe()}\n  ${softmax.reciprocal.describe()}\n  ${softmax.stepReciprocal?.describe()}\n${rowsOut.join('\n')}`);
  });
});
