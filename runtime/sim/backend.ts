// The CKKS simulator: the same plan executed on float64 slot vectors with CKKS semantics. It enforces
// SEAL's rules (levels, scales, sizes, keys, scale bounds), injects the modelled encoding, encryption,
// rescaling and key-switching errors (ir/ckks/noise.ts), and carries a noise-free twin of every
// value, so the error it predicts (noisy - noise-free) includes how errors correlate and grow through
// the circuit. Nothing is encrypted: every output of this backend is labelled as a simulation.

import { SeededGaussian } from '../../ir/random.js';
import { FhecError } from '../../ir/errors.js';
import { scalesClose } from '../../ir/fhe/types.js';
import { rotateSlots } from '../../ir/fhe/plain-eval.js';
import type { BackendName, CkksBackend, CkksClient, CkksEvaluator, CkksHandle, EvaluationKeys, ExactRefreshItem, ExactRefreshTarget, IntegerPolynomial, IntegerPolynomialItem, KeyRequest } from '../backend.js';
import { encodeVariance, freshVariance, keySwitchVariance, levelEncryptionVariance, rescaleVariance, symmetricFreshVariance } from '../../ir/ckks/noise.js';
import { checkSecurity, parametersId, slotsOf, topLevel, type CkksParameters } from '../../ir/ckks/params.js';
import { normalizeStep, decomposeRotation } from '../../ir/ckks/rotation-keys.js';
import { checkKeysMatch, unwrapCiphertext, wrapCiphertext } from '../ckks/wire.js';
import { checkRequestedMask, hidingBitsObserved, scaleRatio } from '../refresh/mask.js';
import { addResidues, firstNonResidue, liftResidues } from '../refresh/rns.js';

const BACKEND: BackendName = 'sim';
export const SIMULATION_LABEL = 'SIMULATION: backend sim models CKKS in float64; nothing is encrypted';

class SimCiphertext implements CkksHandle {
  readonly backend = BACKEND;
  constructor(
    readonly values: Float64Array,
    /** The same value computed without any CKKS error. */
    readonly ideal: Float64Array,
    readonly level: number,
    readonly scale: number,
    readonly size: number,
    /**
     * An integer polynomial added in the coefficient domain (a refresh mask) and not yet removed, as
     * SEAL holds it: residues modulo the primes of the ciphertext's level, prime-major. The simulator
     * keeps it beside the slot values instead of adding its canonical embedding to them.
     */
    readonly offset?: BigUint64Array,
  ) {}
}

/** a + sign b, slot by slot (one loop per op: a callback per slot was most of an add's time). */
function addScaled(a: Float64Array, b: Float64Array, sign: 1 | -1): Float64Array {
  const r = new Float64Array(a.length);
  if (sign === 1) for (let i = 0; i < r.length; i++) r[i] = a[i]! + b[i]!;
  else for (let i = 0; i < r.length; i++) r[i] = a[i]! - b[i]!;
  return r;
}

function scaled(a: Float64Array, c: number): Float64Array {
  const r = new Float64Array(a.length);
  for (let i = 0; i < r.length; i++) r[i] = c * a[i]!;
  return r;
}

function isZero(words: BigUint64Array): boolean {
  const halves = new Uint32Array(words.buffer, words.byteOffset, 2 * words.length);
  for (let i = 0; i < halves.length; i++) if (halves[i] !== 0) return false;
  return true;
}

class SimPlaintext implements CkksHandle {
  readonly backend = BACKEND;
  constructor(
    readonly values: Float64Array,
    readonly ideal: Float64Array,
    readonly level: number,
    readonly scale: number,
  ) {}
}

/** The simulator's shared CKKS model: parameter facts and SEAL's checks. */
class SimModel {
  readonly slots: number;
  readonly id: string;
  private readonly levelLog2Q: number[] = [];
  private readonly levelBits: number[] = [];
  constructor(
    readonly params: CkksParameters,
    readonly noise: SeededGaussian,
  ) {
    checkSecurity(params);
    this.slots = slotsOf(params);
    this.id = parametersId(params);
    let q = 1n;
    for (let l = 0; l <= topLevel(params); l++) {
      q *= params.primes[l]!;
      this.levelBits[l] = q.toString(2).length;
      const bits = q.toString(2).length;
      const shift = Math.max(0, bits - 53);
      this.levelLog2Q[l] = Math.log2(Number(q >> BigInt(shift))) + shift;
    }
  }

