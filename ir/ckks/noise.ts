// CKKS error model (SEAL 4.1, ternary secret, centered noise of standard deviation 3.2), as variances of
// the decoded slot values. A polynomial error with independent coefficients of variance v shows up in
// the real part of every slot with variance (N/2) v, divided by scale^2 once decoded.
//
// - fresh encryption: SEAL encrypts one level up and divides by that prime, so what remains is the
//   rounding: v = (1 + (2/3) N) / 12 (both components rounded, one multiplied by the secret), plus the
//   encoder's rounding 1/12;
// - rescale: the same rounding, at the new scale (with an N^2/27 term for a size-3 ciphertext);
// - key switching (relinearize, rotate): the rounding after dividing by the special prime P, plus
//   sum_j N sigma^2 q_j^2 / (6 P^2) from the digits of the decomposition (only the 60-bit prime matters;
//   the 1/6 is calibrated against node-seal, the uniform-digit estimate 1/3 is 1.4x high in std);
// - mod switch: exact (drops a prime);
// - public-key encryption made at its own level, without the special prime (the evaluator's
//   re-randomizing encryptions: refresh masks, x * 0): u e + e_1 s + e_0 is not divided by anything,
//   v = (21/2) (1 + (4/3) N) with SEAL's centered binomial errors (variance 21/2) and ternary u and s;
// - refresh: the evaluator's encryption of the mask at the input's scale (the key holder rounds the
//   decrypted integers, the error among them stays), then the key holder's secret-key encryption
//   v = sigma^2 + 1/12 (its error and the rounding of the scale change) at the target's;
// - encoding a plaintext at scale s: 1/12 per coefficient.

export const NOISE_SIGMA = 3.2;

const slotFactor = (n: number): number => n / 2;
// Rounding each of the `size` components multiplies them by 1, s, s^2: variances 1/12, N/18, N^2/27.
const roundingCoeffVariance = (n: number, size = 2): number => 1 / 12 + n / 18 + (size >= 3 ? (n * n) / 27 : 0);

export function freshVariance(n: number, scale: number): number {
  return (slotFactor(n) * (roundingCoeffVariance(n) + 1 / 12)) / (scale * scale);
}

export function encodeVariance(n: number, scale: number): number {
  return (slotFactor(n) / 12) / (scale * scale);
}

export function rescaleVariance(n: number, newScale: number, size = 2): number {
  return (slotFactor(n) * roundingCoeffVariance(n, size)) / (newScale * newScale);
}

/** Errors of SEAL's noise sampler: centered binomial of 21 + 21 bits. */
export const CBD_VARIANCE = 21 / 2;

/**
 * A public-key encryption at a level (runtime/seal/zero-encryptor.ts): u e + e_1 s + e_0, and for size 3
 * (with the product key) e_2 s^2 too, whose coefficients have variance 4n/9 each (n products of ternaries).
 */
export function levelEncryptionVariance(n: number, scale: number, size = 2): number {
  return (slotFactor(n) * CBD_VARIANCE * (1 + (4 / 3) * n + (size === 3 ? (4 / 9) * n * n : 0))) / (scale * scale);
}

/** The key holder's reply: a secret-key encryption at `scale` (its error and the scale change's rounding). */
export function symmetricFreshVariance(n: number, scale: number): number {
  return (slotFactor(n) * (NOISE_SIGMA * NOISE_SIGMA + 1 / 12)) / (scale * scale);
}

/** What a client-aided refresh adds: the mask's encryption at the input's scale, the reply at the target's. */
export function refreshVariance(n: number, scale: number, targetScale = scale): number {
  return levelEncryptionVariance(n, scale) + symmetricFreshVariance(n, targetScale);
}

/** `levelPrimes`: the data primes present (q_0..q_level); `special`: the special prime P. */
export function keySwitchVariance(n: number, levelPrimes: readonly bigint[], special: bigint, scale: number): number {
  const p = Number(special);
  let digits = 0;
  for (const q of levelPrimes) digits += (Number(q) / p) ** 2;
  const coeff = roundingCoeffVariance(n) + (n * NOISE_SIGMA * NOISE_SIGMA * digits) / 6;
  return (slotFactor(n) * coeff) / (scale * scale);
}
