// applyApproximation (passes/fhe/approximation.ts, what the canonical lowering evaluates every
// nonlinearity with): every scheme of the approximation library (single Chebyshev polynomial, exp by
// squaring, Newton and Goldschmidt 1/x, Newton 1/sqrt) run as FHE IR on the CKKS simulator agrees with
// the float64 model Approximation.evaluate to CKKS noise, and uses exactly the depth the library states.

import { describe, expect, it } from 'vitest';
import { FheBuilder } from '../ir/fhe/index.js';
import { foldableInputMap, scaledApproximation, type Approximation } from '../passes/approx/approximation.js';
import { expBySquaring, firstGuess, invSqrtNewton, reciprocalGoldschmidt, reciprocalNewton } from '../passes/approx/composite.js';
import { makeChebyshevPoly, interpolateChebyshev } from '../passes/approx/chebyshev.js';
import { approximate } from '../passes/approx/select.js';
import { applyApproximation } from '../passes/fhe/approximate/approximation.js';
import { fheCost } from '../passes/fhe/analysis/cost.js';
import { manageScales } from '../passes/fhe/manage/manage-scales.js';
import { runProgram } from '../runtime/ckks/execute.js';
import { fheChain, selectParameters } from '../ir/ckks/params.js';
import { sealBackend } from '../runtime/seal/backend.js';
import { simBackend } from '../runtime/sim/backend.js';

/**
 * Runs `approx` on a grid of its interval. `model` is what the output should be (default the
 * approximation's float64 model); `mapped`: the input is fed as alpha x + beta (its folded map).
 */
async function runApprox(approx: Approximation, backend = simBackend, opts: { mapped?: { alpha: number; beta: number }; model?: (x: number) => number } = {}) {
  const params = selectParameters({ depth: approx.depth });
  const slots = params.ringDegree / 2;
  const layout = { length: slots, tokens: 1, stride: slots, period: slots, copies: 1 };
  const b = new FheBuilder('approx', slots);
  const x = b.input('x', layout);
  const { value } = applyApproximation(b, x, approx, { mappedInput: opts.mapped !== undefined });
  b.output('y', value, layout);
  const program = b.build();
  const [lo, hi] = approx.interval;
  const xs = Float64Array.from({ length: slots }, (_, i) => lo + ((hi - lo) * i) / (slots - 1));
  const { alpha, beta } = opts.mapped ?? { alpha: 1, beta: 0 };
  const fed = xs.map((v) => alpha * v + beta);
  const run = await runProgram(manageScales(program, { chain: fheChain(params), topScale: params.scale }), params, backend, { x: fed });
  const got = run.outputs.get('y')!.values;
  let err = 0;
  let scale = 0;
  xs.forEach((v, i) => {
    const want = (opts.model ?? approx.evaluate)(v);
    err = Math.max(err, Math.abs(got[i]! - want));
    scale = Math.max(scale, Math.abs(want));
  });
  return { err, scale, cost: fheCost(program), n: params.ringDegree };
}

const exp16 = (() => {
  const g = (x: number) => Math.exp(x / 16);
  return expBySquaring([-20, 2], 4, makeChebyshevPoly(g, -20, 2, interpolateChebyshev(g, -20, 2, 7)));
})();

const cases: [string, () => Approximation][] = [
  ['exp (single Chebyshev)', () => approximate('exp', [-4, 1], { maxAbsError: 1e-4, schemes: ['chebyshev'] })],
  ['exp by squaring x4', () => exp16],
  ['reciprocal, Newton x2', () => reciprocalNewton([0.5, 8], firstGuess('reciprocal', [0.5, 8], 3), 2)],
  ['reciprocal, Goldschmidt x3', () => reciprocalGoldschmidt([0.5, 8], firstGuess('reciprocal', [0.5, 8], 3), 3)],
  ['invsqrt, Newton x2', () => invSqrtNewton([0.05, 2], firstGuess('invsqrt', [0.05, 2], 3), 2)],
  ['silu', () => approximate('silu', [-6, 6], { maxAbsError: 1e-3 })],
  ['sigmoid', () => approximate('sigmoid', [-8, 8], { maxAbsError: 1e-3 })],
  ['tanh', () => approximate('tanh', [-3, 3], { maxAbsError: 1e-3 })],
  ['gelu', () => approximate('gelu', [-5, 5], { maxAbsError: 1e-3 })],
];

