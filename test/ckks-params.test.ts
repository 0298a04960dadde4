import { describe, expect, it } from 'vitest';
import { FhecError } from '../ir/errors.js';
import { coeffModulusPrimes, isPrime } from '../ir/ckks/primes.js';
import { keySetBytes, keySwitchKeyBytes, makeParameters, securityBanner, selectParameters, totalModulusBits } from '../ir/ckks/params.js';
import type { FheProgram } from '../ir/fhe/types.js';
import { keyRequestFor } from '../runtime/ckks/execute.js';
import { DEFAULT_KEY_BUDGET_BYTES, decomposeRotation, leftPowerParts, normalizeStep, planRotationKeys, signedPowerParts } from '../ir/ckks/rotation-keys.js';
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
    // Signed powers of two (14 of the 24 there are), each rotation in at most as many key switches as
    // its binary form takes.
    expect(tight.keySteps.length).toBe(14);
    expect(tight.keySteps.every((k) => (Math.abs(k) & (Math.abs(k) - 1)) === 0)).toBe(true);
    for (const s of steps) {
      const parts = tight.compose.get(normalizeStep(s, 4096))!;
      expect((((parts.reduce((a, b) => a + b, 0) - s) % 4096) + 4096) % 4096).toBe(0);
      expect(parts.length).toBeLessThanOrEqual(s.toString(2).replace(/0/g, '').length);
    }
    // Fewer keys than the signed set needs: left powers of two only (7 here), longer rotations.
    const tighter = planRotationKeys(p, steps, 10 * keySwitchKeyBytes(p));
    expect(tighter.keySteps).toEqual([1, 2, 4, 8, 16, 32, 64]);
    expect(() => planRotationKeys(p, steps, 2 * keySwitchKeyBytes(p))).toThrow(/budget/);
  });

  it('composes a rotation from signed powers of two: a right rotation by 1 is one key switch', () => {
    expect(signedPowerParts(-1, 4096)).toEqual([-1]);
    expect(signedPowerParts(4095, 4096)).toEqual([-1]);
    expect(signedPowerParts(7, 4096)).toEqual([-1, 8]);
    expect(signedPowerParts(2048, 4096)).toEqual([2048]);
    expect(leftPowerParts(-1, 4096)).toHaveLength(12);
    // Every step of a small ring: the parts sum to the step and are no more than half the bits + 1.
    for (let s = -64; s < 64; s++) {
      const parts = signedPowerParts(s, 64);
      expect((((parts.reduce((a, b) => a + b, 0) - s) % 64) + 64) % 64).toBe(0);
      expect(parts.length).toBeLessThanOrEqual(4);
    }
    // The backends decompose with what the key set holds: signed parts, else left powers, else an error.
    expect(decomposeRotation(-1, 4096, new Set([-1, 1, 2]))).toEqual([-1]);
    expect(decomposeRotation(-1, 4096, new Set(leftPowerParts(4095, 4096)))).toHaveLength(12);
    expect(() => decomposeRotation(-1, 4096, new Set([1, 2]))).toThrow(/no Galois key for rotation step -1/);
  });

  it("a program's key request stays within the key budget, composed as the parameter search priced it", () => {
    // 200 distinct rotation steps: at N=16384 with 9 primes a key is 18.9 MB, 200 keys 3.8 GB, more than the
    // 3 GiB budget beside SEAL's 4 GiB wasm heap; with 4 primes (4.7 MB a key) they fit.
    const ops = Array.from({ length: 200 }, (_, i) => ({ kind: 'rotate' as const, args: [], step: -(i + 1) }));
    const chainOf = (bits: number[]) => makeParameters({ ringDegree: 16384, bitSizes: bits });
    const big = chainOf([60, 40, 40, 40, 40, 40, 40, 40, 60]);
    const request = keyRequestFor({ name: 'p', slots: 8192, chain: { ringDegree: 16384, primes: big.primes.slice(0, -1) }, ops, constants: new Map() } as unknown as FheProgram);
    expect(request.galoisSteps).toEqual(planRotationKeys(big, ops.map((o) => o.step)).keySteps);
    expect(request.galoisSteps.length).toBeLessThanOrEqual(16);
    expect(keySetBytes(big, request.galoisSteps.length)).toBeLessThanOrEqual(DEFAULT_KEY_BUDGET_BYTES);
    const small = chainOf([60, 40, 40, 60]);
    const all = keyRequestFor({ name: 'p', slots: 8192, chain: { ringDegree: 16384, primes: small.primes.slice(0, -1) }, ops, constants: new Map() } as unknown as FheProgram);
    expect(all.galoisSteps).toHaveLength(200);
    // A chain so long that not even the power-of-two keys fit (N=32768, 21 primes: 210 MiB a key): the
    // program's own steps, as before budgets (the simulator runs it; SEAL would stop out of memory).
    const huge = makeParameters({ ringDegree: 32768, bitSizes: [60, ...Array(19).fill(40), 60] });
    const unfit = keyRequestFor({ name: 'p', slots: 16384, chain: { ringDegree: 32768, primes: huge.primes.slice(0, -1) }, ops, constants: new Map() } as unknown as FheProgram);
    expect(unfit.galoisSteps).toHaveLength(200);
  });
});
