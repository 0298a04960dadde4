// What a client-aided refresh adds to a ciphertext's error, as variances of the decoded slot values.
// The refreshed ciphertext keeps the error it had (the key holder decrypts it along with the value;
// the coefficient-domain mask comes off exactly, up to one unit of the scale per coefficient when the
// scale changes) and gains two encryptions' errors:
// - the evaluator's re-randomization: a public-key encryption of zero added before masking
//   (freshVariance, ir/ckks/noise.ts);
// - the key holder's fresh encryption: at the target level it encrypts the lifted polynomial with
//   the secret key, so only the error e (sigma 3.2 per coefficient) and the rounding of the scale
//   change remain: (N/2)(sigma^2 + 1/12) / scale^2 (predicted 1.87e-10 rms at N = 8192, measured
//   1.75e-10 with the earlier slot-domain protocol, which had the same secret-key encryption).
// Unlike a slot-domain mask, nothing here grows with the mask: no float64 rounding at the masked size.

import { NOISE_SIGMA, freshVariance } from '../../ir/ckks/noise.js';

/** Variance per slot of a secret-key encryption at `scale` (what the key holder sends back). */
export function symmetricFreshVariance(n: number, scale: number): number {
  return ((n / 2) * (NOISE_SIGMA * NOISE_SIGMA + 1 / 12)) / (scale * scale);
}

/** Variance a refresh adds: the re-randomization at the ciphertext's scale, the fresh encryption at the target's. */
export function refreshAddedVariance(n: number, scale: number, targetScale = scale): number {
  return freshVariance(n, scale) + symmetricFreshVariance(n, targetScale);
}
