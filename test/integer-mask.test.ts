// The refresh mask on 64-bit words (runtime/refresh/integer-mask.ts, modular-words.ts): its residues and
// the residues of -round(r num / den) are checked against the BigInt definitions (% and roundScaled),
// over random widths, primes, scale changes and the rounding ties; sampling is uniform over [-W, W].
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IntegerMask, bigintResidues, integerPolynomial } from '../runtime/refresh/integer-mask.js';
import { roundScaled, scaleRatio } from '../runtime/refresh/mask.js';
import { wordScratch, WordModulus } from '../runtime/refresh/modular-words.js';
import { MODULAR_WORDS_WASM } from '../runtime/refresh/modular-words-wasm.js';
// @ts-expect-error: a plain JavaScript build tool
import { assemble } from '../tools/wasm.mjs';

// Model A's chain at N=16384 and a 40-bit prime.
const PRIMES = [1152921504606683137n, 1099507695617n, 1099508121601n, 1099510054913n, 1152921504606748673n];

/** A deterministic byte source (xorshift), so a failing case replays. */
function seeded(seed: number): (out: Uint8Array) => void {
  let s = seed >>> 0 || 1;
  return (out) => {
    for (let i = 0; i < out.length; i++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      out[i] = s & 0xff;
    }
  };
}

describe('modular arithmetic on words (WebAssembly)', () => {
  it('is the module assembled from modular-words.wat', async () => {
    expect(MODULAR_WORDS_WASM).toBe(await assemble('runtime/refresh/modular-words.wat'));
  });

  it('gives x c mod q for any 64-bit x and moduli up to 2^62, and multi-word integers mod q', () => {
    fc.assert(
      fc.property(
        fc.array(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), { minLength: 1, maxLength: 12 }),
        fc.bigInt({ min: 0n, max: 2n ** 70n }),
        fc.bigInt({ min: 2n, max: 2n ** 62n - 1n }),
        fc.integer({ min: 1, max: 3 }),
        (xs, c, q, words) => {
          const m = new WordModulus(q);
          const f = m.factor(c);
          const s = wordScratch();
          const inAt = s.alloc(8 * xs.length);
          const outAt = s.alloc(8 * xs.length);
          const zerosAt = s.alloc(8 * xs.length);
          s.words(inAt, xs.length).set(xs);
          s.words(zerosAt, xs.length).fill(0n);
          // round(x c / 1) of one-word integers (t = 0, nothing rounded up): x c mod q.
          s.fn.scaledresidues(inAt, 1, xs.length, q, m.radix, m.radixShoup, m.oneShoup, 0n, f.c, f.shoup, 0n, 0n, zerosAt, zerosAt, 0, outAt);
          expect(Array.from(s.words(outAt, xs.length))).toEqual(xs.map((x) => (x * (c % q)) % q));
          // The same words read as integers of `words` words each, minus 5, mod q.
          const k = Math.floor(xs.length / words);
          s.fn.residues(inAt, words, k, q, m.radix, m.radixShoup, m.oneShoup, 5n % q, outAt);
          const want = Array.from({ length: k }, (_, i) => {
            let v = 0n;
            for (let w = words - 1; w >= 0; w--) v = (v << 64n) | xs[i * words + w]!;
            return (((v - 5n) % q) + q) % q;
          });
          expect(Array.from(s.words(outAt, k))).toEqual(want);
        },
      ),
      { numRuns: 1000, seed: 11 },
    );
  });
});