  checkLevel(level: number): void {
    if (!Number.isInteger(level) || level < 0 || level > topLevel(this.params)) {
      throw new FhecError(`level ${level} is outside 0..${topLevel(this.params)}`);
    }
  }

  checkProductScale(what: string, scale: number, level: number): void {
    if (!(scale > 0) || Math.floor(Math.log2(scale)) >= this.levelBits[level]!) throw new FhecError(`sim ${what} failed: scale out of bounds`);
  }

  checkEncodeScale(scale: number): void {
    if (!(scale > 0) || Math.floor(Math.log2(scale)) + 1 >= this.levelBits[topLevel(this.params)]!) {
      throw new FhecError('sim encode failed: scale out of bounds');
    }
  }

  /** Adds N(0, v) to each slot. */
  inject(values: Float64Array, v: number): void {
    this.noise.addTo(values, Math.sqrt(v));
  }

  /** SEAL would silently decrypt garbage once |value| * scale reaches half the modulus; the simulator says so. */
  checkRange(what: string, values: Float64Array, level: number, scale: number): void {
    let m = 0;
    for (const v of values) m = Math.max(m, Math.abs(v));
    if (m > 0 && Math.log2(m) + Math.log2(scale) >= this.levelLog2Q[level]! - 1) {
      throw new FhecError(`sim ${what}: value ${m.toExponential(3)} at scale 2^${Math.log2(scale).toFixed(1)} overflows the modulus at level ${level}`);
    }
  }

  /** q_0..q_level. */
  levelPrimes(level: number): bigint[] {
    return this.params.primes.slice(0, level + 1);
  }

  padded(values: ArrayLike<number>): Float64Array {
    if (values.length > this.slots) throw new FhecError(`${values.length} values do not fit ${this.slots} slots`);
    const out = new Float64Array(this.slots);
    out.set(values instanceof Float64Array ? values : Float64Array.from(values));
    return out;
  }

  serialize(ct: SimCiphertext): Uint8Array {
    const n = this.slots;
    const offset = ct.offset ? new Uint8Array(ct.offset.buffer, ct.offset.byteOffset, ct.offset.byteLength) : new Uint8Array(0);
    const buf = new ArrayBuffer(16 + 16 * n + offset.length);
    const dv = new DataView(buf);
    dv.setUint32(0, ct.level, true);
    dv.setUint32(4, ct.size, true);
    dv.setFloat64(8, ct.scale, true);
    new Float64Array(buf, 16, n).set(ct.values);
    new Float64Array(buf, 16 + 8 * n, n).set(ct.ideal);
    new Uint8Array(buf, 16 + 16 * n).set(offset);
    return wrapCiphertext(BACKEND, this.id, new Uint8Array(buf));
  }

  deserialize(bytes: Uint8Array): SimCiphertext {
    const payload = unwrapCiphertext(bytes, BACKEND, this.id);
    const n = this.slots;
    if (payload.length < 16 + 16 * n) throw new FhecError('sim ciphertext has the wrong length for these parameters');
    const copy = payload.slice().buffer;
    const dv = new DataView(copy);
    const level = dv.getUint32(0, true);
    this.checkLevel(level);
    let offset: BigUint64Array | undefined;
    if (payload.length > 16 + 16 * n) {
      const primes = this.levelPrimes(level);
      const count = primes.length * this.params.ringDegree;
      if (payload.length !== 16 + 16 * n + 8 * count) throw new FhecError(`sim ciphertext carries an integer polynomial of the wrong size (${payload.length - 16 - 16 * n} bytes, ${8 * count} at level ${level})`);
      offset = new BigUint64Array(copy, 16 + 16 * n, count);
      if (firstNonResidue(payload.subarray(16 + 16 * n), primes, this.params.ringDegree)) throw new FhecError('sim ciphertext carries a malformed integer polynomial (a residue not below its prime)');
    }
    const scale = dv.getFloat64(8, true);
    const size = dv.getUint32(4, true);
    if (!(scale > 0) || !Number.isFinite(scale) || (size !== 2 && size !== 3)) throw new FhecError('sim ciphertext has a malformed header');
    return new SimCiphertext(new Float64Array(copy, 16, n).slice(), new Float64Array(copy, 16 + 8 * n, n).slice(), level, scale, size, offset);
  }
}

