// Exact integer polynomials in and out of SEAL's residue (RNS) representation: what the coefficient-
// domain refresh needs to see a decrypted message as integers and to lift it to another modulus.

import { roundScaled, type Ratio } from '../refresh/mask.js';

/** Residues of signed integer coefficients modulo each prime, prime-major (SEAL's layout). */
export function toResidues(coeffs: readonly bigint[], primes: readonly bigint[], n: number): BigUint64Array {
  const out = new BigUint64Array(primes.length * n);
  for (let j = 0; j < primes.length; j++) {
    const q = primes[j]!;
    for (let i = 0; i < n; i++) {
      const r = coeffs[i]! % q;
      out[j * n + i] = r < 0n ? r + q : r;
    }
  }
  return out;
}

/**
 * The key holder's lift in one pass over the coefficients: the CRT of prime-major residues (primes
 * `from`) to integers y in (-Q/2, Q/2], the largest |y| (the overflow check), then round(y * ratio)
 * as residues of the primes `to`. CRT as one sum, y = sum_j w_j c_j mod Q with c_j = (Q/q_j)
 * ((Q/q_j)^-1 mod q_j): fewer big-integer operations than reducing each term mod q_j first.
 */
export function liftResidues(words: BigUint64Array, from: readonly bigint[], to: readonly bigint[], n: number, ratio: Ratio): { residues: BigUint64Array; peak: bigint } {
  const Q = from.reduce((a, q) => a * q, 1n);
  const half = Q / 2n;
  const c = from.map((q) => {
    const rest = Q / q;
    return (modInverse(rest % q, q) * rest) % Q;
  });
  const k = from.length;
  const residues = new BigUint64Array(to.length * n);
  let peak = 0n;
  for (let i = 0; i < n; i++) {
    let x = 0n;
    for (let j = 0; j < k; j++) x += words[j * n + i]! * c[j]!;
    x %= Q;
    if (x > half) x -= Q;
    const a = x < 0n ? -x : x;
    if (a > peak) peak = a;
    const v = roundScaled(x, ratio);
    for (let j = 0; j < to.length; j++) {
      const q = to[j]!;
      const r = v % q;
      residues[j * n + i] = r < 0n ? r + q : r;
    }
  }
  return { residues, peak };
}

function modInverse(a: bigint, m: bigint): bigint {
  let [r0, r1] = [a, m];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const t = r0 / r1;
    [r0, r1] = [r1, r0 - t * r1];
    [s0, s1] = [s1, s0 - t * s1];
  }
  if (r0 !== 1n) throw new Error('not invertible');
  return ((s0 % m) + m) % m;
}
