// applyApproximation (passes/fhe/approximation.ts, what the canonical lowering evaluates every
// nonlinearity with): every scheme of the approximation library (single Chebyshev polynomial, exp by
// squaring, Newton and Goldschmidt 1/x, Newton 1/sqrt) run as FHE IR on the CKKS simulator agrees with
// the float64 model Approximation.evaluate to CKKS noise, and uses exactly the depth the library states.

import { describe, expect, it } from 'vitest';
import { FheBuilder } from '../ir/fhe/index.js';
import type { Approximation } from '../passes/approx/approximation.js';
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

async function runApprox(approx: Approximation, backend = simBackend) {
  const params = selectParameters({ depth: approx.depth });
  const slots = params.ringDegree / 2;
  const layout = { length: slots, tokens: 1, stride: slots, period: slots, copies: 1 };
  const b = new FheBuilder('approx', slots);
  const x = b.input('x', layout);
  const { value } = applyApproximation(b, x, approx);
  b.output('y', value, layout);
  const program = b.build();
  const [lo, hi] = approx.interval;
  const xs = Float64Array.from({ length: slots }, (_, i) => lo + ((hi - lo) * i) / (slots - 1));
  const run = await runProgram(manageScales(program, { chain: fheChain(params), topScale: params.scale }), params, backend, { x: xs });
  const got = run.outputs.get('y')!.values;
  let err = 0;
  let scale = 0;
  xs.forEach((v, i) => {
    const want = approx.evaluate(v);
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
