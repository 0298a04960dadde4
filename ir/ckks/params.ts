// The CKKS parameter model shared by both backends: ring degree, modulus chain (the exact primes SEAL
// will generate), top scale, security check, and the byte cost of key-switching keys.

import { FhecError } from '../errors.js';
import type { FheChain, FheProgram } from '../fhe/types.js';
import { coeffModulusPrimes } from './primes.js';
import { isSecure128, maxModulusBits, RING_DEGREES } from './security.js';

export interface CkksParameters {
  /** Ring degree N (slots = N/2). */
  ringDegree: number;
  /** Bit sizes as given to CoeffModulus.Create: data primes q_0..q_L, then the special prime. */
  bitSizes: number[];
  /** The primes, same order. */
  primes: bigint[];
  /** Scale of fresh ciphertexts at the top level. */
  scale: number;
  /** Set only when the parameters are deliberately below 128-bit security. */
  insecure?: boolean;
}

export interface ParameterRequest {
  /** Multiplicative depth (number of rescales) the circuit needs. */
  depth: number;
  /** log2 of the scale (precision of each level); default 40. */
  scaleBits?: number;
  /** Bits for the integer part of the values at the last level; default 20. */
  integerBits?: number;
  /** Fewest slots the packing needs. */
  minSlots?: number;
  /** Force a ring degree (it still has to be secure unless `insecure`). */
  ringDegree?: number;
  insecure?: boolean;
  /** A chain for a program with client-aided refreshes: q_1 is a floor prime (chainBitSizes). */
  floorPrime?: boolean;
}

/**
 * Size of the floor prime q_1 of a chain for a program with client-aided refreshes. Such a program
 * never computes at level 0: a refresh mask hides a value with 40 bits to spare per ciphertext, which
 * needs log2(2 Delta B) + 40 + log2 N + 2 bits of modulus (about 98 for B = 4 at N=16384), more than
 * the first prime alone holds, and the refresh floors (and the default floor, 1) keep every value at
 * level 1 or above. So nothing is ever rescaled by q_1, which can then be as large as SEAL allows
 * instead of the scale: level 1 holds 120 bits, every mask of a value up to about 2^20 fits there, and
 * values refresh at level 1 instead of 2, one more level of work between refreshes for the same
 * number of primes (each prime costs the same in SEAL, 40 or 60 bits: one 64-bit word per coefficient).
 */
export const FLOOR_PRIME_BITS = 60;

/**
 * The chain [first, scale bits x levels, special]; with `floorPrime` at ring degree N, at least 2
 * levels and room in N's 128-bit budget, the second prime is the floor prime (FLOOR_PRIME_BITS):
 * [first, 60, scale bits x (levels - 1), special]. Where the 20 more bits break the budget (N=8192
 * at 2 levels) the plain chain stays: one level less of mask room beats no second level at all.
 */
export function chainBitSizes(first: number, scaleBits: number, levels: number, special: number, floorPrime?: { ringDegree: number; insecure?: boolean }): number[] {
  const data = new Array<number>(levels).fill(scaleBits);
  const plain = [first, ...data, special];
  if (!floorPrime || levels < 2) return plain;
  data[0] = Math.max(scaleBits, FLOOR_PRIME_BITS);
  const floored = [first, ...data, special];
  return floorPrime.insecure || isSecure128(floorPrime.ringDegree, totalModulusBits({ bitSizes: floored })) ? floored : plain;
}

/**
 * The lowest level a program may compute at on these parameters: 1 when q_1 is a floor prime (a
 * rescale into level 0 would divide by it and leave a scale of about Delta^2 / 2^60), else 0.
 */
export function lowestComputeLevel(p: CkksParameters): number {
  return p.bitSizes.length >= 4 && p.bitSizes[1]! > Math.round(Math.log2(p.scale)) ? 1 : 0;
}

export function slotsOf(p: CkksParameters): number {
  return p.ringDegree / 2;
}

export function totalModulusBits(p: Pick<CkksParameters, 'bitSizes'>): number {
  return p.bitSizes.reduce((a, b) => a + b, 0);
}

export function topLevel(p: CkksParameters): number {
  return p.bitSizes.length - 2;
}

/** The FHE IR's view of the chain: the data primes only. */
export function fheChain(p: CkksParameters): FheChain {
  return { ringDegree: p.ringDegree, primes: p.primes.slice(0, -1) };
}

/** The program must be managed (`unmanaged` says what then) and typed for exactly these parameters' data primes. */
export function checkProgramChain(program: FheProgram, params: CkksParameters, unmanaged: string): void {
  const chain = program.chain;
  if (!chain) throw new FhecError(unmanaged);
  const data = params.primes.slice(0, -1);
  if (chain.ringDegree !== params.ringDegree || chain.primes.length !== data.length || chain.primes.some((q, i) => q !== data[i])) {
    throw new FhecError('program was typed for another modulus chain than these parameters');
  }
}

