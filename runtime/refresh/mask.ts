// The additive mask of a client-aided refresh, and what it buys and costs.
//
// The evaluator adds r to every slot, r_i uniform in [-R, R] with R = 2^k * B, where B bounds |x_i|
// (declared, or calibrated per value). The key holder sees x_i + r_i only:
// - hiding: for any two values x, x' with |x|, |x'| <= B, the laws of x + r and x' + r differ in
//   statistical distance |x - x'| / (2R) <= B / R = 2^-k per slot (union bound: slots * 2^-k for a
//   whole vector, if every slot carries data). Nothing is hidden beyond that: it is statistical, not
//   computational, hiding, and the imaginary parts (noise only) are not masked.
// - headroom: x + r must still fit the modulus at the ciphertext's level: (B + R) * scale < Q_l / 2,
//   so k is bounded by log2(Q_l / scale) - log2(B) - 2 (one bit of margin for the noise). At level 0 of
//   a [60, 40, ...] chain at scale 2^40 that is 18 - log2(B) bits: refresh one level higher to hide more.
// - precision: decrypting, decoding, encoding and encrypting the masked vector rounds in float64 at
//   magnitude B + R instead of B, so the float64 floor of the result moves from about B * 2^-53 up to
//   about R * 2^-53: log2(R / B) = k bits of that floor are lost. Whether it shows depends on the CKKS
//   noise, which does not grow with the mask (see runtime/refresh/precision.ts for the model).

import { randomFillSync } from 'node:crypto';
import { FhecError } from '../../ir/errors.js';
import type { CkksParameters } from '../../ir/ckks/params.js';

export interface MaskPolicy {
  /**
   * Bound B on |value| of every refreshed ciphertext's slots, declared by the caller (tests, hand-made
   * programs). Plans carry a bound per refresh point instead (runtime/refresh/schedule.ts); there is no
   * default: a refresh with no bound is refused.
   */
  valueBound?: number;
  /** k: mask entries are uniform in [-R, R], R = 2^k * B. */
  maskBits: number;
  /** Per-value bounds by the name of the refreshed value, overriding valueBound. */
  bounds?: ReadonlyMap<string, number>;
  /** Uniform [0, 1) numbers; default: the operating system's CSPRNG. Tests inject a seeded source. */
  uniform?: (n: number) => Float64Array;
}

export const DEFAULT_MASK_POLICY: MaskPolicy = { maskBits: 16 };

/** Uniform [0, 1) doubles on a 2^-53 grid from the CSPRNG. */
export function secureUniform(n: number): Float64Array {
  const words = new Uint32Array(2 * n);
  randomFillSync(words);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = ((words[2 * i]! >>> 5) * 67108864 + (words[2 * i + 1]! >>> 6)) / 9007199254740992;
  return out;
}

export function maskRadius(bound: number, maskBits: number): number {
  return bound * 2 ** maskBits;
}

/** r_i = (2u_i - 1) R: uniform in [-R, R]. */
export function sampleMask(slots: number, radius: number, uniform: (n: number) => Float64Array = secureUniform): Float64Array {
  const u = uniform(slots);
  if (u.length !== slots) throw new Error(`mask source gave ${u.length} numbers, expected ${slots}`);
  const r = new Float64Array(slots);
  for (let i = 0; i < slots; i++) r[i] = (2 * u[i]! - 1) * radius;
  return r;
}

/** Per-slot statistical distance between the key holder's views of any two admissible vectors. */
export function maskStatisticalDistance(maskBits: number): number {
  return 2 ** -maskBits;
}

/**
 * Bits of hiding per slot of one masked value (-log2 of the statistical distance above) when its
 * values stay within `bound`: the mask radius is 2^k * bound, so k. The one place the audit and the
 * README figure come from; a mask of another kind changes this formula.
 */
export function hidingBits(bound: number, maskBits: number): number {
  return Math.log2(maskRadius(bound, maskBits) / bound);
}

/** log2 of the product of the data primes q_0..q_level. */
export function modulusBitsAt(params: CkksParameters, level: number): number {
  let bits = 0;
  for (let i = 0; i <= level; i++) bits += Math.log2(Number(params.primes[i]!));
  return bits;
}

/** Largest log2 |x + r| a ciphertext at this level and scale can carry (one bit of noise margin). */
export function maskHeadroomBits(params: CkksParameters, level: number, scale: number): number {
  return modulusBitsAt(params, level) - Math.log2(scale) - 2;
}

/** Throws unless B + R fits the modulus at the level; the message says what to change. */
export function checkMaskFits(params: CkksParameters, level: number, scale: number, bound: number, maskBits: number, name?: string): void {
  if (!(bound > 0) || !Number.isFinite(bound)) throw new FhecError(`refresh value bound ${bound} is not a positive number`, name ? { node: `%${name}` } : {});
  if (!Number.isInteger(maskBits) || maskBits < 0) throw new FhecError(`mask bits ${maskBits} is not a non-negative integer`);
  const need = Math.log2(bound + maskRadius(bound, maskBits));
  const have = maskHeadroomBits(params, level, scale);
  if (need > have) {
    throw new FhecError(
      `refresh at level ${level}: the mask (2^${maskBits} x bound ${bound}) needs ${need.toFixed(1)} bits above the scale, ` +
        `the modulus there leaves ${have.toFixed(1)}; refresh at a higher level, lower the mask bits, or widen the first prime`,
      name ? { node: `%${name}` } : {},
    );
  }
}
