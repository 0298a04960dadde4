// The server accepts evaluation keys only. SEAL's serialized objects carry no type tag, so the shape
// tells: every key blob must be a SEAL object (header: magic, header size, version, no compression,
// size), and one laid out as a Plaintext holding N x k coefficients (at the key level: k = all primes) is a
// SecretKey (SEAL serializes a secret key as exactly that plaintext), refused before anything loads it.
// The evaluator's backend then checks each key's full structure against the context (public key: a
// ciphertext at the key level; relinearization and Galois keys: key-switching keys with their steps).

import { FhecError } from '../../ir/errors.js';
import type { EvaluationKeys } from '../../runtime/backend.js';

const SEAL_MAGIC = 0xa15e;
const HEADER = 16;
const PARMS_ID = 32;

function u64(dv: DataView, at: number): number {
  return dv.getUint32(at, true) + dv.getUint32(at + 4, true) * 4294967296;
}

/** Why `bytes` cannot be an evaluation key, or undefined. `n`: ring degree; `primes`: all primes of the chain (special included). */
export function secretKeyRefusal(bytes: Uint8Array, n: number, primes: number, what: string): string | undefined {
  if (bytes.length < HEADER + PARMS_ID + 16) return `the ${what} is too short to be a SEAL key (${bytes.length} bytes)`;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dv.getUint16(0, true) !== SEAL_MAGIC || dv.getUint8(2) !== HEADER) return `the ${what} is not a SEAL object (no SEAL header)`;
  const size = u64(dv, 8);
  if (size !== bytes.length) return `the ${what}'s SEAL header announces ${size} bytes, ${bytes.length} arrived`;
  // Plaintext layout: header, parms_id, u64 coefficient count, f64 scale, DynArray (header, u64 count, words).
  const coeffs = u64(dv, HEADER + PARMS_ID);
  const dyn = HEADER + PARMS_ID + 16;
  const plaintextSize = dyn + HEADER + 8 + 8 * coeffs;
  // Any plaintext layout of whole polynomials is refused, whatever its prime count: a secret key made for
  // other parameters than this plan's is still a secret key (and no evaluation key is a plaintext).
  if (coeffs > 0 && coeffs % n === 0 && size === plaintextSize) {
    const k = coeffs / n;
    return `the ${what} is a SEAL SecretKey (a plaintext of ${n} x ${k} coefficients${k === primes ? ' at the key level' : `, a key level of ${k} primes where this plan has ${primes}`}): the secret key never leaves the client`;
  }
  return undefined;
}

/** Refuses a keys message that holds anything but evaluation keys. */
export function checkEvaluationKeys(keys: EvaluationKeys, n: number, primes: number): void {
  const blobs: [Uint8Array | undefined, string][] = [
    [keys.publicKey, 'public key'],
    [keys.relinKeys, 'relinearization key'],
    [keys.productKey, 'product key'],
    [keys.galoisKeys, 'Galois key'],
  ];
  for (const [b, what] of blobs) {
    if (!b) continue;
    const why = secretKeyRefusal(b, n, primes, what);
    if (why) throw new FhecError(`keys refused: ${why}`);
  }
}