/** What the simulated key holder saw at a refresh: the value's peak against its bound, and the hiding. */
export interface SimRefreshObservation {
  point: string;
  level: number;
  bound: number;
  /** Largest |x| (noise-free) of the refreshed value. */
  observed: number;
  maskBits: number;
  /** What SEAL's mask hides for this value, bits per ciphertext (runtime/refresh/mask.ts). */
  hidingBitsPerCiphertext: number;
}

export class SimClient implements CkksClient {
  readonly backend = BACKEND;
  private readonly model: SimModel;
  /** The last refresh's observation (for refresh audits). */
  lastRefresh?: SimRefreshObservation;
  constructor(
    readonly params: CkksParameters,
    private readonly keys: KeyRequest,
    seed: number,
  ) {
    this.model = new SimModel(params, new SeededGaussian(seed));
  }

  evaluationKeys(): EvaluationKeys {
    const slots = this.model.slots;
    const steps = [...new Set(this.keys.galoisSteps.map((s) => normalizeStep(s, slots)).filter((s) => s !== 0))];
    const out: EvaluationKeys = { backend: BACKEND, parametersId: this.model.id, publicKey: new Uint8Array(0), galoisSteps: steps };
    if (this.keys.relin) {
      out.relinKeys = new Uint8Array(0);
      out.productKey = new Uint8Array(0);
    }
    if (steps.length > 0) out.galoisKeys = new Uint8Array(0);
    return out;
  }

  encrypt(values: ArrayLike<number>, level: number, scale: number): Uint8Array {
    const m = this.model;
    m.checkLevel(level);
    m.checkEncodeScale(scale);
    const v = m.padded(values);
    const ideal = v.slice();
    m.checkRange('encrypt', v, level, scale);
    m.inject(v, freshVariance(this.params.ringDegree, scale));
    return m.serialize(new SimCiphertext(v, ideal, level, scale, 2));
  }

  decrypt(bytes: Uint8Array): Float64Array {
    const ct = this.model.deserialize(bytes);
    this.model.checkRange('decrypt', ct.values, ct.level, ct.scale);
    return ct.values;
  }

  /**
   * The key holder's half of a coefficient-masked refresh, in the simulator's terms. The mask is the
   * same integer polynomial as on SEAL, kept beside the slot values; the key holder checks the
   * request's mask exactly as SEAL's does and passes the mask through the scale change with the same
   * rounding, so the evaluator's unmask cancels it exactly. The values get a fresh secret-key
   * encryption's error (the coefficient path has no float64 rounding at the masked size). Overflow:
   * the simulator knows the values, so it stops on any |x| beyond the bound (SEAL's key holder, which
   * sees only masked coefficients, catches gross overflow only).
   * The last refresh's observation is kept for audits (`lastRefresh`).
   */
  refreshExact(items: ExactRefreshItem[]): Uint8Array[] {
    // Its evaluator has no rotatePlaintext, so it never asks; a request that does is refused whole.
    const rotated = items.find((it) => (it.target.rotations?.length ?? 0) > 0);
    if (rotated) throw new FhecError(`refresh of ${rotated.target.point} asks for rotated copies, which the simulator's key holder does not make`, { node: `%${rotated.target.point}` });
    return items.map((it) => this.refreshOne(it.ciphertext, it.target));
  }

