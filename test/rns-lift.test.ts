// The key holder's lift (runtime/refresh/rns.ts liftResidues, on words in modular-words.wat): from the
// residues of y modulo q_0..q_l to y centered in (-Q/2, Q/2], checked against its limit, and
// round(y * ratio) modulo the target primes, compared with the definition computed the plain way
// (CRT by BigInt, exact rounding).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { roundScaled, scaleRatio } from '../runtime/refresh/mask.js';
import { crtIntegers, liftResidues } from '../runtime/refresh/rns.js';
import { bigintResidues as toResidues } from '../runtime/refresh/integer-mask.js';

// Model A's chain at N=16384 (data primes) and one more 40-bit prime for the target.
const PRIMES = [1152921504606683137n, 1099507695617n, 1099508121601n, 1099510054913n];
const abs = (y: bigint) => (y < 0n ? -y : y);

describe('liftResidues', () => {
  it('gives the centered integers, and round(y * ratio) modulo every target prime', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.bigInt({ min: -(2n ** 180n), max: 2n ** 180n }), { minLength: 1, maxLength: 24 }),
        fc.double({ min: 0.999, max: 1.001, noNaN: true }),
        (k, ys, drift) => {
          const from = PRIMES.slice(0, k);
          const Q = from.reduce((a, q) => a * q, 1n);
          // Integers inside (-Q/4, Q/4), as a masked refresh guarantees.
          const coeffs = ys.map((y) => y % (Q / 4n));
          const n = coeffs.length;
          const ratio = scaleRatio(2 ** 40, 2 ** 40 * drift);
          expect(crtIntegers(toResidues(coeffs, from, n), from, n).coefficients()).toEqual(coeffs);
          const peak = coeffs.reduce((m, y) => (abs(y) > m ? abs(y) : m), 0n);
          const got = liftResidues(toResidues(coeffs, from, n), from, PRIMES, n, ratio, peak);
          expect(got.overflow).toBeUndefined();
          expect(Array.from(got.residues!)).toEqual(Array.from(toResidues(coeffs.map((y) => roundScaled(y, ratio)), PRIMES, n)));
        },
      ),
      { numRuns: 300, seed: 7 },
    );
  });

  it('recovers integers up to +-(1/2 - 2^-40) Q (K is rounded in doubles: only a band of k 2^-52 Q below Q/2, all overflow, is ambiguous)', () => {
    for (const k of [1, 2, 3, 4]) {
      const from = PRIMES.slice(0, k);
      const Q = from.reduce((a, q) => a * q, 1n);
      const h = Q / 2n - Q / 2n ** 40n;
      const coeffs = [h, -h, h - 1n, -h + 1n, 0n, 1n, -1n, Q / 4n, -Q / 4n];
      expect(crtIntegers(toResidues(coeffs, from, coeffs.length), from, coeffs.length).coefficients()).toEqual(coeffs);
    }
  });

  it('reports the exact largest |y| when one coefficient exceeds the limit by one', () => {
    const from = PRIMES.slice(0, 3);
    const limit = 2n ** 97n + 12345n;
    for (const y of [limit + 1n, -limit - 1n]) {
      const coeffs = [3n, -limit, limit, y, 7n];
      const words = toResidues(coeffs, from, 5);
      expect(liftResidues(words, from, PRIMES, 5, scaleRatio(2 ** 40, 2 ** 40), limit)).toEqual({ overflow: limit + 1n });
      // At the limit itself, no overflow.
      expect(liftResidues(words, from, PRIMES, 5, scaleRatio(2 ** 40, 2 ** 40), limit + 1n).overflow).toBeUndefined();
    }
  });
});
