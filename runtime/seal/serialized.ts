// SEAL's serialized objects, read and written in TypeScript. node-seal 7 wraps SEAL 4.1.2, whose
// loader trusts its input more than it should (4.4.0 hardened it), and each side of the protocol
// loads what the other sent: so every ciphertext and key is checked here before SEAL sees it -
// header (magic, size, version 4.1, no compression), parms_id of this context at the expected level,
// polynomial count, ring degree, data length, every coefficient below its prime. The same layout lets
// the key holder move exact integer polynomials in and out of SEAL (coefficient-domain refresh).
//
//   SEALHeader (16 B): u16 magic 0xA15E, u8 header size 16, u8 version major, u8 minor, u8 compression,
//                      u16 reserved, u64 total size of the object (header included)
//   Ciphertext: header, parms_id (4 x u64), u8 NTT form, u64 size, u64 N, u64 k, f64 scale,
//               u64 correction factor, DynArray (header, u64 count, count x u64: poly-major, then prime,
//               then coefficient); a seeded ciphertext stores c0 only, then the PRNG info (header,
//               u8 PRNG type, 64-byte seed)
//   Plaintext:  header, parms_id, u64 coefficient count, f64 scale, DynArray
//   PublicKey:  a Ciphertext at the key level; RelinKeys / GaloisKeys: header, parms_id, u64 dim1,
//               dim1 x (u64 dim2, dim2 x PublicKey)
// All little-endian (see SEAL's serialization.h, ciphertext.cpp, plaintext.cpp, kswitchkeys.cpp).

import { galoisElement } from './galois.js';
import { FhecError } from '../../ir/errors.js';
import { addResidues, firstNonResidue } from '../refresh/rns.js';

const MAGIC = 0xa15e;
const HEADER = 16;
const VERSION_MAJOR = 4;
const VERSION_MINOR = 1;
const PARMS_ID = 32;
const CT_MEMBERS = PARMS_ID + 1 + 8 + 8 + 8 + 8 + 8;
const PRNG_INFO = HEADER + 1 + 64;
/** Byte offset of a ciphertext's scale: after the header, parms_id, NTT flag, size, N and k. */
const SCALE_AT = HEADER + PARMS_ID + 1 + 8 + 8 + 8;

/** What a serialized object must match: the context's ring degree, primes and parms_ids. */
export interface SealShape {
  n: number;
  /** All primes: data primes q_0..q_L, then the special prime. */
  primes: bigint[];
  /** parms_id (hex of the 4 words) of each data level. */
  levelIds: string[];
  /** parms_id of the key level (all primes). */
  keyId: string;
}

export interface CiphertextInfo {
  /** Data level, or -1 for the key level. */
  level: number;
  ntt: boolean;
  size: number;
  scale: number;
  seeded: boolean;
  /** Bytes this object occupies (header size). */
  bytes: number;
  /** Byte offset of the coefficient words in the buffer given. */
  dataOffset: number;
  /** Coefficient words stored. */
  words: number;
}

export function parmsIdHex(words: ArrayLike<bigint>): string {
  return Array.from(words, (w) => w.toString(16).padStart(16, '0')).join('');
}

function fail(what: string, why: string): never {
  throw new FhecError(`malformed ${what}: ${why}`);
}

class Reader {
  readonly dv: DataView;
  constructor(
    readonly bytes: Uint8Array,
    public at: number,
    readonly end: number,
    readonly what: string,
  ) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  need(n: number): void {
    if (this.at + n > this.end) fail(this.what, `truncated at byte ${this.at}`);
  }
  u8(): number {
    this.need(1);
    return this.dv.getUint8(this.at++);
  }
  u64(): number {
    this.need(8);
    const lo = this.dv.getUint32(this.at, true);
    const hi = this.dv.getUint32(this.at + 4, true);
    this.at += 8;
    // Sizes beyond 2^53 are malformed anyway; keep them as huge numbers that fail every range check.
    return hi * 4294967296 + lo;
  }
  f64(): number {
    this.need(8);
    const v = this.dv.getFloat64(this.at, true);
    this.at += 8;
    return v;
  }
  parmsId(): string {
    this.need(PARMS_ID);
    const words: bigint[] = [];
    for (let i = 0; i < 4; i++) words.push(this.dv.getBigUint64(this.at + 8 * i, true));
    this.at += PARMS_ID;
    return parmsIdHex(words);
  }
  /** A SEALHeader; returns the end of the object it announces. */
  header(): number {
    this.need(HEADER);
    const dv = this.dv;
    const a = this.at;
    if (dv.getUint16(a, true) !== MAGIC) fail(this.what, 'not a SEAL object (bad magic)');
    if (dv.getUint8(a + 2) !== HEADER) fail(this.what, `header size ${dv.getUint8(a + 2)}, expected ${HEADER}`);
    const [major, minor] = [dv.getUint8(a + 3), dv.getUint8(a + 4)];
    if (major !== VERSION_MAJOR || minor !== VERSION_MINOR) fail(this.what, `SEAL version ${major}.${minor}, expected ${VERSION_MAJOR}.${VERSION_MINOR}`);
    if (dv.getUint8(a + 5) !== 0) fail(this.what, `compression mode ${dv.getUint8(a + 5)}; only uncompressed objects are accepted`);
    if (dv.getUint16(a + 6, true) !== 0) fail(this.what, 'reserved header bytes are not zero');
    const size = dv.getUint32(a + 8, true) + dv.getUint32(a + 12, true) * 4294967296;
    if (size < HEADER || a + size > this.end) fail(this.what, `object of ${size} bytes does not fit the ${this.end - a} bytes left`);
    this.at += HEADER;
    return a + size;
  }
}

