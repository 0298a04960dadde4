// The small random polynomials of the evaluator's public-key encryptions (runtime/seal/small-polynomials.ts):
// u uniform over {-1, 0, 1}, errors centered binomial with variance 21/2 and |e| <= 21, as SEAL 4 samples
// them, and their residues modulo primes (including one whose low 32 bits are smaller than |c|).

import { describe, expect, it } from 'vitest';
import { bigintResidues } from '../runtime/refresh/integer-mask.js';
import { sampleCenteredBinomial, sampleTernary, smallResidues, uniformResidues } from '../runtime/seal/small-polynomials.js';

const N = 1 << 17;

describe('small polynomials', () => {
  it('samples u uniform over {-1, 0, 1}', () => {
    const u = sampleTernary(N);
    const counts = [-1, 0, 1].map((v) => u.filter((x) => x === v).length / N);
    for (const c of counts) expect(Math.abs(c - 1 / 3)).toBeLessThan(0.01);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(1);
  });

  it('rejects byte 255 so each value is equally likely: a source of only 255s and 2s gives only 1s', () => {
    let call = 0;
    const u = sampleTernary(8, (out) => out.fill(call++ === 0 ? 255 : 2));
    expect(Array.from(u)).toEqual(new Array(8).fill(1));
  });

  it('samples errors from the centered binomial distribution of 21 + 21 bits', () => {
    const e = sampleCenteredBinomial(N);
    const mean = e.reduce((a, x) => a + x, 0) / N;
    const variance = e.reduce((a, x) => a + x * x, 0) / N - mean * mean;
    expect(Math.abs(mean)).toBeLessThan(0.05);
    expect(variance / 10.5).toBeGreaterThan(0.97);
    expect(variance / 10.5).toBeLessThan(1.03);
    expect(e.reduce((m, x) => Math.max(m, Math.abs(x)), 0)).toBeLessThanOrEqual(21);
    // All bits set in the first three bytes (21 bits) and none in the next three: +21; the reverse: -21.
    expect(Array.from(sampleCenteredBinomial(2, (out) => out.set([255, 255, 255, 0, 0, 0, 0, 0, 0, 255, 255, 0x1f])))).toEqual([21, -21]);
  });

  it('gives the residues of small signed coefficients, borrowing across the 32-bit halves', () => {
    const primes = [1152921504606584833n, 1099511627777n, 4294967311n];
    const coeffs = Int8Array.from({ length: 4096 }, (_, i) => ((i * 7919) % 43) - 21);
    expect(Array.from(smallResidues(coeffs, primes))).toEqual(Array.from(bigintResidues(Array.from(coeffs, BigInt), primes, coeffs.length)));
  });
});

describe('uniform residues (the product key\'s third component)', () => {
  it('draws words below each prime, 28 to 60 bits, averaging q/2', () => {
    const primes = [268091393n, 1073479681n, 4294967291n, 1099507695617n, 1152921504606683137n];
    const n = 20000;
    const w = uniformResidues(n, primes);
    primes.forEach((q, j) => {
      const words = w.subarray(j * n, (j + 1) * n);
      expect(words.every((x) => x < q), `prime ${q}`).toBe(true);
      // Standard deviation of the mean of n uniform words over q: 1 / sqrt(12 n) = 0.002.
      const mean = words.reduce((s, x) => s + Number(x) / Number(q), 0) / n;
      expect(Math.abs(mean - 0.5), `prime ${q}`).toBeLessThan(0.01);
    });
  });

  it('rejects draws at or above the prime instead of reducing them', () => {
    // A source whose every draw is the prime itself, then q - 1: only q - 1 is kept.
    const q = 1099507695617n;
    let call = 0;
    const source = (out: Uint8Array) => {
      const v = new BigUint64Array(out.buffer, out.byteOffset, out.byteLength / 8);
      v.fill(call++ === 0 ? q : q - 1n);
    };
    expect(Array.from(uniformResidues(4, [q], source))).toEqual([q - 1n, q - 1n, q - 1n, q - 1n]);
  });
});
