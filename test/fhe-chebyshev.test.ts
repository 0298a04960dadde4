import { describe, expect, it } from 'vitest';
import { FheBuilder } from '../ir/fhe/index.js';
import { chebyshevDepth, chebyshevValue, evalChebyshev, type ChebyshevPolynomial } from '../passes/fhe/approximate/chebyshev.js';
import { fheCost } from '../passes/fhe/analysis/cost.js';
import { multiplicativeDepth } from '../passes/fhe/analysis/depth.js';
import { manageScales } from '../passes/fhe/manage/manage-scales.js';
import { runProgram } from '../runtime/ckks/execute.js';
import { fheChain, selectParameters } from '../ir/ckks/params.js';
import { sealBackend } from '../runtime/seal/backend.js';
import { simBackend } from '../runtime/sim/backend.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  };
}

function polyProgram(p: ChebyshevPolynomial, slots: number) {
  const b = new FheBuilder('cheb', slots);
  const layout = { length: slots, tokens: 1, stride: slots, period: slots, copies: 1 };
  const x = b.input('x', layout);
  const { value, cost } = evalChebyshev(b, x, p);
  b.output('y', value, layout);
  return { program: b.build(), cost };
}

describe('Chebyshev evaluator', () => {
  it('matches Clenshaw in plain arithmetic through the IR (structure check on sim)', async () => {
    const r = rng(1);
    const p: ChebyshevPolynomial = { coeffs: Array.from({ length: 12 }, (_, i) => r() / (i + 1)), a: -2, b: 3 };
    const params = selectParameters({ depth: chebyshevDepth(11, true) });
    const slots = params.ringDegree / 2;
    const { program } = polyProgram(p, slots);
    const managed = manageScales(program, { chain: fheChain(params), topScale: params.scale });
    const xs = Float64Array.from({ length: slots }, (_, i) => -2 + (5 * i) / (slots - 1));
    const run = await runProgram(managed, params, simBackend, { x: xs });
    const got = run.outputs.get('y')!.values;
    let err = 0;
    xs.forEach((x, i) => (err = Math.max(err, Math.abs(got[i]! - chebyshevValue(p, x)))));
    expect(err).toBeLessThan(1e-6);
  });

  it('reaches the optimal depth with O(sqrt(deg)) non-scalar products for every degree up to 64', () => {
    for (let d = 1; d <= 64; d++) {
      const coeffs = Array.from({ length: d + 1 }, (_, i) => 1 / (i + 1.5));
      const { program, cost } = polyProgram({ coeffs, a: -1, b: 1 }, 8);
      expect(multiplicativeDepth(program), `degree ${d}`).toBe(Math.ceil(Math.log2(d + 1)));
      expect(cost.nonScalarMultiplications).toBeLessThanOrEqual(4 * Math.ceil(Math.sqrt(d + 1)) + Math.ceil(Math.log2(d + 1)));
      const mapped = polyProgram({ coeffs, a: 0, b: 5 }, 8);
      expect(multiplicativeDepth(mapped.program)).toBe(Math.ceil(Math.log2(d + 1)) + 1);
    }
  });

  for (const deg of [7, 15, 31, 63]) {
    it(`degree ${deg} on seal within 1e-4 across [a, b]`, async () => {
      const r = rng(deg);
      const [a, b] = deg === 31 ? [-1, 1] : [-3, 5];
      const p: ChebyshevPolynomial = { coeffs: Array.from({ length: deg + 1 }, (_, i) => r() / (1 + i / 4)), a, b };
      const depth = chebyshevDepth(deg, a !== -1 || b !== 1);
      // N=8192 holds depth 3 at a 35-bit scale; deeper circuits go to N=16384 at 40 bits.
      const params = depth <= 3 ? selectParameters({ depth, scaleBits: 35, integerBits: 15 }) : selectParameters({ depth });
      const slots = params.ringDegree / 2;
      const { program, cost } = polyProgram(p, slots);
      const managed = manageScales(program, { chain: fheChain(params), topScale: params.scale });
      expect(fheCost(managed).depth).toBe(depth);
      const xs = Float64Array.from({ length: slots }, (_, i) => a + ((b - a) * i) / (slots - 1));
      const t0 = performance.now();
      const run = await runProgram(managed, params, sealBackend, { x: xs });
      const got = run.outputs.get('y')!.values;
      let err = 0;
      xs.forEach((x, i) => (err = Math.max(err, Math.abs(got[i]! - chebyshevValue(p, x)))));
      console.log(
        `Chebyshev degree ${deg} on [${a}, ${b}]: depth ${depth}, ${cost.nonScalarMultiplications} ct x ct, ` +
          `${cost.scalarMultiplications} scalar products, N=${params.ringDegree}, max error ${err.toExponential(2)}, ${(performance.now() - t0).toFixed(0)} ms`,
      );
      expect(err).toBeLessThan(1e-4);
    });
  }
});