  private refreshOne(bytes: Uint8Array, t: ExactRefreshTarget): Uint8Array {
    const m = this.model;
    const ct = m.deserialize(bytes);
    if (!ct.offset) throw new FhecError(`refresh request ciphertext (${t.point}) carries no mask`);
    const plan = checkRequestedMask(this.params, ct.level, ct.scale, t.bound, t.maskBits, t.minHidingBits, t.point);
    m.checkRange('decrypt', ct.values, ct.level, ct.scale);
    m.checkLevel(t.level);
    m.checkEncodeScale(t.scale);
    // The bound is on the value itself (the noise-free twin); the noisy slots must stay within the
    // 2B that the coefficient bound B' = 2 D B assumes.
    let peak = 0;
    let noisy = 0;
    for (let i = 0; i < ct.values.length; i++) {
      peak = Math.max(peak, Math.abs(ct.ideal[i]!));
      noisy = Math.max(noisy, Math.abs(ct.values[i]!));
    }
    if (peak > t.bound || noisy > 2 * t.bound) {
      throw new FhecError(
        `refresh of ${t.point}: |x| reached ${Math.max(peak, noisy / 2).toPrecision(4)}, beyond its bound ${t.bound} (input unlike the calibration data); the key holder stops the run`,
        { node: `%${t.point}` },
      );
    }
    this.lastRefresh = { point: t.point, level: ct.level, bound: t.bound, observed: peak, maskBits: plan.maskBits, hidingBitsPerCiphertext: hidingBitsObserved(plan, t.bound, peak) };
    const v = ct.values.slice();
    m.checkRange('encrypt', v, t.level, t.scale);
    m.inject(v, symmetricFreshVariance(this.params.ringDegree, t.scale));
    // The mask through the scale change, as SEAL's key holder does it: the integers from their residues,
    // checked against the mask's limit, rounded at the new scale, as residues of the target level.
    const lift = liftResidues(ct.offset, m.levelPrimes(ct.level), m.levelPrimes(t.level), this.params.ringDegree, scaleRatio(t.scale, ct.scale), plan.limit);
    if (lift.overflow !== undefined) throw new FhecError(`refresh of ${t.point}: the mask reached 2^${Math.log2(Number(lift.overflow)).toFixed(1)}, beyond its limit 2^${Math.log2(Number(plan.limit)).toFixed(1)}`, { node: `%${t.point}` });
    return m.serialize(new SimCiphertext(v, ct.ideal.slice(), t.level, t.scale, 2, lift.residues));
  }

  inspect(bytes: Uint8Array): { level: number; scale: number; size: number } {
    const ct = this.model.deserialize(bytes);
    return { level: ct.level, scale: ct.scale, size: ct.size };
  }

  /** The simulated CKKS error of each slot (noisy minus noise-free value). */
  predictedError(bytes: Uint8Array): Float64Array {
    const ct = this.model.deserialize(bytes);
    return ct.values.map((v, i) => Math.abs(v - ct.ideal[i]!));
  }

  dispose(): void {}
}

export class SimEvaluator implements CkksEvaluator {
  readonly backend = BACKEND;
  readonly simulated = true;
  private readonly model: SimModel;
  private readonly galoisSteps: Set<number>;
  private readonly hasRelin: boolean;
  private readonly hasProductKey: boolean;
  private readonly special: bigint;

  constructor(
    readonly params: CkksParameters,
    keys: EvaluationKeys,
    seed: number,
  ) {
    this.model = new SimModel(params, new SeededGaussian(seed));
    checkKeysMatch(keys, BACKEND, this.model.id);
    this.galoisSteps = new Set(keys.galoisSteps);
    this.hasRelin = keys.relinKeys !== undefined;
    this.hasProductKey = keys.productKey !== undefined;
    this.special = params.primes[params.primes.length - 1]!;
  }

  private ct(h: CkksHandle): SimCiphertext {
    const c = this.anyCt(h);
    if (c.offset) throw new FhecError('sim: this ciphertext still carries a refresh mask; only the key holder round trip may use it');
    return c;
  }
  private anyCt(h: CkksHandle): SimCiphertext {
    if (!(h instanceof SimCiphertext)) throw new FhecError('expected a sim ciphertext');
    return h;
  }
  private pt(h: CkksHandle): SimPlaintext {
    if (!(h instanceof SimPlaintext)) throw new FhecError('expected a sim plaintext');
    return h;
  }

  private sameParams(what: string, a: { level: number }, b: { level: number }): void {
    if (a.level !== b.level) throw new FhecError(`sim ${what} failed: operands at levels ${a.level} and ${b.level} (parameter mismatch)`);
  }
  private sameScale(what: string, a: { scale: number }, b: { scale: number }): void {
    if (!scalesClose(a.scale, b.scale)) throw new FhecError(`sim ${what} failed: scale mismatch (${a.scale} vs ${b.scale})`);
  }