/** Every word of `count` at `offset` below its prime; words are grouped in blocks of n per prime. */
function checkCoefficients(r: Reader, offset: number, polys: number, primes: bigint[], n: number): void {
  const size = 8 * n * primes.length;
  for (let p = 0; p < polys; p++) {
    const bad = firstNonResidue(r.bytes.subarray(offset + p * size, offset + (p + 1) * size), primes, n);
    if (bad) fail(r.what, `coefficient ${bad[1]} of polynomial ${p} is not below its prime ${primes[bad[0]]}`);
  }
}

function levelOfId(shape: SealShape, id: string): number {
  if (id === shape.keyId) return -1;
  const level = shape.levelIds.indexOf(id);
  return level;
}

function readCiphertext(r: Reader, shape: SealShape, coefficientForm = false): CiphertextInfo {
  const start = r.at;
  const end = r.header();
  const inner = new Reader(r.bytes, r.at, end, r.what);
  const level = levelOfId(shape, inner.parmsId());
  if (level < -1) fail(r.what, 'parms_id is not one of this context (other parameters)');
  const primes = level === -1 ? shape.primes : shape.primes.slice(0, level + 1);
  const nttByte = inner.u8();
  if (nttByte > 1) fail(r.what, `NTT flag ${nttByte}`);
  const size = inner.u64();
  const n = inner.u64();
  const k = inner.u64();
  const scale = inner.f64();
  const correction = inner.u64();
  if (size !== 2 && size !== 3) fail(r.what, `${size} polynomials; a ciphertext here has 2 (or 3 before relinearization)`);
  if (n !== shape.n) fail(r.what, `ring degree ${n}, this context has ${shape.n}`);
  if (k !== primes.length) fail(r.what, `${k} primes, its parms_id has ${primes.length}`);
  if (!(scale > 0) || !Number.isFinite(scale)) fail(r.what, `scale ${scale}`);
  if (correction !== 1) fail(r.what, `correction factor ${correction}, CKKS has 1`);
  const arrEnd = inner.header();
  const count = inner.u64();
  const full = size * n * k;
  const seeded = count === n * k && size === 2;
  if (count !== full && !seeded) fail(r.what, `${count} coefficient words, expected ${full}`);
  if (inner.at + 8 * count !== arrEnd) fail(r.what, 'coefficient array length does not match its header');
  const dataOffset = inner.at;
  checkCoefficients(inner, dataOffset, seeded ? 1 : size, primes, n);
  inner.at = arrEnd;
  if (seeded) {
    const infoEnd = inner.header();
    if (infoEnd - (inner.at - HEADER) !== PRNG_INFO) fail(r.what, 'seed record has the wrong size');
    const prng = inner.u8();
    if (prng !== 1 && prng !== 2) fail(r.what, `unknown PRNG type ${prng}`);
    inner.at = infoEnd;
  }
  if (inner.at !== end) fail(r.what, `${end - inner.at} unexplained bytes inside the object`);
  if (!nttByte !== coefficientForm) fail(r.what, coefficientForm ? 'expected coefficient form' : 'ciphertext is not in NTT form');
  r.at = end;
  return { level, ntt: nttByte === 1, size, scale, seeded, bytes: end - start, dataOffset, words: count };
}

export interface CiphertextExpectation {
  /** The data level it must be at (any data level if omitted). */
  level?: number;
  /** Polynomial counts accepted: [2] unless said otherwise. */
  sizes?: number[];
  /** Whether a seeded (half) ciphertext is acceptable. */
  seeded?: boolean;
}