describe('applyApproximation on the simulator', () => {
  for (const [name, make] of cases) {
    it(`${name}: matches Approximation.evaluate, depth as stated`, async () => {
      const approx = make();
      const r = await runApprox(approx);
      console.log(`${name}: ${approx.describe()}; FHE-vs-model max error ${r.err.toExponential(2)} (N=${r.n}), ${r.cost.ctMultiplications} ct x ct`);
      expect(r.cost.depth).toBe(approx.depth);
      // CKKS noise at a 40-bit scale, relative to the largest value.
      expect(r.err).toBeLessThan(1e-5 * Math.max(1, r.scale));
    });
  }

  it('invsqrt Newton on seal matches the model', async () => {
    const approx = invSqrtNewton([0.05, 2], firstGuess('invsqrt', [0.05, 2], 3), 1);
    const r = await runApprox(approx, sealBackend);
    console.log(`seal: ${approx.describe()}; max error ${r.err.toExponential(2)} (N=${r.n})`);
    expect(r.err).toBeLessThan(1e-4 * r.scale);
  });
});

// Constants folded into an approximation's neighbours (rms_norm's gain into 1/sqrt, exp's map onto
// [-1, 1] into the score masks): the same function at one level fewer.
describe('folded constants', () => {
  const invsqrt = () => approximate('invsqrt', [0.2, 5], { maxRelError: 1e-3, schemes: ['chebyshev'] });

  it('scaledApproximation: c x the approximation at the same depth, errors scaled by |c|', async () => {
    const approx = invsqrt();
    const scaled = scaledApproximation(approx, 8)!;
    expect(scaled.depth).toBe(approx.depth);
    expect(scaled.maxError).toBeCloseTo(8 * approx.maxError, 12);
    for (const x of [0.2, 0.7, 1.9, 5]) expect(scaled.evaluate(x)).toBeCloseTo(8 * approx.evaluate(x), 9);
    const r = await runApprox(scaled, simBackend, { model: (x) => 8 * approx.evaluate(x) });
    expect(r.cost.depth).toBe(approx.depth);
    expect(r.err).toBeLessThan(1e-5 * r.scale);
  });

  it('scaledApproximation folds through squarings (c > 0) and refuses what it cannot fold', () => {
    const s = scaledApproximation(exp16, 3)!;
    for (const x of [-20, -3, 0, 2]) expect(s.evaluate(x) / exp16.evaluate(x)).toBeCloseTo(3, 9);
    expect(scaledApproximation(exp16, -3)).toBeUndefined();
    expect(scaledApproximation(invSqrtNewton([0.05, 2], firstGuess('invsqrt', [0.05, 2], 3), 1), 2)).toBeUndefined();
    expect(scaledApproximation(invsqrt(), 0)).toBeUndefined();
  });

  it('a mapped input: the polynomial runs on alpha x + beta, one level fewer, same values', async () => {
    for (const approx of [exp16, invsqrt()]) {
      const map = foldableInputMap(approx)!;
      const [a, b] = approx.interval;
      expect(map.alpha * a + map.beta).toBeCloseTo(-1, 12);
      expect(map.alpha * b + map.beta).toBeCloseTo(1, 12);
      const r = await runApprox(approx, simBackend, { mapped: map });
      expect(r.cost.depth).toBe(approx.depth - 1);
      expect(r.err).toBeLessThan(1e-5 * Math.max(1, r.scale));
    }
    // Newton reads x again after its first guess: its map cannot move out.
    expect(foldableInputMap(reciprocalNewton([0.5, 8], firstGuess('reciprocal', [0.5, 8], 3), 2))).toBeUndefined();
    await expect(runApprox(reciprocalNewton([0.5, 8], firstGuess('reciprocal', [0.5, 8], 3), 2), simBackend, { mapped: { alpha: 1, beta: 0 } })).rejects.toThrow(/cannot be folded/);
  });
});
