// What a client-aided refresh adds to a ciphertext's error, as variances of the decoded slot values.
// The refreshed ciphertext keeps the error it had (the key holder decrypts it along with the value) and
// gains two terms, both measured on node-seal (N = 8192 and 16384, scale 2^40):
// - the key holder's fresh encryption: at the top level it encrypts with the secret key, so only the
//   error e (sigma 3.2 per coefficient) and the encoder's rounding remain: (N/2)(sigma^2 + 1/12) / scale^2
//   (predicted 1.87e-10 rms at N = 8192, measured 1.75e-10);
// - float64 rounding at the masked magnitude M = B + R: decoding and re-encoding x + r go through
//   double-precision FFTs, error about c * 2^-53 * M with c = 0.4 sqrt(log2 N) (measured 1.58e-16 M at
//   N = 8192, 1.65e-16 M at 16384, for masks from 2^24 to 2^44). It stays below the fresh error while
//   M < about 2^21 at scale 2^40: the default 16-bit mask on |x| <= 1 costs no measurable precision.

import { NOISE_SIGMA } from '../../ir/ckks/noise.js';

/** Variance per slot of a secret-key encryption at `scale` (what the key holder sends back). */
export function symmetricFreshVariance(n: number, scale: number): number {
  return ((n / 2) * (NOISE_SIGMA * NOISE_SIGMA + 1 / 12)) / (scale * scale);
}

/** Standard deviation per slot of the float64 rounding of decoding and encoding values of magnitude M. */
export function float64RoundingStd(n: number, magnitude: number): number {
  return 0.4 * Math.sqrt(Math.log2(n)) * 2 ** -53 * magnitude;
}

/** Variance a refresh adds: fresh encryption at `scale` plus float64 rounding at the masked magnitude. */
export function refreshAddedVariance(n: number, scale: number, maskedMagnitude: number): number {
  return symmetricFreshVariance(n, scale) + float64RoundingStd(n, maskedMagnitude) ** 2;
}

/**
 * Bits of precision relative to the bound B that the refresh itself leaves (log2 B / added error), with
 * the mask R = 2^k B; `lostBits` is what the mask costs against an unmasked round trip.
 */
export function refreshPrecision(n: number, scale: number, bound: number, maskBits: number): { bits: number; lostBits: number } {
  const masked = Math.sqrt(refreshAddedVariance(n, scale, bound * (1 + 2 ** maskBits)));
  const plain = Math.sqrt(refreshAddedVariance(n, scale, bound));
  return { bits: Math.log2(bound / masked), lostBits: Math.log2(masked / plain) };
}
