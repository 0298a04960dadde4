// The mask of a client-aided refresh, over the integers in the coefficient domain: one implementation
// for refreshes and KV-cache carries, on every backend.
//
// A ciphertext at level l and scale D decrypts to the integer polynomial m = D * encode(x) + e (mod
// Q_l = q_0 ... q_l). The evaluator adds r, coefficients uniform over the integers of [-W, W], and
// the key holder decrypts y = m + r exactly (CRT), lifts y to the target modulus and encrypts it; the
// evaluator subtracts r there. Per refreshed ciphertext:
// - coefficient bound B': every coefficient of m is at most the largest modulus of its canonical
//   embedding, since m_i = (1/N) sum_k sigma_k(m) zeta_k^-i with |zeta_k| = 1. The embedding holds
//   D times the complex slots (real parts x, |x| <= B; imaginary parts and CKKS noise, assumed below B
//   in modulus), so |m_i| <= 2 D B = B'.
// - hiding: for any admissible m, m', coefficient i of the key holder's view differs in statistical
//   distance |m_i - m'_i| / (2W + 1) < B' / W = 2^-k with W = 2^k B'; the N coefficients carry
//   independent masks, so a whole ciphertext is within N 2^-k: k - log2 N bits per ciphertext. The mask
//   floods e as well (Li-Micciancio): the key holder learns nothing about the evaluator's noise. The
//   evaluator also re-randomizes the ciphertext with a fresh public-key encryption of zero, so its
//   c1 (a function of the weights) is not shown either (that part is computational, RLWE).
// - fit: |y_i| <= W + B' must stay below Q_l / 4 (decryption exact, with room for the re-randomization
//   noise). k = target + log2 N when that fits; otherwise the largest k that does, and if that leaves
//   fewer than the minimum bits per ciphertext the refresh is refused, naming the refresh point and the
//   lowest level where it would fit (minRefreshLevel): the compiler must refresh there (or the parameter
//   search must widen the primes below).
// - overflow: a value within its bound never gives |y_i| > W + B'. The key holder stops the run when it
//   sees one. This catches gross overflow only (|m_i| near W): an out-of-bound value cannot be told
//   from an in-bound one more reliably than the hiding allows, but a value c times its bound is still
//   hidden to k - log2 N - log2 c bits per ciphertext.
// - precision: the key holder rounds once (scale change D -> target, if any) and the evaluator once:
//   at most 1 unit of the target scale per coefficient; the rest is the fresh encryption's error.

import { FhecError } from '../../ir/errors.js';
import type { CkksParameters } from '../../ir/ckks/params.js';

export interface MaskPolicy {
  /**
   * One bound B on |x| for every refresh point, declared by a caller that runs a hand-made program
   * (tests); plans carry a bound per point instead. There is no default: a refresh with no bound is refused.
   */
  valueBound?: number;
  /** Per-value bounds by the refreshed value's name (the refresh point), overriding valueBound. */
  bounds?: ReadonlyMap<string, number>;
  /** Hiding aimed at, in bits per ciphertext (the mask width is this plus log2 N). */
  hidingBits: number;
  /** Fewest bits per ciphertext accepted: a refresh where the modulus leaves less is refused. */
  minHidingBits: number;
  /** Random bytes; default: the operating system's CSPRNG. Tests inject a seeded source. */
  random?: (out: Uint8Array) => void;
  /** Told every mask the evaluator sends (for refresh audits: the point, its level, bound and hiding). */
  observe?: (point: string, level: number, bound: number, plan: MaskPlan) => void;
}

/** 40 bits of statistical hiding per refreshed ciphertext, aimed at and required (both sides). */
export const DEFAULT_HIDING_BITS = 40;

export const DEFAULT_MASK_POLICY: MaskPolicy = { hidingBits: DEFAULT_HIDING_BITS, minHidingBits: DEFAULT_HIDING_BITS };

export interface MaskPlan {
  /** B' = ceil(2 D B): bound on the message polynomial's coefficients. */
  coeffBound: bigint;
  /** k: W = 2^k B'. */
  maskBits: number;
  width: bigint;
  /** W + B': the largest |coefficient| the key holder may see. */
  limit: bigint;
  /** Statistical hiding, -log2 of the distance: k per coefficient, k - log2 N per ciphertext. */
  hidingBitsPerCoefficient: number;
  hidingBitsPerCiphertext: number;
}

export function bitLength(x: bigint): number {
  return x <= 0n ? 0 : x.toString(2).length;
}

export function modulusAt(params: CkksParameters, level: number): bigint {
  let q = 1n;
  for (let i = 0; i <= level; i++) q *= params.primes[i]!;
  return q;
}