/** Checks a serialized ciphertext; returns what it holds. Throws an FhecError naming `what` otherwise. */
export function checkCiphertextBytes(bytes: Uint8Array, shape: SealShape, what: string, expect: CiphertextExpectation = {}): CiphertextInfo {
  const r = new Reader(bytes, 0, bytes.length, what);
  const info = readCiphertext(r, shape);
  if (r.at !== bytes.length) fail(what, `${bytes.length - r.at} trailing bytes`);
  if (info.level < 0) fail(what, 'a key-level object where a ciphertext was expected');
  if (expect.level !== undefined && info.level !== expect.level) fail(what, `at level ${info.level}, expected ${expect.level}`);
  const sizes = expect.sizes ?? [2];
  if (!sizes.includes(info.size)) fail(what, `${info.size} polynomials, expected ${sizes.join(' or ')}`);
  if (info.seeded && !expect.seeded) fail(what, 'seeded (half) ciphertext where a full one was expected');
  return info;
}

export function checkPublicKeyBytes(bytes: Uint8Array, shape: SealShape): void {
  const what = 'public key';
  const r = new Reader(bytes, 0, bytes.length, what);
  const info = readCiphertext(r, shape);
  if (r.at !== bytes.length) fail(what, `${bytes.length - r.at} trailing bytes`);
  if (info.level !== -1) fail(what, 'not at the key level');
  if (info.size !== 2 || info.seeded) fail(what, 'a public key is a full 2-polynomial ciphertext');
}

/** A checked public key's coefficient words (2 polynomials x all primes x N, NTT form) and scale. */
export function publicKeyWords(bytes: Uint8Array, shape: SealShape): { words: BigUint64Array; scale: number } {
  checkPublicKeyBytes(bytes, shape);
  const info = readCiphertext(new Reader(bytes, 0, bytes.length, 'public key'), shape);
  return { words: new BigUint64Array(bytes.slice(info.dataOffset, info.dataOffset + 8 * info.words).buffer), scale: info.scale };
}

/**
 * A copy of a serialized NTT-form ciphertext (one SEAL just wrote, seeded or not) with `words` (residues
 * of its primes, NTT form) added to c0 and its scale set to `scale`: SEAL encrypts a plaintext as an
 * encryption of zero with the plaintext added to c0, at the plaintext's scale.
 */
export function withC0Added(bytes: Uint8Array, shape: SealShape, words: BigUint64Array, scale: number): Uint8Array {
  const info = checkCiphertextBytes(bytes, shape, 'encryption of zero', { seeded: true });
  const primes = shape.primes.slice(0, info.level + 1);
  const count = primes.length * shape.n;
  const c0 = new BigUint64Array(bytes.slice(info.dataOffset, info.dataOffset + 8 * count).buffer);
  const out = bytes.slice();
  const sum = addResidues(c0, words, primes, shape.n);
  out.set(new Uint8Array(sum.buffer, sum.byteOffset, sum.byteLength), info.dataOffset);
  new DataView(out.buffer).setFloat64(SCALE_AT, scale, true);
  return out;
}

/** Rewrites a serialized ciphertext's parms_id in place (same words, another context's parms_id for them). */
export function rewriteParmsId(bytes: Uint8Array, hex: string): void {
  writeParmsId(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), HEADER, hex);
}


/**
 * Checks serialized relinearization or Galois keys: each key is a key-level ciphertext, one per data
 * prime; relinearization keys hold one key, Galois keys exactly the rotations `galoisSteps` announce.
 */
export function checkKSwitchKeysBytes(bytes: Uint8Array, shape: SealShape, kind: 'relin' | 'galois', galoisSteps: number[] = []): void {
  const what = kind === 'relin' ? 'relinearization keys' : 'Galois keys';
  const r = new Reader(bytes, 0, bytes.length, what);
  const end = r.header();
  if (end !== bytes.length) fail(what, `${bytes.length - end} trailing bytes`);
  if (r.parmsId() !== shape.keyId) fail(what, 'parms_id is not this context\'s key level (other parameters)');
  const dim1 = r.u64();
  const decomposition = shape.primes.length - 1;
  const expected = new Set<number>(kind === 'relin' ? [0] : galoisSteps.map((s) => (galoisElement(s, shape.n) - 1) >> 1));
  const maxDim1 = kind === 'relin' ? 1 : shape.n;
  if (dim1 > maxDim1) fail(what, `${dim1} key slots, at most ${maxDim1}`);
  const seen = new Set<number>();
  for (let index = 0; index < dim1; index++) {
    const dim2 = r.u64();
    if (dim2 === 0) continue;
    if (dim2 !== decomposition) fail(what, `key ${index} has ${dim2} parts, expected ${decomposition}`);
    if (!expected.has(index)) fail(what, `holds a key (slot ${index}) that was not announced`);
    seen.add(index);
    for (let j = 0; j < dim2; j++) {
      const info = readCiphertext(r, shape);
      if (info.level !== -1) fail(what, `key ${index} part ${j} is not at the key level`);
      if (info.size !== 2) fail(what, `key ${index} part ${j} has ${info.size} polynomials`);
    }
  }
  for (const e of expected) if (!seen.has(e)) fail(what, `the key for slot ${e} is missing`);
  if (r.at !== end) fail(what, `${end - r.at} unexplained bytes`);
}

