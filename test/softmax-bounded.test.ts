// Softmax by normalize-and-square (passes/fhe/lower-canonical/softmax-plan.ts, softmax-normalize.ts)
// on rows far more peaked than model A's: one score 30+ above the others, an attention sink (key 0
// dominates every row), flat rows; rows of 1 to 128 keys. Checked against float64 softmax:
//  - property (fast-check) on the plan's float64 model: every reciprocal's input stays inside its
//    fitted interval, and every probability is within PROB_TOL of softmax;
//  - on the CKKS simulator, decode (128 keys) and prefill (8 tokens) attention whose values are one-hot
//    (so the output is the probability row itself), within PROB_TOL + CKKS noise;
//  - the shifted softmax (one exp, one 1/x of the row sum) cannot be fitted for these rows at all.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fheChain, selectParameters, topLevel } from '../ir/ckks/params.js';
import { FheBuilder } from '../ir/fhe/index.js';
import type { FheProgram } from '../ir/fhe/types.js';
import { approximate } from '../passes/approx/select.js';
import { fheCost } from '../passes/fhe/analysis/cost.js';
import { lowerPrefillAttention } from '../passes/fhe/lower-canonical/attention.js';
import { cacheLayout, lowerDecodeAttention } from '../passes/fhe/lower-canonical/attention-decode.js';
import type { AttentionStats } from '../passes/fhe/lower-canonical/attention-stats.js';
import { evaluateSoftmaxPlan, planSoftmax, type SoftmaxPlan } from '../passes/fhe/lower-canonical/softmax-plan.js';
import { manageScales } from '../passes/fhe/manage/manage-scales.js';
import { replicatedLayout } from '../passes/fhe/layout/packing.js';
import { placeRefreshesGreedy } from '../passes/fhe/refresh/refresh-greedy.js';
import { runProgram } from '../runtime/ckks/execute.js';
import { simBackend } from '../runtime/sim/backend.js';
import { calibratedRefreshBounds } from '../passes/fhe/refresh/refresh-bounds.js';
import { fullLayout, rng } from './helpers/fhe-lower.js';
import { kernelMaskPolicy } from './helpers/refresh-mask.js';

/** Max |p - softmax| per probability: 1/x's relative error 1e-3, exp's share 1e-4, and slack. */
const PROB_TOL = 2e-3;
const TARGETS = { expError: 1e-4, reciprocalRel: 1e-3 };

/** The family of rows: scores in [-BASE, BASE] plus one boost of up to GAP_MAX on one key. */
const BASE = 4;
const GAP_MAX = 36;
/** Calibration-like statistics covering the whole family (relative to the diagonal, and the diagonal itself). */
const familyStats: AttentionStats = {
  relMin: -(GAP_MAX + 2 * BASE),
  relMax: GAP_MAX + 2 * BASE,
  diagMin: -BASE,
  diagMax: GAP_MAX + BASE,
  sumMin: 1,
  sumMax: Infinity,
  scoreMin: -BASE,
  scoreMax: GAP_MAX + BASE,
  rows: 0,
};

const fitCache = new Map<string, ReturnType<typeof approximate>>();
const fit = (fn: 'exp' | 'reciprocal', iv: [number, number], t: { maxAbsError?: number; maxRelError?: number }) => {
  const key = JSON.stringify([fn, iv, t]);
  let a = fitCache.get(key);
  if (!a) fitCache.set(key, (a = approximate(fn, iv, t)));
  return a;
};
const plans = new Map<number, SoftmaxPlan>();
function planFor(n: number): SoftmaxPlan {
  let p = plans.get(n);
  if (!p) plans.set(n, (p = planSoftmax(familyStats, { margin: 0.1, rowLength: n, ...TARGETS }, fit)));
  return p;
}