  private keySwitchNoise(values: Float64Array, level: number, scale: number): void {
    const v = keySwitchVariance(this.params.ringDegree, this.params.primes.slice(0, level + 1), this.special, scale);
    this.model.inject(values, v);
  }

  loadCiphertext(bytes: Uint8Array): CkksHandle {
    return this.model.deserialize(bytes);
  }
  saveCiphertext(h: CkksHandle): Uint8Array {
    return this.model.serialize(this.anyCt(h));
  }

  addIntegerPolynomials(items: IntegerPolynomialItem[]): CkksHandle[] {
    return items.map((it) => this.addIntegerPolynomial(it.ct, it.poly, it.rerandomize));
  }

  /** The polynomial joins the ciphertext's pending offset; a zero offset is dropped (the mask came off). */
  private addIntegerPolynomial(h: CkksHandle, poly: IntegerPolynomial, rerandomize = false): CkksHandle {
    const a = this.anyCt(h);
    const n = this.params.ringDegree;
    if (poly.n !== n) throw new FhecError(`integer polynomial of ${poly.n} coefficients, the ring has ${n}`);
    const primes = this.model.levelPrimes(a.level);
    const residues = poly.residues(primes);
    const sum = a.offset ? addResidues(a.offset, residues, primes, n) : residues;
    const v = a.values.slice();
    // SEAL's mask of a size-3 product is a size-3 encryption with the product key (its e_2 s^2 too).
    if (rerandomize && a.size === 3 && !this.hasProductKey) throw new FhecError('a size-3 encryption (the mask of an unrelinearized product) needs the client\'s product key, and none was given');
    if (rerandomize) this.model.inject(v, levelEncryptionVariance(n, a.scale, a.size));
    return new SimCiphertext(v, a.ideal.slice(), a.level, a.scale, a.size, isZero(sum) ? undefined : sum);
  }

  encode(values: Float64Array, level: number, scale: number): CkksHandle {
    this.model.checkLevel(level);
    this.model.checkEncodeScale(scale);
    const ideal = this.model.padded(values);
    // Encoding rounds each coefficient: the plaintext's error, carried into products.
    const v = ideal.slice();
    this.model.inject(v, encodeVariance(this.params.ringDegree, scale));
    return new SimPlaintext(v, ideal, level, scale);
  }

  private binary(what: string, a: SimCiphertext, b: SimCiphertext, sign: 1 | -1): SimCiphertext {
    this.sameParams(what, a, b);
    this.sameScale(what, a, b);
    return new SimCiphertext(addScaled(a.values, b.values, sign), addScaled(a.ideal, b.ideal, sign), a.level, a.scale, Math.max(a.size, b.size));
  }