function sealHeader(dv: DataView, at: number, size: number): void {
  dv.setUint16(at, MAGIC, true);
  dv.setUint8(at + 2, HEADER);
  dv.setUint8(at + 3, VERSION_MAJOR);
  dv.setUint8(at + 4, VERSION_MINOR);
  dv.setUint8(at + 5, 0);
  dv.setUint16(at + 6, 0, true);
  dv.setUint32(at + 8, size % 4294967296, true);
  dv.setUint32(at + 12, Math.floor(size / 4294967296), true);
}

function writeParmsId(dv: DataView, at: number, hex: string): void {
  for (let i = 0; i < 4; i++) dv.setBigUint64(at + 8 * i, BigInt('0x' + hex.slice(16 * i, 16 * i + 16)), true);
}

/** A ciphertext (size = words / (n k)) with the given coefficient words, uncompressed. */
export function buildCiphertextBytes(o: { parmsId: string; ntt: boolean; n: number; k: number; scale: number; words: BigUint64Array }): Uint8Array {
  const size = o.words.length / (o.n * o.k);
  const total = HEADER + CT_MEMBERS + HEADER + 8 + 8 * o.words.length;
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  sealHeader(dv, 0, total);
  let at = HEADER;
  writeParmsId(dv, at, o.parmsId);
  at += PARMS_ID;
  dv.setUint8(at++, o.ntt ? 1 : 0);
  for (const v of [size, o.n, o.k]) {
    dv.setBigUint64(at, BigInt(v), true);
    at += 8;
  }
  dv.setFloat64(at, o.scale, true);
  dv.setBigUint64(at + 8, 1n, true);
  at += 16;
  sealHeader(dv, at, HEADER + 8 + 8 * o.words.length);
  dv.setBigUint64(at + HEADER, BigInt(o.words.length), true);
  at += HEADER + 8;
  out.set(new Uint8Array(o.words.buffer, o.words.byteOffset, o.words.byteLength), at);
  return out;
}

/** An NTT-form plaintext at `parmsId` with the given words (k x n). */
export function buildPlaintextBytes(o: { parmsId: string; scale: number; words: BigUint64Array }): Uint8Array {
  const total = HEADER + PARMS_ID + 16 + HEADER + 8 + 8 * o.words.length;
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  sealHeader(dv, 0, total);
  let at = HEADER;
  writeParmsId(dv, at, o.parmsId);
  at += PARMS_ID;
  dv.setBigUint64(at, BigInt(o.words.length), true);
  dv.setFloat64(at + 8, o.scale, true);
  at += 16;
  sealHeader(dv, at, HEADER + 8 + 8 * o.words.length);
  dv.setBigUint64(at + HEADER, BigInt(o.words.length), true);
  out.set(new Uint8Array(o.words.buffer, o.words.byteOffset, o.words.byteLength), at + HEADER + 8);
  return out;
}

/** The coefficient words of a serialized plaintext (trusted: one SEAL itself just wrote). */
export function plaintextWords(bytes: Uint8Array): BigUint64Array {
  const r = new Reader(bytes, 0, bytes.length, 'plaintext');
  r.header();
  r.parmsId();
  r.u64();
  r.f64();
  const arrEnd = r.header();
  const count = r.u64();
  if (r.at + 8 * count !== arrEnd) fail('plaintext', 'length mismatch');
  return new BigUint64Array(bytes.slice(r.at, r.at + 8 * count).buffer);
}

/** The coefficient words of a ciphertext in coefficient form (one SEAL just transformed), checked. */
export function coefficientFormWords(bytes: Uint8Array, shape: SealShape): { level: number; words: BigUint64Array } {
  const info = readCiphertext(new Reader(bytes, 0, bytes.length, 'transformed ciphertext'), shape, true);
  return { level: info.level, words: new BigUint64Array(bytes.slice(info.dataOffset, info.dataOffset + 8 * info.words).buffer) };
}