/** Builds (and checks) parameters from an explicit chain. */
export function makeParameters(spec: { ringDegree: number; bitSizes: number[]; scale?: number; insecure?: boolean }): CkksParameters {
  const { ringDegree, bitSizes } = spec;
  if (!(RING_DEGREES as readonly number[]).includes(ringDegree)) {
    throw new FhecError(`ring degree ${ringDegree} is not one of ${RING_DEGREES.join(', ')}`);
  }
  if (bitSizes.length < 2) throw new FhecError('the modulus chain needs at least one data prime and the special prime');
  for (const b of bitSizes) {
    if (!Number.isInteger(b) || b < 17 || b > 60) throw new FhecError(`prime size ${b} bits is outside 17..60`);
  }
  const scale = spec.scale ?? 2 ** Math.min(40, bitSizes[0]! - 1);
  const params: CkksParameters = { ringDegree, bitSizes: [...bitSizes], primes: coeffModulusPrimes(ringDegree, bitSizes), scale };
  if (spec.insecure) params.insecure = true;
  checkSecurity(params);
  return params;
}

/** Throws unless the parameters meet 128-bit security or carry the explicit insecure flag. */
export function checkSecurity(p: CkksParameters, file?: string): void {
  const bits = totalModulusBits(p);
  if (!isSecure128(p.ringDegree, bits) && !p.insecure) {
    throw new FhecError(
      `parameters break 128-bit security: ${bits} modulus bits at N=${p.ringDegree} (the tc128 limit is ${maxModulusBits(p.ringDegree) ?? 'undefined'}); ` +
        'pass the insecure flag to run them anyway',
      file ? { file } : {},
    );
  }
}

/** Loud one-line warning for insecure parameters (printed by whoever loads them). */
export function securityBanner(p: CkksParameters): string | undefined {
  if (isSecure128(p.ringDegree, totalModulusBits(p))) return undefined;
  return `*** INSECURE PARAMETERS: ${totalModulusBits(p)} modulus bits at N=${p.ringDegree} exceed the 128-bit limit of ${maxModulusBits(p.ringDegree)} bits. NOT SECURE. ***`;
}

/**
 * Smallest ring degree whose tc128 budget holds the chain the depth needs:
 * [scale + integer bits] + depth x [scale bits] + [special prime as large as the first] (with
 * `floorPrime`, the second prime is the floor prime: chainBitSizes).
 */
export function selectParameters(req: ParameterRequest): CkksParameters {
  const scaleBits = req.scaleBits ?? 40;
  const integerBits = req.integerBits ?? 20;
  if (!Number.isInteger(req.depth) || req.depth < 0) throw new FhecError(`bad circuit depth ${req.depth}`);
  const first = Math.min(60, scaleBits + integerBits);
  const special = Math.max(first, scaleBits);
  const candidates = req.ringDegree ? [req.ringDegree] : RING_DEGREES.filter((n) => n >= 4096);
  let total = 0;
  for (const n of candidates) {
    const bitSizes = chainBitSizes(first, scaleBits, req.depth, special, req.floorPrime ? { ringDegree: n, insecure: req.insecure } : undefined);
    total = totalModulusBits({ bitSizes });
    if (req.minSlots && n / 2 < req.minSlots) continue;
    if (isSecure128(n, total) || req.insecure) {
      return makeParameters({ ringDegree: n, bitSizes, scale: 2 ** scaleBits, insecure: !isSecure128(n, total) || undefined });
    }
  }
  throw new FhecError(
    `no ring degree up to 32768 holds depth ${req.depth} at ${scaleBits}-bit scale within 128-bit security (${total} modulus bits needed)`,
  );
}

/**
 * Bytes of one key-switching key (one Galois key, or the relinearization key) as SEAL holds it:
 * (data primes) x 2 x (all primes) x N x 8.
 */
export function keySwitchKeyBytes(p: CkksParameters): number {
  return keySwitchKeyBytesFor(p.ringDegree, p.primes.length);
}

/** The same from the ring degree and the number of primes, the special prime included. */
export function keySwitchKeyBytesFor(ringDegree: number, primeCount: number): number {
  return (primeCount - 1) * 2 * primeCount * ringDegree * 8;
}

/** Bytes of a Galois key set with `keyCount` keys, plus the relinearization key if asked for. */
export function keySetBytes(p: CkksParameters, keyCount: number, relin = true): number {
  return (keyCount + (relin ? 1 : 0)) * keySwitchKeyBytes(p);
}

/** A short fingerprint of the parameters; keys and ciphertexts carry it so mixing contexts is caught. */
export function parametersId(p: CkksParameters): string {
  const text = `${p.ringDegree}|${p.primes.join(',')}`;
  let h = 0xcbf29ce484222325n;
  for (let i = 0; i < text.length; i++) h = ((h ^ BigInt(text.charCodeAt(i))) * 0x100000001b3n) & 0xffffffffffffffffn;
  return `N${p.ringDegree}-L${topLevel(p)}-${h.toString(16).padStart(16, '0')}`;
}

export function describeParameters(p: CkksParameters): string {
  return `N=${p.ringDegree} slots=${slotsOf(p)} chain=[${p.bitSizes.join(', ')}] (${totalModulusBits(p)} bits, ` +
    `tc128 limit ${maxModulusBits(p.ringDegree)}) levels=${topLevel(p)} scale=2^${Math.log2(p.scale).toFixed(2)}` +
    (p.insecure ? ' INSECURE' : '');
}
