import { describe, expect, it } from 'vitest';
import { FhecError } from '../ir/errors.js';
import { coeffModulusPrimes, isPrime } from '../ir/ckks/primes.js';
import { keySetBytes, keySwitchKeyBytes, makeParameters, securityBanner, selectParameters, totalModulusBits } from '../ir/ckks/params.js';
import { normalizeStep, planRotationKeys } from '../ir/ckks/rotation-keys.js';
import { TC128_MAX_BITS } from '../ir/ckks/security.js';

describe('CKKS parameters', () => {
  it('uses the tc128 bounds of SEAL', () => {
    expect(TC128_MAX_BITS[4096]).toBe(109);
    expect(TC128_MAX_BITS[8192]).toBe(218);
    expect(TC128_MAX_BITS[16384]).toBe(438);
    expect(TC128_MAX_BITS[32768]).toBe(881);
  });

  it('picks the smallest secure ring degree for the depth', () => {
    const cases: [number, number][] = [[0, 8192], [1, 8192], [2, 8192], [3, 16384], [7, 16384], [8, 32768], [19, 32768]];
    for (const [depth, n] of cases) {
      const p = selectParameters({ depth });
      expect(p.ringDegree, `depth ${depth}`).toBe(n);
      expect(p.bitSizes.length).toBe(depth + 2);
      expect(totalModulusBits(p)).toBeLessThanOrEqual(TC128_MAX_BITS[n]!);
      expect(p.insecure).toBeUndefined();
    }
    expect(() => selectParameters({ depth: 20 })).toThrow(/128-bit security/);
    // A smaller scale buys levels at N=8192.
    expect(selectParameters({ depth: 3, scaleBits: 35, integerBits: 15 }).ringDegree).toBe(8192);
  });

  it('refuses insecure parameters unless flagged, and flags them loudly', () => {
    expect(() => makeParameters({ ringDegree: 4096, bitSizes: [60, 40, 60] })).toThrow(FhecError);
    expect(() => makeParameters({ ringDegree: 4096, bitSizes: [60, 40, 60] })).toThrow(/128-bit security/);
    const p = makeParameters({ ringDegree: 4096, bitSizes: [60, 40, 60], insecure: true });
    expect(securityBanner(p)).toMatch(/INSECURE/);
    expect(securityBanner(makeParameters({ ringDegree: 8192, bitSizes: [60, 40, 60] }))).toBeUndefined();
  });

  it('generates primes = 1 mod 2N below 2^bits, smallest first per size', () => {
    const ps = coeffModulusPrimes(8192, [60, 40, 40, 60]);
    // The values node-seal's CoeffModulus.Create returns (also checked against SEAL in seal-backend.test.ts).
    expect(ps).toEqual([1152921504606748673n, 1099510890497n, 1099511480321n, 1152921504606830593n]);
    for (const p of ps) {
      expect(isPrime(p)).toBe(true);
      expect(p % 16384n).toBe(1n);
    }
    expect(isPrime(1152921504606846977n)).toBe(false);
  });

  it('counts key bytes as (data primes) x 2 x (all primes) x N x 8', () => {
    const p = makeParameters({ ringDegree: 16384, bitSizes: [60, 40, 40, 40, 40, 40, 40, 40, 60] });
    expect(keySwitchKeyBytes(p)).toBe(8 * 2 * 9 * 16384 * 8); // 18.9 MB, SEAL holds 19.0 MB
    expect(keySetBytes(p, 13, true)).toBe(14 * keySwitchKeyBytes(p));
  });

  it('trades distinct Galois keys for composed rotations when the key budget is short', () => {
    const p = selectParameters({ depth: 1 });
    const steps = Array.from({ length: 40 }, (_, i) => 3 * i + 1);
    const wide = planRotationKeys(p, steps);
    expect(wide.composed).toBe(false);
    expect(wide.keySteps.length).toBe(40);
    const tight = planRotationKeys(p, steps, 20 * keySwitchKeyBytes(p));
    expect(tight.composed).toBe(true);
    expect(tight.keySteps.length).toBeLessThanOrEqual(12);
    for (const s of steps) {
      const parts = tight.compose.get(normalizeStep(s, 4096))!;
      expect(parts.reduce((a, b) => a + b, 0) % 4096).toBe(((s % 4096) + 4096) % 4096);
    }
    expect(() => planRotationKeys(p, steps, 2 * keySwitchKeyBytes(p))).toThrow(/budget/);
  });
});