describe('IntegerMask', () => {
  it('samples integers uniform over [-W, W], whatever the width', () => {
    const small = IntegerMask.sample(21000, 3n, seeded(5)).coefficients();
    const counts = new Map<bigint, number>();
    for (const v of small) counts.set(v, (counts.get(v) ?? 0) + 1);
    expect([...counts.keys()].sort((a, b) => Number(a - b))).toEqual([-3n, -2n, -1n, 0n, 1n, 2n, 3n]);
    for (const c of counts.values()) expect(Math.abs(c - 3000)).toBeLessThan(250);
    for (const W of [2n ** 94n, 2n ** 127n + 12345n, 3n * 2n ** 130n]) {
      const big = IntegerMask.sample(4096, W).coefficients();
      expect(big.every((v) => v >= -W && v <= W)).toBe(true);
      // Both halves of the range, and the top quarter on each side, are reached.
      expect(big.some((v) => v > W / 2n) && big.some((v) => v < -W / 2n)).toBe(true);
      const mean = Number(big.reduce((a, b) => a + b, 0n)) / big.length / Number(W);
      expect(Math.abs(mean)).toBeLessThan(0.05);
    }
  });

  it('gives the residues of its integers modulo each prime', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 150n }), fc.integer({ min: 1, max: 2 ** 30 }), (W, seed) => {
        const mask = IntegerMask.sample(64, W, seeded(seed));
        const r = mask.coefficients();
        expect(r.every((v) => v >= -W && v <= W)).toBe(true);
        expect(Array.from(mask.residues(PRIMES))).toEqual(Array.from(bigintResidues(r, PRIMES, 64)));
      }),
      { numRuns: 300, seed: 3 },
    );
  });

  it('gives -round(r num / den) modulo each prime, as roundScaled rounds (halves away from zero)', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: 2n ** 140n }),
        fc.integer({ min: 1, max: 2 ** 30 }),
        fc.double({ min: 2 ** 20, max: 2 ** 60, noNaN: true }),
        fc.double({ min: 2 ** 20, max: 2 ** 60, noNaN: true }),
        (W, seed, to, from) => {
          const mask = IntegerMask.sample(48, W, seeded(seed));
          const ratio = scaleRatio(to, from);
          const want = mask.coefficients().map((v) => -roundScaled(v, ratio));
          const got = mask.negatedScaled(ratio);
          expect(Array.from(got.residues(PRIMES))).toEqual(Array.from(bigintResidues(want, PRIMES, 48)));
          expect(got.coefficients()).toEqual(want);
        },
      ),
      { numRuns: 300, seed: 9 },
    );
  });

  it('rounds exact ties away from zero, on both signs', () => {
    // num / den = 1/2: every odd r is a tie. W = 5 gives r in -5..5.
    const mask = IntegerMask.sample(2000, 5n, seeded(77));
    const ratio = { num: 1n, den: 2n };
    const r = mask.coefficients();
    expect(r.some((v) => v === 3n) && r.some((v) => v === -3n)).toBe(true);
    const want = r.map((v) => -roundScaled(v, ratio));
    expect(want[r.indexOf(3n)]).toBe(-2n);
    expect(want[r.indexOf(-3n)]).toBe(2n);
    expect(Array.from(mask.negatedScaled(ratio).residues(PRIMES))).toEqual(Array.from(bigintResidues(want, PRIMES, 2000)));
  });

  it('falls back to BigInts where the words cannot carry the scale change (den beyond 2^62)', () => {
    const mask = IntegerMask.sample(32, 2n ** 100n, seeded(1));
    // An exact ratio as a hand-made one (scaleRatio gives denominators below 2^62).
    const ratio = { num: 1n << 52n, den: (1n << 122n) + (1n << 82n) + 1n };
    const want = mask.coefficients().map((v) => -roundScaled(v, ratio));
    expect(Array.from(mask.negatedScaled(ratio).residues(PRIMES))).toEqual(Array.from(bigintResidues(want, PRIMES, 32)));
  });

  it('a BigInt polynomial gives the same residues as its coefficients', () => {
    const p = integerPolynomial([-1n, 0n, 2n ** 100n, -(2n ** 99n) + 7n]);
    expect(Array.from(p.residues([PRIMES[1]!]))).toEqual([PRIMES[1]! - 1n, 0n, 2n ** 100n % PRIMES[1]!, PRIMES[1]! - ((2n ** 99n - 7n) % PRIMES[1]!)]);
  });
});
