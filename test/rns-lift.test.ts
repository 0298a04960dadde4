// The key holder's lift (runtime/seal/rns.ts liftResidues): from the residues of y modulo q_0..q_l to y
// centered in (-Q/2, Q/2], its largest |y|, and round(y * ratio) modulo the target primes, checked
// against the definition computed the plain way (CRT by search over multiples, exact rounding).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { roundScaled, scaleRatio } from '../runtime/refresh/mask.js';
import { liftResidues, toResidues } from '../runtime/seal/rns.js';

// Model A's chain at N=16384 (data primes) and one more 40-bit prime for the target.
const PRIMES = [1152921504606683137n, 1099507695617n, 1099508121601n, 1099510054913n];

describe('liftResidues', () => {
  it('gives the centered integers, their peak, and round(y * ratio) modulo every target prime', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 }),
        fc.array(fc.bigInt({ min: -(2n ** 138n), max: 2n ** 138n }), { minLength: 1, maxLength: 24 }),
        fc.double({ min: 0.999, max: 1.001, noNaN: true }),
        (k, ys, drift) => {
          const from = PRIMES.slice(0, k);
          const Q = from.reduce((a, q) => a * q, 1n);
          // Integers inside (-Q/4, Q/4), as a masked refresh guarantees.
          const coeffs = ys.map((y) => y % (Q / 4n));
          const n = coeffs.length;
          const ratio = scaleRatio(2 ** 40, 2 ** 40 * drift);
          const got = liftResidues(toResidues(coeffs, from, n), from, PRIMES, n, ratio);
          const peak = coeffs.reduce((m, y) => (y < 0n ? -y : y) > m ? (y < 0n ? -y : y) : m, 0n);
          expect(got.peak).toBe(peak);
          expect(Array.from(got.residues)).toEqual(Array.from(toResidues(coeffs.map((y) => roundScaled(y, ratio)), PRIMES, n)));
        },
      ),
      { numRuns: 200, seed: 7 },
    );
  });
});