function softmax(s: readonly number[]): number[] {
  const m = Math.max(...s);
  const e = s.map((x) => Math.exp(x - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / z);
}

type Kind = 'peaked' | 'sink' | 'flat';
/** A row of n scores, the query's own key last (causal). */
function makeRow(kind: Kind, n: number, r: () => number, gap: number, at: number): number[] {
  const row = Array.from({ length: n }, () => (kind === 'flat' ? 1 : BASE) * (2 * r() - 1));
  if (kind === 'peaked') row[at % n]! += gap;
  if (kind === 'sink') row[0]! += gap;
  return row;
}

describe('normalize-and-square softmax, float64 model of the plan', () => {
  it('peaked rows (gap >= 30), attention sinks, flat rows, 1..128 keys: sums inside every 1/x interval, probabilities within 2e-3', () => {
    const maxNs = [16, 128];
    for (const N of maxNs) console.log(`rows of up to ${N} keys: ${planFor(N).describe()}`);
    fc.assert(
      fc.property(
        fc.constantFrom<Kind>('peaked', 'sink', 'flat'),
        fc.constantFrom(...maxNs),
        fc.integer({ min: 1, max: 128 }),
        fc.double({ min: 30, max: GAP_MAX, noNaN: true }),
        fc.nat(),
        fc.integer({ min: 1, max: 2 ** 30 }),
        (kind, N, n0, gap, at, seed) => {
          const n = Math.min(n0, N);
          const row = makeRow(kind, n, rng(seed), gap, at);
          const plan = planFor(N);
          const run = evaluateSoftmaxPlan(plan, row, n - 1);
          run.sums.forEach((S, i) => {
            const [a, b] = plan.reciprocals[i]!.interval;
            expect(S).toBeGreaterThanOrEqual(a);
            expect(S).toBeLessThanOrEqual(b);
          });
          const want = softmax(row);
          for (let j = 0; j < n; j++) expect(Math.abs(run.probabilities[j]! - want[j]!)).toBeLessThan(PROB_TOL);
        },
      ),
      { numRuns: 300, seed: 20261204 },
    );
  });

  it('the shifted softmax cannot fit rows this peaked: exp on a 90-wide interval to 1e-4 fails with an error naming the interval', () => {
    expect(() => planSoftmax(familyStats, { margin: 0.1, rowLength: 16, ...TARGETS, method: 'shifted' }, fit)).toThrow(/cannot approximate exp on \[/);
  });
});

// ---------------------------------------------------------------------------------------------------
// On the CKKS simulator. One head; q, k and v are chosen so that the scores are the rows above and
// v_j is the one-hot vector e_j: the attention output of a query is its probability row.

const simParams = selectParameters({ depth: 7, ringDegree: 32768 });

async function execute(program: FheProgram, tensors: Record<string, ArrayLike<number>>) {
  const L = topLevel(simParams);
  const placed = placeRefreshesGreedy(program, L);
  const managed = manageScales(placed.program, { chain: fheChain(simParams), topScale: simParams.scale, inputLevel: L });
  // Refresh bounds calibrated on these inputs, and the widest mask greedy placement's level-0 refreshes
  // leave room for (test/helpers/refresh-mask.ts): these tests are about the softmax arithmetic.
  const bounds = calibratedRefreshBounds(managed, [tensors], 0);
  const run = await runProgram(managed, simParams, simBackend, tensors, { refreshBounds: bounds, mask: kernelMaskPolicy(managed, simParams, bounds) });
  return { outputs: run.outputs, refreshes: placed.refreshed.length };
}

describe('normalize-and-square softmax on sim', () => {
  for (const kind of ['peaked', 'sink', 'flat'] as const) {
    it(`decode, 127 cached keys + the new one, ${kind} row: the output is softmax within 2e-3`, async () => {
      const P = 127;
      const n = P + 1;
      const H = 128;
      const slots = simParams.ringDegree / 2;
      const row = makeRow(kind, n, rng(kind.length * 7 + 1), 33, 57);
      const plan = planFor(n);
      const b = new FheBuilder('decode', slots);
      const qLayout = replicatedLayout(H, slots, 1);
      const past = cacheLayout(H, slots, P, n);
      const cache = cacheLayout(H, slots, n, n);
      const res = lowerDecodeAttention(b, b.input('q', qLayout), b.input('k', qLayout), b.input('v', qLayout), b.input('past_k', past), b.input('past_v', past), cache, 1, 1, plan);
      b.output('y', res.value, qLayout);
      const program = b.build();
      // q = e_0, key j = row[j] e_0, value j = e_j.
      const q = new Float64Array(H);
      q[0] = 1;
      const keys = new Float64Array(n * H);
      const values = new Float64Array(n * H);
      for (let j = 0; j < n; j++) {
        keys[j * H] = row[j]!;
        values[j * H + j] = 1;
      }
      const run = await execute(program, { q, k: keys.subarray(P * H), v: values.subarray(P * H), past_k: keys.subarray(0, P * H), past_v: values.subarray(0, P * H) });
      const got = run.outputs.get('y')!.values;
      const want = softmax(row);
      const err = Math.max(...want.map((p, j) => Math.abs(got[j]! - p)));
      const model = evaluateSoftmaxPlan(plan, row, P, false).probabilities;
      console.log(`decode ${kind} n=${n}: k=${plan.squarings}, ${fheCost(program).depth} levels, ${run.refreshes} refreshes; max |p - softmax| ${err.toExponential(2)} (float64 model ${Math.max(...want.map((p, j) => Math.abs(model[j]! - p))).toExponential(2)}), max p ${Math.max(...want).toFixed(4)}`);
      expect(err).toBeLessThan(PROB_TOL);
    });
  }

  it('prefill of 8 tokens, causal, peaked rows and a sink: every row is softmax within 2e-3, masked keys exactly out', async () => {
    const T = 8;
    const H = 8;
    const slots = simParams.ringDegree / 2;
    const r = rng(5);
    // Row t: scores of keys 0..t; odd rows peaked at a random key, even rows with a sink at key 0.
    const rows = Array.from({ length: T }, (_, t) => makeRow(t % 2 ? 'peaked' : 'sink', t + 1, r, 30 + 5 * r(), Math.floor(r() * 100)));
    const plan = planFor(T);
    const layout = replicatedLayout(H, slots, T);
    const b = new FheBuilder('prefill', slots);
    const res = lowerPrefillAttention(b, b.input('q', layout), b.input('k', layout), b.input('v', layout), layout, 1, 1, plan);
    b.output('y', res.value, fullLayout(layout));
    const program = b.build();
    // q_t = (row t's scores, 0 for masked keys), k_j = e_j, v_j = e_j.
    const q = new Float64Array(T * H);
    const eye = new Float64Array(T * H);
    for (let t = 0; t < T; t++) {
      rows[t]!.forEach((s, j) => (q[t * H + j] = s));
      eye[t * H + t] = 1;
    }
    const run = await execute(program, { q, k: eye, v: eye });
    const got = run.outputs.get('y')!.values;
    let err = 0;
    for (let t = 0; t < T; t++) {
      const want = softmax(rows[t]!);
      for (let j = 0; j < H; j++) err = Math.max(err, Math.abs(got[t * layout.stride + j]! - (j <= t ? want[j]! : 0)));
    }
    console.log(`prefill T=${T} peaked/sink: k=${plan.squarings}, ${fheCost(program).depth} levels, ${run.refreshes} refreshes; max |p - softmax| ${err.toExponential(2)}`);
    expect(err).toBeLessThan(PROB_TOL);
  });
});
