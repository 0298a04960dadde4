// The refresh mask as the evaluator holds it: N integers uniform over [-W, W] (mask.ts sizes W), kept
// as 64-bit words of v = r + W in [0, 2W], and the residues the backends add to a ciphertext, computed
// on words (modular-words.ts) without a BigInt per coefficient:
// - residues of r modulo the primes of the level it masks;
// - residues of -round(r num / den) modulo the target primes, what comes off after the key holder's
//   scale change (rounded exactly as roundScaled: halves away from zero), from
//   round(X / den) = (X - rho) / den with X = r num and rho the remainder round() leaves, so that
//   mod q it is (X - rho) den^-1 and only X mod den needs the integer, as words.
// coefficients() gives the same integers as BigInts (tests, and the BigInt fallback of scaled()).

import { randomFillSync } from 'node:crypto';
import { FhecError } from '../../ir/errors.js';
import type { IntegerPolynomial } from '../backend.js';
import { bitLength, roundScaled, type Ratio } from './mask.js';
import { compareWords, fromWords, toWords, wordScratch, WordModulus, type WordScratch } from './modular-words.js';

/** Residues of signed integer coefficients modulo each prime, prime-major: the BigInt way, for any polynomial. */
export function bigintResidues(coeffs: readonly bigint[], primes: readonly bigint[], n: number): BigUint64Array {
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

/** Integer coefficients given as BigInts (tests, hand-made polynomials). */
export function integerPolynomial(coeffs: readonly bigint[]): IntegerPolynomial {
  return {
    n: coeffs.length,
    residues: (primes) => bigintResidues(coeffs, primes, coeffs.length),
    coefficients: () => coeffs.slice(),
  };
}

function osRandom(out: Uint8Array): void {
  randomFillSync(out);
}

/**
 * n integers r_i = v_i - offset with v_i >= 0 held as `words` little-endian 64-bit words each: the
 * residues and scale changes of the refresh, computed on words (modular-words.wat).
 */
export class IntegerWords implements IntegerPolynomial {
  /** The offset as words. */
  private readonly offsetWords: BigUint64Array;

  constructor(
    readonly n: number,
    /** 64-bit words per coefficient. */
    readonly words: number,
    /** v_i, `words` words each. */
    readonly data: BigUint64Array,
    readonly offset: bigint,
  ) {
    if (data.length !== n * words) throw new RangeError(`${data.length} words for ${n} coefficients of ${words}`);
    this.offsetWords = toWords(offset, words);
  }

  coefficients(): bigint[] {
    const out = new Array<bigint>(this.n);
    for (let i = 0; i < this.n; i++) out[i] = fromWords(this.data, i * this.words, this.words) - this.offset;
    return out;
  }

  residues(primes: readonly bigint[]): BigUint64Array {
    const n = this.n;
    const s = wordScratch();
    const dataAt = this.copyIn(s);
    const outAt = s.alloc(8 * n * primes.length);
    primes.forEach((p, j) => {
      const m = new WordModulus(p);
      s.fn.residues(dataAt, this.words, n, p, m.radix, m.radixShoup, m.oneShoup, this.offset % p, outAt + 8 * n * j);
    });
    return s.words(outAt, n * primes.length).slice();
  }

  /** round(r_i num / den) (or its negation) for every coefficient, rounded as roundScaled (halves away from zero). */
  scaled(ratio: Ratio, negate: boolean): IntegerPolynomial {
    return {
      n: this.n,
      residues: (primes) => this.scaledResidues(ratio, primes, negate),
      coefficients: () => this.coefficients().map((v) => (negate ? -roundScaled(v, ratio) : roundScaled(v, ratio))),
    };
  }

  private copyIn(s: WordScratch): number {
    const at = s.alloc(8 * this.data.length);
    s.words(at, this.data.length).set(this.data);
    return at;
  }

  private scaledResidues(ratio: Ratio, primes: readonly bigint[], negate: boolean): BigUint64Array {
    const same = ratio.num === ratio.den;
    const num = same ? 1n : ratio.num;
    const den = same ? 1n : ratio.den;
    const n = this.n;
    const L = this.words;
    // Outside the word arithmetic's range (a scale change by more than 2^62), or a prime dividing den: BigInts.
    if (den >= 1n << 62n || primes.some((p) => den % p === 0n)) return bigintResidues(this.scaled(ratio, negate).coefficients(), primes, n);
    const s = wordScratch();
    const dataAt = this.copyIn(s);
    const offsetAt = s.alloc(8 * L);
    const tAt = s.alloc(8 * n);
    const xAt = s.alloc(8 * n);
    const upAt = s.alloc(n);
    const posAt = s.alloc(n);
    const outAt = s.alloc(8 * n * primes.length);
    s.words(offsetAt, L).set(this.offsetWords);
    // rho_i = t_i (rounded down) or t_i - den (up), t_i = X_i mod den.
    if (den > 1n) {
      const dm = new WordModulus(den);
      const numD = dm.factor(num);
      s.fn.residues(dataAt, L, n, den, dm.radix, dm.radixShoup, dm.oneShoup, this.offset % den, xAt);
      s.fn.above(dataAt, L, n, offsetAt, posAt);
      s.fn.rounding(xAt, posAt, n, den, numD.c, numD.shoup, tAt, upAt);
    } else {
      s.words(tAt, n).fill(0n);
      s.bytes(upAt, n).fill(0);
    }
    primes.forEach((p, j) => {
      const m = new WordModulus(p);
      const inv = modInverse(den % p, p);
      const c1 = m.factor(num * inv);
      const c2 = m.factor(inv);
      s.fn.scaledresidues(dataAt, L, n, p, m.radix, m.radixShoup, m.oneShoup, this.offset % p, c1.c, c1.shoup, c2.c, c2.shoup, tAt, upAt, negate ? 1 : 0, outAt + 8 * n * j);
    });
    return s.words(outAt, n * primes.length).slice();
  }
}

export class IntegerMask extends IntegerWords {
  /** W. */
  readonly width: bigint;

  private constructor(n: number, width: bigint, words: number, data: BigUint64Array) {
    super(n, words, data, width);
    this.width = width;
  }

  /**
   * n integers uniform over [-width, width]: rejection sampling on whole 64-bit words (the top word
   * masked to the range's bit length), each draw accepted with probability > 1/2.
   */
  static sample(n: number, width: bigint, random: (out: Uint8Array) => void = osRandom): IntegerMask {
    if (width < 0n) throw new FhecError(`mask width ${width} is negative`);
    const range = 2n * width + 1n;
    const bits = Math.max(1, bitLength(range - 1n));
    const words = Math.ceil(bits / 64);
    // range is odd, so it has the bit length of range - 1: it fits the same words.
    const rangeWords = toWords(range, words);
    const topMask = (1n << BigInt(bits - 64 * (words - 1))) - 1n;
    const data = new BigUint64Array(n * words);
    let filled = 0;
    while (filled < n) {
      // A few spare draws make a second pass rare.
      const want = n - filled + 64 + ((n - filled) >> 3);
      const buf = new BigUint64Array(want * words);
      random(new Uint8Array(buf.buffer));
      for (let s = 0; s < want && filled < n; s++) {
        // The buffer holds each draw's top word first (masked), then the lower words.
        const at = filled * words;
        data[at + words - 1] = buf[s * words]! & topMask;
        for (let w = 1; w < words; w++) data[at + words - 1 - w] = buf[s * words + w]!;
        if (compareWords(data, at, rangeWords, words) < 0) filled++;
      }
    }
    return new IntegerMask(n, width, words, data);
  }

  /** -round(r_i num / den) for every coefficient: the mask to take off after the scale change `ratio`. */
  negatedScaled(ratio: Ratio): IntegerPolynomial {
    return this.scaled(ratio, true);
  }
}

export function modInverse(a: bigint, m: bigint): bigint {
  let [r0, r1] = [((a % m) + m) % m, m];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const t = r0 / r1;
    [r0, r1] = [r1, r0 - t * r1];
    [s0, s1] = [s1, s0 - t * s1];
  }
  if (r0 !== 1n) throw new RangeError(`${a} has no inverse modulo ${m}`);
  return ((s0 % m) + m) % m;
}
