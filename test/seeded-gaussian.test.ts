// The simulator's and the sampled precision analysis's Gaussian source (ir/random.ts): the bulk addTo is
// the same stream as next() (so a simulation does not depend on which one an op uses), and the stream is a
// standard normal (moments, tails, and a Kolmogorov-Smirnov distance against the normal CDF).
import { describe, expect, it } from 'vitest';
import { SeededGaussian } from '../ir/random.js';

/** Standard normal CDF (Abramowitz-Stegun 7.1.26 erf, |error| < 1.5e-7). */
function phi(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * z);
  const erf = 1 - (((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t) * Math.exp(-z * z);
  return x >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}

describe('SeededGaussian', () => {
  it('addTo adds sd times the same normals next() gives, across odd lengths and a pending spare', () => {
    const a = new SeededGaussian(42);
    const b = new SeededGaussian(42);
    for (const len of [1, 7, 8192, 3, 0, 10]) {
      const base = Float64Array.from({ length: len }, (_, i) => i / 3);
      const bulk = base.slice();
      a.addTo(bulk, 2.5);
      const one = base.map((x) => x + 2.5 * b.next());
      expect(Array.from(bulk)).toEqual(Array.from(one));
    }
    expect(a.next()).toBe(b.next());
  });

  it('draws standard normals: mean, variance, tails and the CDF', () => {
    const n = 200_000;
    const v = new Float64Array(n);
    new SeededGaussian(7).addTo(v, 1);
    let sum = 0;
    let sq = 0;
    let tail = 0;
    for (const x of v) {
      sum += x;
      sq += x * x;
      if (Math.abs(x) > 3) tail++;
    }
    expect(Math.abs(sum / n)).toBeLessThan(0.01);
    expect(Math.abs(sq / n - 1)).toBeLessThan(0.01);
    // P(|x| > 3) = 0.0027: 540 expected, sd ~23.
    expect(Math.abs(tail - 0.0027 * n)).toBeLessThan(100);
    const sorted = Array.from(v).sort((x, y) => x - y);
    let ks = 0;
    sorted.forEach((x, i) => (ks = Math.max(ks, Math.abs(phi(x) - (i + 0.5) / n))));
    // The 1% critical value of the KS distance at n = 200000 is 1.63 / sqrt(n) = 0.0036.
    expect(ks).toBeLessThan(0.0036);
  });
});