/** log2 of q_0 ... q_level. */
export function modulusBitsAt(params: CkksParameters, level: number): number {
  let bits = 0;
  for (let i = 0; i <= level; i++) bits += Math.log2(Number(params.primes[i]!));
  return bits;
}

export function coefficientBound(scale: number, bound: number): bigint {
  const b = Math.ceil(2 * scale * bound);
  if (!Number.isFinite(b)) throw new FhecError(`refresh bound ${bound} at scale ${scale} is out of range`);
  return BigInt(Math.max(1, b));
}

/** Largest k with (2^k + 1) B' < Q_l / 4, or -1 if none. */
function maxMaskBits(params: CkksParameters, level: number, coeffBound: bigint): number {
  const room = (modulusAt(params, level) / 4n - 1n) / coeffBound - 1n;
  return room < 1n ? -1 : bitLength(room) - 1;
}

function where(point: string | undefined): { node?: string } {
  return point ? { node: `%${point}` } : {};
}

function checkBound(bound: number, point: string | undefined): void {
  if (!(bound > 0) || !Number.isFinite(bound)) throw new FhecError(`refresh value bound ${bound} is not a positive number`, where(point));
}

/**
 * The most hiding (bits per ciphertext) a mask for this scale and bound can give at `level`: what
 * planMask achieves there when the target is out of reach; -Infinity when the modulus leaves no room.
 */
export function achievableHidingBits(params: CkksParameters, level: number, scale: number, bound: number): number {
  const k = maxMaskBits(params, level, coefficientBound(scale, bound));
  return k < 0 ? -Infinity : k - Math.log2(params.ringDegree);
}

/** Lowest level whose modulus fits a mask hiding `bits` per ciphertext for this scale and bound, or -1. */
export function minRefreshLevel(params: CkksParameters, scale: number, bound: number, bits: number): number {
  const cb = coefficientBound(scale, bound);
  const need = bits + Math.log2(params.ringDegree);
  for (let l = 0; l < params.primes.length - 1; l++) if (maxMaskBits(params, l, cb) >= need) return l;
  return -1;
}

function planFor(params: CkksParameters, level: number, scale: number, bound: number, maskBits: number): MaskPlan {
  const coeffBound = coefficientBound(scale, bound);
  const width = coeffBound << BigInt(maskBits);
  const logN = Math.log2(params.ringDegree);
  return { coeffBound, maskBits, width, limit: width + coeffBound, hidingBitsPerCoefficient: maskBits, hidingBitsPerCiphertext: maskBits - logN };
}

function refuse(params: CkksParameters, level: number, scale: number, bound: number, minBits: number, point: string | undefined, got: number): never {
  const logN = Math.log2(params.ringDegree);
  const cb = coefficientBound(scale, bound);
  const lowest = minRefreshLevel(params, scale, bound, minBits);
  throw new FhecError(
    `refresh${point ? ` of ${point}` : ''} at level ${level} (scale 2^${Math.log2(scale).toFixed(1)}, bound ${bound}): ` +
      `hiding ${minBits} bits per ciphertext needs masked coefficients up to 2^${(Math.log2(Number(cb)) + minBits + logN).toFixed(1)}, ` +
      `and q_0..q_${level} (2^${modulusBitsAt(params, level).toFixed(1)}) leaves room for ${got < 0 ? 'no mask' : `${got} bits per ciphertext`}; ` +
      (lowest >= 0
        ? `the compiler must refresh this value at level ${lowest} or higher`
        : 'no level of this chain is wide enough: the parameter search must widen the primes') +
      ' (or the bound must be tightened)',
    where(point),
  );
}

/** The evaluator's mask for a ciphertext at `level` and scale `scale` whose slots are bounded by `bound`. */
export function planMask(params: CkksParameters, level: number, scale: number, bound: number, policy: Pick<MaskPolicy, 'hidingBits' | 'minHidingBits'>, point?: string): MaskPlan {
  checkBound(bound, point);
  const logN = Math.log2(params.ringDegree);
  const kMax = maxMaskBits(params, level, coefficientBound(scale, bound));
  const k = Math.min(Math.ceil(policy.hidingBits + logN), kMax);
  if (k - logN < policy.minHidingBits) refuse(params, level, scale, bound, policy.minHidingBits, point, kMax < 0 ? -1 : kMax - logN);
  return planFor(params, level, scale, bound, k);
}

/**
 * The key holder's check of a request's mask: it recomputes B' from the bound, refuses a mask that
 * hides less than its own minimum or that the modulus cannot carry, and returns the plan (with the
 * overflow limit W + B').
 */
