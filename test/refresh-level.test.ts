// The compiler side of the 40-bit refresh masks: the lowest level a model plan may refresh at, from the
// largest bound a refresh could be placed on (compiler/model-parameters.ts, modelMinLevel), and the
// refusal the parameter search shows for a chain that has no such level.

import { describe, expect, it } from 'vitest';
import { makeParameters } from '../ir/ckks/params.js';
import { modelMinLevel } from '../compiler/model-parameters.js';
import { achievableHidingBits, minRefreshLevel } from '../runtime/refresh/mask.js';

describe('lowest refresh level for 40-bit masks', () => {
  it('refuses N=8192 [60, 40, 40, 60] for bound 5.4e3, and takes level 2 (+1 for cache carries) at N=16384', () => {
    const small = makeParameters({ ringDegree: 8192, bitSizes: [60, 40, 40, 60], scale: 2 ** 40 });
    // log2(2 * 2^40 * 5440) + 40 + 13 + 2 = 108.4: level 1 has 100 bits.
    const r = modelMinLevel(small, 5440, true);
    expect(r).toEqual({ refused: expect.stringMatching(/40-bit refresh masks for bound 5\.44e\+3 need 108 bits at the refresh level .*this chain has 100 bits below the top/) });
    const big = makeParameters({ ringDegree: 16384, bitSizes: [60, 40, 40, 40, 40, 60], scale: 2 ** 40 });
    expect(minRefreshLevel(big, big.scale, 5440, 40)).toBe(2);
    expect(modelMinLevel(big, 5440, false)).toEqual({ level: 2 });
    expect(modelMinLevel(big, 5440, true)).toEqual({ level: 3 });
    // At that level the mask hides at least 40 bits per ciphertext; one level below it does not.
    expect(achievableHidingBits(big, 2, big.scale, 5440)).toBeGreaterThanOrEqual(40);
    expect(achievableHidingBits(big, 1, big.scale, 5440)).toBeLessThan(40);
    // Level 0 (one 60-bit prime) never fits 40 bits, even for |x| <= 2^-10 (12 bits there).
    expect(achievableHidingBits(big, 0, big.scale, 2 ** -10)).toBeLessThan(40);
  });
});