  add(a: CkksHandle, b: CkksHandle): CkksHandle {
    return this.binary('add', this.ct(a), this.ct(b), 1);
  }
  sub(a: CkksHandle, b: CkksHandle): CkksHandle {
    return this.binary('sub', this.ct(a), this.ct(b), -1);
  }
  negate(h: CkksHandle): CkksHandle {
    const a = this.ct(h);
    return new SimCiphertext(scaled(a.values, -1), scaled(a.ideal, -1), a.level, a.scale, a.size);
  }
  addPlain(h: CkksHandle, ph: CkksHandle): CkksHandle {
    const a = this.ct(h);
    const p = this.pt(ph);
    this.sameParams('add_plain', a, p);
    this.sameScale('add_plain', a, p);
    return new SimCiphertext(addScaled(a.values, p.values, 1), addScaled(a.ideal, p.ideal, 1), a.level, a.scale, a.size);
  }
  mulPlain(h: CkksHandle, ph: CkksHandle): CkksHandle {
    const a = this.ct(h);
    const p = this.pt(ph);
    this.sameParams('mul_plain', a, p);
    const scale = a.scale * p.scale;
    this.model.checkProductScale('mul_plain', scale, a.level);
    const n = this.model.slots;
    const v = new Float64Array(n);
    const e = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      v[i] = a.values[i]! * p.values[i]!;
      e[i] = a.ideal[i]! * p.ideal[i]!;
    }
    return new SimCiphertext(v, e, a.level, scale, a.size);
  }
  mul(ha: CkksHandle, hb: CkksHandle): CkksHandle {
    const a = this.ct(ha);
    const b = this.ct(hb);
    this.sameParams('mul', a, b);
    const scale = a.scale * b.scale;
    this.model.checkProductScale('mul', scale, a.level);
    const n = this.model.slots;
    const v = new Float64Array(n);
    const e = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      v[i] = a.values[i]! * b.values[i]!;
      e[i] = a.ideal[i]! * b.ideal[i]!;
    }
    return new SimCiphertext(v, e, a.level, scale, a.size + b.size - 1);
  }
  relinearize(h: CkksHandle): CkksHandle {
    const a = this.ct(h);
    if (!this.hasRelin) throw new FhecError('relinearize needs relinearization keys, and none were given');
    if (a.size !== 3) throw new FhecError(`sim relinearize failed: ciphertext size ${a.size}, expected 3`);
    const v = a.values.slice();
    this.keySwitchNoise(v, a.level, a.scale);
    return new SimCiphertext(v, a.ideal.slice(), a.level, a.scale, 2);
  }
  rescale(h: CkksHandle): CkksHandle {
    const a = this.ct(h);
    if (a.level < 1) throw new FhecError('sim rescale failed: end of modulus switching chain reached');
    const scale = a.scale / Number(this.params.primes[a.level]!);
    const v = a.values.slice();
    this.model.inject(v, rescaleVariance(this.params.ringDegree, scale, a.size));
    this.model.checkRange('rescale', v, a.level - 1, scale);
    return new SimCiphertext(v, a.ideal.slice(), a.level - 1, scale, a.size);
  }
  withScale(h: CkksHandle, scale: number): CkksHandle {
    const a = this.ct(h);
    if (!(scale > 0 && Number.isFinite(scale))) throw new FhecError(`cannot declare a ciphertext at scale ${scale}`);
    // The integer polynomial stays (and any integer offset with it); the slot values it stands for scale.
    const f = a.scale / scale;
    return new SimCiphertext(scaled(a.values, f), scaled(a.ideal, f), a.level, scale, a.size, a.offset?.slice());
  }
  modSwitch(h: CkksHandle): CkksHandle {
    const a = this.ct(h);
    if (a.level < 1) throw new FhecError('sim mod_switch failed: end of modulus switching chain reached');
    this.model.checkRange('mod_switch', a.values, a.level - 1, a.scale);
    return new SimCiphertext(a.values.slice(), a.ideal.slice(), a.level - 1, a.scale, a.size);
  }

  /** Same decomposition as the SEAL backend, so a missing key fails the same way. */
  keyStepsFor(step: number): number[] {
    return decomposeRotation(step, this.model.slots, this.galoisSteps);
  }

  rotate(h: CkksHandle, step: number): CkksHandle {
    const a = this.ct(h);
    if (a.size !== 2) throw new FhecError(`sim rotate failed: ciphertext size ${a.size}, expected 2`);
    let v = a.values;
    let e = a.ideal;
    for (const k of this.keyStepsFor(step)) {
      const nv = rotateSlots(v, k);
      const ne = rotateSlots(e, k);
      this.keySwitchNoise(nv, a.level, a.scale);
      v = nv;
      e = ne;
    }
    return new SimCiphertext(v === a.values ? v.slice() : v, e === a.ideal ? e.slice() : e, a.level, a.scale, 2);
  }

  levelOf(h: CkksHandle): number {
    return this.anyCt(h).level;
  }
  simulatedValues(h: CkksHandle): Float64Array {
    return this.ct(h).values;
  }
  scaleOf(h: CkksHandle): number {
    return this.anyCt(h).scale;
  }
  sizeOf(h: CkksHandle): number {
    return this.ct(h).size;
  }
  free(): void {}
  dispose(): void {}
}

export function makeSimBackend(seed = 1): CkksBackend {
  let n = 0;
  return {
    name: BACKEND,
    simulated: true,
    label: SIMULATION_LABEL,
    async createClient(params: CkksParameters, keys: KeyRequest): Promise<CkksClient> {
      return new SimClient(params, keys, seed + 7919 * n++);
    },
    async createEvaluator(params: CkksParameters, keys: EvaluationKeys): Promise<CkksEvaluator> {
      return new SimEvaluator(params, keys, seed + 7919 * n++);
    },
  };
}

export const simBackend: CkksBackend = makeSimBackend();
