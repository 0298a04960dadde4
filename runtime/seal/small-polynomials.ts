// The random polynomials of encryptions, from the OS CSPRNG: uniform ones (uniformResidues: the product
// key's third component) and the small ones of a public-key encryption, sampled as SEAL 4 samples them:
// u uniform over {-1, 0, 1} (sample_poly_ternary) and errors from the centered binomial distribution of
// 21 + 21 bits, standard deviation sqrt(21 / 2) ~ 3.24 (sample_poly_cbd, SEAL's default noise sampler,
// for its noise standard deviation 3.2). Their residues modulo each prime are the coefficients
// themselves, or the prime minus their magnitude.

import { randomFillSync } from 'node:crypto';

/** Set bits in each byte value. */
const BITS = Uint8Array.from({ length: 256 }, (_, b) => {
  let c = 0;
  for (let x = b; x > 0; x >>= 1) c += x & 1;
  return c;
});

/** n coefficients uniform over {-1, 0, 1}: bytes below 255 taken modulo 3 (255 = 3 * 85 is rejected). */
export function sampleTernary(n: number, random: (out: Uint8Array) => void = randomFillSync): Int8Array {
  const out = new Int8Array(n);
  let filled = 0;
  while (filled < n) {
    const buf = new Uint8Array(n - filled + 16);
    random(buf);
    for (let i = 0; i < buf.length && filled < n; i++) if (buf[i]! < 255) out[filled++] = (buf[i]! % 3) - 1;
  }
  return out;
}

/** n coefficients from the centered binomial distribution: (bits set in 21 random bits) - (in 21 others). */
export function sampleCenteredBinomial(n: number, random: (out: Uint8Array) => void = randomFillSync): Int8Array {
  const buf = new Uint8Array(6 * n);
  random(buf);
  const out = new Int8Array(n);
  for (let i = 0, b = 0; i < n; i++, b += 6) {
    out[i] = BITS[buf[b]!]! + BITS[buf[b + 1]!]! + BITS[buf[b + 2]! & 0x1f]! - BITS[buf[b + 3]!]! - BITS[buf[b + 4]!]! - BITS[buf[b + 5]! & 0x1f]!;
  }
  return out;
}

/** Residues of small signed coefficients (|c| < 2^31) modulo each prime (< 2^62), prime-major, as 64-bit words. */
export function smallResidues(coeffs: Int8Array, primes: readonly bigint[]): BigUint64Array {
  const n = coeffs.length;
  const out = new BigUint64Array(primes.length * n);
  // Written as 32-bit halves (little-endian): no BigInt per coefficient.
  const half = new Uint32Array(out.buffer);
  primes.forEach((q, j) => {
    const lo = Number(q & 0xffffffffn);
    const hi = Number(q >> 32n);
    for (let i = 0, w = 2 * j * n; i < n; i++, w += 2) {
      const c = coeffs[i]!;
      if (c >= 0) {
        half[w] = c;
        half[w + 1] = 0;
      } else {
        // q + c = q - |c|: borrow from the high half when the low half is smaller than |c|.
        const l = lo + c;
        half[w] = l >>> 0;
        half[w + 1] = l < 0 ? hi - 1 : hi;
      }
    }
  });
  return out;
}

/** The platform's CSPRNG (Web Crypto: Node and browsers alike), in the 64 KiB pieces it fills at a time. */
function webRandom(out: Uint8Array): void {
  for (let at = 0; at < out.length; at += 65536) globalThis.crypto.getRandomValues(out.subarray(at, Math.min(out.length, at + 65536)));
}

/**
 * n words uniform modulo each prime (prime-major): random bits cut to the prime's bit length, rejected
 * when >= the prime (exactly uniform; a prime above 2^(bits-1) rejects less than half). Runs on the
 * client (the product key), in a browser too: Web Crypto by default.
 */
export function uniformResidues(n: number, primes: readonly bigint[], random: (out: Uint8Array) => void = webRandom): BigUint64Array {
  const out = new BigUint64Array(primes.length * n);
  const half = new Uint32Array(out.buffer);
  primes.forEach((q, j) => {
    const bits = q.toString(2).length;
    if (bits > 64) throw new Error(`internal: prime ${q} above 2^64`);
    // Each draw is two 32-bit halves: the high one cut to the bits above 32 (none for a prime below 2^32).
    const hiMask = bits > 32 ? 2 ** (bits - 32) - 1 : 0;
    const loMask = bits >= 32 ? 0xffffffff : 2 ** bits - 1;
    const qLo = Number(q & 0xffffffffn);
    const qHi = Number(q >> 32n);
    const buf = new Uint32Array(2 * n + 64);
    let filled = 0;
    while (filled < n) {
      random(new Uint8Array(buf.buffer));
      for (let i = 0; i + 1 < buf.length && filled < n; i += 2) {
        const lo = (buf[i]! & loMask) >>> 0;
        const hi = buf[i + 1]! & hiMask;
        if (hi > qHi || (hi === qHi && lo >= qLo)) continue;
        const w = 2 * (j * n + filled++);
        half[w] = lo;
        half[w + 1] = hi;
      }
    }
  });
  return out;
}
