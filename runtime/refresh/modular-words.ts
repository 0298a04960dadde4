// Exact modular arithmetic on 64-bit words, for the refresh's integer polynomials (masks, the key
// holder's lift): N coefficients of 100+ bits each, reduced modulo several primes per ciphertext.
//
// A BigInt per value allocates on every operation (~100-250 ns each, plus the garbage), and V8 lowers
// BigInt multiplies to machine integers but not shifts, compares or loop-carried values; so the loops
// run in a small WebAssembly module (modular-words.wat, assembled into modular-words-wasm.ts), one
// instance per thread. Products by a fixed factor are Shoup's: no division.

import { MODULAR_WORDS_WASM } from './modular-words-wasm.js';

interface Exports {
  memory: { buffer: ArrayBuffer; grow(pages: number): number };
  residues(data: number, words: number, n: number, q: bigint, radix: bigint, radixShoup: bigint, oneShoup: bigint, sub: bigint, out: number): void;
  rounding(rD: number, pos: number, n: number, den: bigint, numD: bigint, numDShoup: bigint, t: number, up: number): void;
  scaledresidues(
    data: number, words: number, n: number, q: bigint, radix: bigint, radixShoup: bigint, oneShoup: bigint, sub: bigint,
    c1: bigint, c1Shoup: bigint, c2: bigint, c2Shoup: bigint, t: number, up: number, negate: number, out: number,
  ): void;
  above(data: number, words: number, n: number, w: number, pos: number): void;
  crt(w: number, k: number, n: number, consts: number, cofactors: number, offsets: number, limbs: number, acc: number, out: number): void;
  outside(data: number, words: number, n: number, lo: number, hi: number): number;
  addmod(a: number, b: number, n: number, q: bigint, out: number): void;
  notbelow(data: number, n: number, q: bigint): number;
}

// The compiler's libraries declare no WebAssembly (no DOM lib); node and browsers both have it.
const { WebAssembly: Wasm } = globalThis as unknown as {
  WebAssembly: { Module: new (bytes: Uint8Array) => object; Instance: new (module: object) => { exports: unknown } };
};

function wasm(): Exports {
  const bytes = Uint8Array.from(atob(MODULAR_WORDS_WASM), (c) => c.charCodeAt(0));
  return new Wasm.Instance(new Wasm.Module(bytes)).exports as Exports;
}

/** A modulus below 2^62 with the constants its reductions use. */
export class WordModulus {
  /** 2^64 mod q and its Shoup constant: one Horner step over 64-bit words. */
  readonly radix: bigint;
  readonly radixShoup: bigint;
  /** floor(2^64 / q): reduces one word. */
  readonly oneShoup: bigint;

  constructor(readonly q: bigint) {
    if (q < 2n || q >= 1n << 62n) throw new RangeError(`modulus ${q} is outside 2..2^62`);
    this.radix = (1n << 64n) % q;
    this.radixShoup = (this.radix << 64n) / q;
    this.oneShoup = (1n << 64n) / q;
  }

  /** A fixed factor c (reduced mod q) with its Shoup constant floor(c 2^64 / q). */
  factor(c: bigint): { c: bigint; shoup: bigint } {
    const r = ((c % this.q) + this.q) % this.q;
    return { c: r, shoup: (r << 64n) / this.q };
  }
}

/**
 * The module's memory as scratch for one call sequence: `reset`, then `alloc` consecutive arrays, copy
 * inputs in, call, copy outputs out. alloc may grow the memory, which moves it: take views after the
 * last alloc. One per thread, and the calls are synchronous, so no two users overlap.
 */
export class WordScratch {
  readonly fn = wasm();
  private top = 0;

  reset(): this {
    this.top = 0;
    return this;
  }

  /** Reserves `bytes` (8-aligned) and returns its offset. */
  alloc(bytes: number): number {
    const at = this.top;
    this.top += Math.ceil(bytes / 8) * 8;
    const need = this.top - this.fn.memory.buffer.byteLength;
    if (need > 0) this.fn.memory.grow(Math.ceil(need / 65536));
    return at;
  }

  words(at: number, count: number): BigUint64Array {
    return new BigUint64Array(this.fn.memory.buffer, at, count);
  }

  bytes(at: number, count: number): Uint8Array {
    return new Uint8Array(this.fn.memory.buffer, at, count);
  }
}

let shared: WordScratch | undefined;

/** This thread's scratch, reset. */
export function wordScratch(): WordScratch {
  return (shared ??= new WordScratch()).reset();
}

/** Compares the `words`-word integers at data[at..] and ref[0..] (little-endian): -1, 0 or 1. */
export function compareWords(data: BigUint64Array, at: number, ref: BigUint64Array, words: number): number {
  for (let w = words - 1; w >= 0; w--) {
    const a = data[at + w]!;
    const b = ref[w]!;
    if (a !== b) return a < b ? -1 : 1;
  }
  return 0;
}

/** The little-endian 64-bit words of a non-negative integer below 2^(64 words). */
export function toWords(x: bigint, words: number): BigUint64Array {
  if (x < 0n || x >= 1n << BigInt(64 * words)) throw new RangeError(`${x} does not fit ${words} words`);
  const out = new BigUint64Array(words);
  for (let w = 0; w < words; w++) out[w] = BigInt.asUintN(64, x >> BigInt(64 * w));
  return out;
}

/** The integer held by `words` little-endian words at data[at..]. */
export function fromWords(data: BigUint64Array, at: number, words: number): bigint {
  let x = 0n;
  for (let w = words - 1; w >= 0; w--) x = (x << 64n) | data[at + w]!;
  return x;
}
