// Refreshing an unrelinearized product (size 3: c0 + c1 s + c2 s^2 = m). The key holder decrypts it
// as cheaply as a size-2 ciphertext, and the evaluator saves the relinearization's key switch. But c2
// must not reach the key holder as it is: c2 = a1 b1 is the product of the operands' c1 components,
// which come from the key holder's own encryptions times plaintext weights, so the key holder could
// divide out what it made and learn the weights. The mask's fresh public-key encryption re-randomizes
// c0 and c1 only. So a size-3 mask also carries a randomizer of the third component,
//   R = (-d0, -d1, u),  u uniform in R_Q (each NTT word uniform mod its prime),  (d0, d1) = relin(0, 0, u),
// which decrypts to -(d0 + d1 s) + u s^2 = -e_ks (the key switch's small error): adding it changes
// the message by noise only and makes c2 + u uniform and independent of c2. It depends on no data, so
// the mask thread makes it ahead with the relinearization key (public material); the key switch moves
// off the evaluator's thread.

import { randomFillSync } from 'node:crypto';
import type { Ciphertext, Evaluator, MainModule, RelinKeys } from 'node-seal';
import { sealCall, type SealContextInfo } from './module.js';
import { buildCiphertextBytes, type SealShape } from './serialized.js';

/**
 * n words uniform modulo each prime (prime-major): 64 random bits cut to the prime's bit length,
 * rejected when >= the prime (exactly uniform; primes above 2^(bits-1) reject less than half).
 */
export function uniformResidues(n: number, primes: readonly bigint[], random: (out: Uint8Array) => void = randomFillSync): BigUint64Array {
  const out = new BigUint64Array(primes.length * n);
  const half = new Uint32Array(out.buffer);
  primes.forEach((q, j) => {
    const bits = q.toString(2).length;
    if (bits <= 32) throw new Error(`internal: prime ${q} below 2^32`);
    const hiMask = 2 ** (bits - 32) - 1;
    const qLo = Number(q & 0xffffffffn);
    const qHi = Number(q >> 32n);
    const buf = new Uint32Array(2 * n + 64);
    let filled = 0;
    while (filled < n) {
      random(new Uint8Array(buf.buffer));
      for (let i = 0; i + 1 < buf.length && filled < n; i += 2) {
        const lo = buf[i]!;
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

/**
 * R = (-d0, -d1, u) at `level` (NTT form, scale `scale`): add it to a size-3 ciphertext to make its third
 * component uniform without changing its message beyond the key switch's error. Owned by the caller.
 */
export function thirdComponentRandomizer(seal: MainModule, info: SealContextInfo, shape: SealShape, evaluator: Evaluator, relinKeys: RelinKeys, level: number, scale: number, random?: (out: Uint8Array) => void): Ciphertext {
  const n = shape.n;
  const k = level + 1;
  const words = new BigUint64Array(3 * k * n);
  words.set(uniformResidues(n, shape.primes.slice(0, k), random), 2 * k * n);
  const bytes = buildCiphertextBytes({ parmsId: shape.levelIds[level]!, ntt: true, n, k, scale, words });
  const zu = new seal.Ciphertext();
  const d = new seal.Ciphertext();
  try {
    sealCall(seal, 'ciphertext load', () => zu.loadFromArray(info.context, bytes));
    sealCall(seal, 'relinearize', () => evaluator.relinearize(zu, relinKeys, d));
    // (0, 0, u) - (d0, d1) = (-d0, -d1, u): SEAL subtracts ciphertexts of different sizes.
    sealCall(seal, 'third component randomizer', () => evaluator.sub(zu, d, zu));
    return zu;
  } catch (e) {
    zu.delete();
    throw e;
  } finally {
    d.delete();
  }
}