export function checkRequestedMask(params: CkksParameters, level: number, scale: number, bound: number, maskBits: number, minHidingBits: number, point: string): MaskPlan {
  checkBound(bound, point);
  if (!Number.isInteger(maskBits) || maskBits < 0 || maskBits > 1024) throw new FhecError(`refresh request asks for a ${maskBits}-bit mask`, where(point));
  const logN = Math.log2(params.ringDegree);
  const kMax = maxMaskBits(params, level, coefficientBound(scale, bound));
  if (maskBits - logN < minHidingBits) {
    throw new FhecError(`refresh request masks with ${maskBits} bits (${maskBits - logN} per ciphertext); the key holder requires ${minHidingBits}`, where(point));
  }
  if (maskBits > kMax) refuse(params, level, scale, bound, maskBits - logN, point, kMax < 0 ? -1 : kMax - logN);
  return planFor(params, level, scale, bound, maskBits);
}

/** Hiding bits per ciphertext when the largest |x| observed is `observed` against bound `bound`. */
export function hidingBitsObserved(plan: Pick<MaskPlan, 'hidingBitsPerCiphertext'>, bound: number, observed: number): number {
  return plan.hidingBitsPerCiphertext - Math.max(0, Math.log2(observed / bound));
}

/** The scale change `to / from` as an exact fraction of integers (both are doubles). */
export interface Ratio {
  num: bigint;
  den: bigint;
}

/** x = mant * 2^exp exactly, from the IEEE-754 bits. */
function splitDouble(x: number): { mant: bigint; exp: number } {
  if (!(x > 0) || !Number.isFinite(x)) throw new FhecError(`scale ${x} is not a positive number`);
  const dv = new DataView(new ArrayBuffer(8));
  dv.setFloat64(0, x);
  const bits = dv.getBigUint64(0);
  const biased = Number((bits >> 52n) & 0x7ffn);
  const frac = bits & ((1n << 52n) - 1n);
  return biased === 0 ? { mant: frac, exp: -1074 } : { mant: frac | (1n << 52n), exp: biased - 1075 };
}

/** The word arithmetic of the scale change (integer-mask.ts) takes denominators below this. */
const WORD_DENOMINATOR = 1n << 62n;

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

/**
 * The scale change to / from as a fraction in lowest terms, exact when its denominator is below 2^62
 * (every change between canonical scales, and products refreshed unrescaled: 2^40 / 2^80 = 1 / 2^40).
 * Otherwise (a folded factor on a large scale change) the closest fraction whose denominator is below
 * 2^62, the last convergent of its continued fraction: within 1 / (den 2^62) of the exact ratio,
 * checked to be within 2^-60 of it relatively. Both sides of a refresh use this one function, so the
 * mask still comes off exactly; the message is scaled by the fraction, which moves the value by far
 * less than the double scales themselves can say.
 */
export function scaleRatio(to: number, from: number): Ratio {
  const a = splitDouble(to);
  const b = splitDouble(from);
  const d = a.exp - b.exp;
  let num = d >= 0 ? a.mant << BigInt(d) : a.mant;
  let den = d >= 0 ? b.mant : b.mant << BigInt(-d);
  const g = gcd(num, den);
  num /= g;
  den /= g;
  if (den < WORD_DENOMINATOR) return { num, den };
  // Convergents p/q of num/den until q would reach 2^62.
  let [p0, q0, p1, q1] = [0n, 1n, 1n, 0n];
  let [x, y] = [num, den];
  while (y !== 0n) {
    const t = x / y;
    const q2 = t * q1 + q0;
    if (q2 >= WORD_DENOMINATOR) break;
    [p0, q0, p1, q1] = [p1, q1, t * p1 + p0, q2];
    [x, y] = [y, x - t * y];
  }
  // |num/den - p1/q1| relative to num/den: |num q1 - p1 den| / (num q1).
  const off = num * q1 - p1 * den;
  if (p1 === 0n || (off < 0n ? -off : off) * (1n << 60n) > num * q1) {
    throw new FhecError(`the scale change ${to} / ${from} has no fraction with a denominator below 2^62 within 2^-60 of it`);
  }
  return { num: p1, den: q1 };
}

/** round(x * num / den), halves away from zero: the same on both sides of the protocol. */
export function roundScaled(x: bigint, r: Ratio): bigint {
  if (r.num === r.den) return x;
  const t = x * r.num;
  const neg = t < 0n;
  const a = neg ? -t : t;
  const q = (2n * a + r.den) / (2n * r.den);
  return neg ? -q : q;
}
