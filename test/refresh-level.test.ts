// The compiler side of the 40-bit refresh masks: the lowest level a value may be refreshed at, from its
// bound (compiler/model-parameters.ts, modelFloors; test/refresh-floor.test.ts has the per-value
// placement), and the refusal the parameter search shows for a chain that has no such level.

import { describe, expect, it } from 'vitest';
import { chainBitSizes, lowestComputeLevel, makeParameters, selectParameters } from '../ir/ckks/params.js';
import { FheBuilder } from '../ir/fhe/index.js';
import { modelFloors } from '../compiler/model-parameters.js';
import { achievableHidingBits, minRefreshLevel } from '../runtime/refresh/mask.js';

describe('lowest refresh level for 40-bit masks', () => {
  it('refuses N=8192 [60, 40, 40, 60] for bound 5.4e3, and takes level 2 (+1 for cache carries) at N=16384', () => {
    // y = x * x, carried to the next step (a KV-cache output), bound 5440.
    const layout = { length: 8, tokens: 1, stride: 8, period: 8, copies: 1 };
    const b = new FheBuilder('carry', 8);
    const x = b.input('x', layout);
    const y = b.mul(x, x);
    b.output('present', y, layout);
    const program = b.build();
    const needs = { bounds: new Map([[x.name, 5440], [y.name, 5440]]), carried: new Set([y.name]) };
    const small = makeParameters({ ringDegree: 8192, bitSizes: [60, 40, 40, 60], scale: 2 ** 40 });
    // log2(2 * 2^40 * 5440) + 40 + 13 + 2 = 108.4: level 1 has 100 bits.
    const r = modelFloors(program, small, needs);
    expect(r).toEqual({ refused: expect.stringMatching(/40-bit refresh masks for bound 5\.44e\+3 need 108 bits at the refresh level .*this chain has 100 bits below the top/) });
    const big = makeParameters({ ringDegree: 16384, bitSizes: [60, 40, 40, 40, 40, 60], scale: 2 ** 40 });
    expect(minRefreshLevel(big, big.scale, 5440, 40)).toBe(2);
    const f = modelFloors(program, big, needs);
    if ('refused' in f) throw new Error(f.refused);
    // The input may be refreshed (level 2); the carried product sits one level higher.
    expect([f.floor(x.name), f.floor(y.name)]).toEqual([2, 3]);
    // At that level the mask hides at least 40 bits per ciphertext; one level below it does not.
    expect(achievableHidingBits(big, 2, big.scale, 5440)).toBeGreaterThanOrEqual(40);
    expect(achievableHidingBits(big, 1, big.scale, 5440)).toBeLessThan(40);
    // Level 0 (one 60-bit prime) never fits 40 bits, even for |x| <= 2^-10 (12 bits there).
    expect(achievableHidingBits(big, 0, big.scale, 2 ** -10)).toBeLessThan(40);
  });

  it('a floor prime: level 1 holds the masks of large values, and nothing may compute at level 0', () => {
    expect(chainBitSizes(60, 40, 4, 60, { ringDegree: 16384 })).toEqual([60, 60, 40, 40, 40, 60]);
    expect(chainBitSizes(60, 40, 4, 60)).toEqual([60, 40, 40, 40, 40, 60]);
    // One level: the floor prime would be the top; the chain stays plain.
    expect(chainBitSizes(60, 40, 1, 60, { ringDegree: 16384 })).toEqual([60, 40, 60]);
    // N=8192 holds 218 bits: [60, 60, 40, 60] (220) would break 128-bit security, the plain chain stays.
    expect(chainBitSizes(60, 40, 2, 60, { ringDegree: 8192 })).toEqual([60, 40, 40, 60]);
    const floor = selectParameters({ depth: 4, ringDegree: 16384, floorPrime: true });
    const plain = selectParameters({ depth: 4, ringDegree: 16384 });
    expect(floor.bitSizes).toEqual([60, 60, 40, 40, 40, 60]);
    // log2(2 * 2^40 * B) + 40 + 14 + 2 bits: plain level 1 has 100, the floor prime's 120.
    for (const [bound, plainLevel] of [[1, 1], [5440, 2], [1e5, 2], [1e6, 2]] as const) {
      expect(minRefreshLevel(plain, plain.scale, bound, 40)).toBe(plainLevel);
      expect(minRefreshLevel(floor, floor.scale, bound, 40)).toBe(1);
      expect(achievableHidingBits(floor, 1, floor.scale, bound)).toBeGreaterThanOrEqual(40);
    }
    // A rescale into level 0 would divide by the 60-bit prime: the lowest compute level is 1 there.
    expect(lowestComputeLevel(floor)).toBe(1);
    expect(lowestComputeLevel(plain)).toBe(0);
    expect(lowestComputeLevel(makeParameters({ ringDegree: 8192, bitSizes: [60, 40, 40, 60], scale: 2 ** 40 }))).toBe(0);
  });
});
