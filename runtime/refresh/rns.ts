// Exact integer polynomials in and out of SEAL's residue (RNS) representation: what the coefficient-
// domain refresh needs to see a decrypted message as integers and to lift it to another modulus.

import { type Ratio } from './mask.js';
import { IntegerWords, modInverse } from './integer-mask.js';
import { toWords, wordScratch, WordModulus } from './modular-words.js';

/** What the CRT of one set of primes needs, computed once per set (the key holder sees a few levels). */
interface CrtBasis {
  Q: bigint;
  /** 32-bit limbs per integer (even: two to a word); 2^(32 limbs) > 3Q/2 + every partial sum's wrap. */
  limbs: number;
  /** Per prime: q_j, (Q/q_j)^-1 mod q_j and its Shoup constant. */
  consts: BigUint64Array;
  /** Q/q_j as limbs, prime-major. */
  cofactors: BigUint64Array;
  /** (1 - K) Q mod 2^(32 limbs) as limbs, K = 0..k. */
  offsets: BigUint64Array;
}

const bases = new Map<string, CrtBasis>();

function limbsOf(x: bigint, limbs: number): bigint[] {
  return Array.from({ length: limbs }, (_, m) => (x >> BigInt(32 * m)) & 0xffffffffn);
}

function crtBasis(from: readonly bigint[]): CrtBasis {
  const key = from.join(',');
  const known = bases.get(key);
  if (known) return known;
  const Q = from.reduce((a, q) => a * q, 1n);
  const limbs = 2 * Math.ceil((Q.toString(2).length + 2) / 64);
  const wrap = 1n << BigInt(32 * limbs);
  const consts = new BigUint64Array(3 * from.length);
  const cofactors: bigint[] = [];
  from.forEach((q, j) => {
    const rest = Q / q;
    const inv = new WordModulus(q).factor(modInverse(rest % q, q));
    consts.set([q, inv.c, inv.shoup], 3 * j);
    cofactors.push(...limbsOf(rest, limbs));
  });
  const offsets: bigint[] = [];
  for (let K = 0; K <= from.length; K++) offsets.push(...limbsOf((((1n - BigInt(K)) * Q) % wrap + wrap) % wrap, limbs));
  const basis = { Q, limbs, consts, cofactors: BigUint64Array.from(cofactors), offsets: BigUint64Array.from(offsets) };
  bases.set(key, basis);
  return basis;
}

/**
 * The integers y in (-Q/2, Q/2) whose residues modulo the primes `from` are `words` (prime-major,
 * coefficient form), Q the primes' product: the CRT on words (modular-words.wat crt).
 */
export function crtIntegers(words: BigUint64Array, from: readonly bigint[], n: number): IntegerWords {
  if (words.length !== from.length * n) throw new RangeError(`${words.length} residues for ${n} coefficients of ${from.length} primes`);
  const b = crtBasis(from);
  const s = wordScratch();
  const wAt = s.alloc(8 * words.length);
  const constsAt = s.alloc(8 * b.consts.length);
  const cofactorsAt = s.alloc(8 * b.cofactors.length);
  const offsetsAt = s.alloc(8 * b.offsets.length);
  const accAt = s.alloc(8 * b.limbs);
  const outAt = s.alloc(4 * b.limbs * n);
  s.words(wAt, words.length).set(words);
  s.words(constsAt, b.consts.length).set(b.consts);
  s.words(cofactorsAt, b.cofactors.length).set(b.cofactors);
  s.words(offsetsAt, b.offsets.length).set(b.offsets);
  s.fn.crt(wAt, from.length, n, constsAt, cofactorsAt, offsetsAt, b.limbs, accAt, outAt);
  return new IntegerWords(n, b.limbs / 2, s.words(outAt, (b.limbs / 2) * n).slice(), b.Q);
}

/**
 * The key holder's lift: the CRT of prime-major residues (primes `from`) to integers y in (-Q/2, Q/2];
 * if any |y| exceeds `limit`, the largest |y| (the overflow the caller reports); else round(y * ratio)
 * as residues of the primes `to`.
 */
export function liftResidues(words: BigUint64Array, from: readonly bigint[], to: readonly bigint[], n: number, ratio: Ratio, limit: bigint): { residues: BigUint64Array; overflow?: undefined } | { residues?: undefined; overflow: bigint } {
  const y = crtIntegers(words, from, n);
  const s = wordScratch();
  const L = y.words;
  const dataAt = s.alloc(8 * L * n);
  const loAt = s.alloc(8 * L);
  const hiAt = s.alloc(8 * L);
  s.words(dataAt, L * n).set(y.data);
  s.words(loAt, L).set(toWords(y.offset - limit, L));
  s.words(hiAt, L).set(toWords(y.offset + limit, L));
  if (s.fn.outside(dataAt, L, n, loAt, hiAt) >= 0) {
    // Stops the run: the exact peak, for the message.
    return { overflow: y.coefficients().reduce((m, v) => (v < 0n ? -v : v) > m ? (v < 0n ? -v : v) : m, 0n) };
  }
  return { residues: y.scaled(ratio, false).residues(to) };
}

/** a + b for two polynomials as prime-major residues of the primes `primes` (n coefficients). */
export function addResidues(a: BigUint64Array, b: BigUint64Array, primes: readonly bigint[], n: number): BigUint64Array {
  if (a.length !== primes.length * n || b.length !== a.length) throw new RangeError(`residues of ${a.length} and ${b.length} words for ${n} coefficients of ${primes.length} primes`);
  const s = wordScratch();
  const aAt = s.alloc(8 * a.length);
  const bAt = s.alloc(8 * b.length);
  const outAt = s.alloc(8 * a.length);
  s.words(aAt, a.length).set(a);
  s.words(bAt, b.length).set(b);
  primes.forEach((q, j) => s.fn.addmod(aAt + 8 * n * j, bAt + 8 * n * j, n, q, outAt + 8 * n * j));
  return s.words(outAt, a.length).slice();
}

/**
 * Where little-endian 64-bit words (`bytes`, prime-major, n per prime, any alignment) stop being residues
 * of `primes` (a word >= its prime): [prime index, coefficient], or undefined. SEAL's ciphertext validation
 * and the simulator's mask both check with it.
 */
export function firstNonResidue(bytes: Uint8Array, primes: readonly bigint[], n: number): [number, number] | undefined {
  if (bytes.length !== 8 * primes.length * n) throw new RangeError(`${bytes.length} bytes for ${n} words of ${primes.length} primes`);
  const s = wordScratch();
  const at = s.alloc(bytes.length);
  s.bytes(at, bytes.length).set(bytes);
  for (let j = 0; j < primes.length; j++) {
    const i = s.fn.notbelow(at + 8 * n * j, n, primes[j]!);
    if (i >= 0) return [j, i];
  }
  return undefined;
}
