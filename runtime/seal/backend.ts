// The node-seal 7 backend: real keys, real encryption. SealClient holds the secret key; SealEvaluator is
// made from serialized public material only (public, relinearization and Galois keys).

import type { Ciphertext, Encryptor, GaloisKeys, MainModule, Plaintext, RelinKeys } from 'node-seal';
import { FhecError } from '../../ir/errors.js';
import type { BackendName, CkksBackend, CkksClient, CkksEvaluator, CkksHandle, EvaluationKeys, CkksEvaluatorOptions, ExactRefreshItem, IntegerPlaintextItem, IntegerPolynomial, IntegerPolynomialItem, KeyRequest, MaskSupplier, RefreshThreadStats, SuppliedMask, WhileWaiting } from '../backend.js';
import { checkSecurity, parametersId, slotsOf, topLevel, type CkksParameters } from '../../ir/ckks/params.js';
import { normalizeStep, decomposeRotation } from '../../ir/ckks/rotation-keys.js';
import { checkKeysMatch, unwrapCiphertext, wrapCiphertext } from '../ckks/wire.js';
import { checkRequestedMask, modulusBitsAt, scaleRatio } from '../refresh/mask.js';
import { loadSeal, makeSealContext, sealCall, sealShape, type SealContextInfo } from './module.js';
import { liftResidues } from '../refresh/rns.js';
import type { RefreshThread } from './refresh-thread.js';
import type { MadeMask, MaskSupply } from './mask-supply.js';
import { LevelZeroEncryptor } from './zero-encryptor.js';
import { nttPlaintext, sealNttByLevel } from './ntt.js';
import { ReplyZeros } from './reply-zeros.js';
import { rotateNttWords } from './galois.js';
import { uniformResidues } from './small-polynomials.js';
import {
  buildCiphertextBytes,
  checkCiphertextBytes,
  checkKSwitchKeysBytes,
  checkPublicKeyBytes,
  plaintextWords,
  withC0Added,
  type SealShape,
} from './serialized.js';

const BACKEND: BackendName = 'seal';
/** Zeros prepareZeros keeps ready per level (each about 1 MiB at N = 16384). */
const MAX_PREPARED_ZEROS = 16;

class SealCiphertext implements CkksHandle {
  readonly backend = BACKEND;
  constructor(readonly ct: Ciphertext) {}
}

class SealPlaintext implements CkksHandle {
  readonly backend = BACKEND;
  constructor(readonly pt: Plaintext) {}
}

function padSlots(values: ArrayLike<number>, slots: number): Float64Array {
  if (values.length > slots) throw new FhecError(`${values.length} values do not fit ${slots} slots`);
  const out = new Float64Array(slots);
  out.set(values instanceof Float64Array ? values : Float64Array.from(values));
  return out;
}

function checkLevel(p: CkksParameters, level: number): void {
  if (!Number.isInteger(level) || level < 0 || level > topLevel(p)) {
    throw new FhecError(`level ${level} is outside 0..${topLevel(p)}`);
  }
}

class SealClient implements CkksClient {
  readonly backend = BACKEND;
  private readonly info: SealContextInfo;
  // The secret key lives only inside these SEAL objects, which never leave the client.
  private readonly keygen;
  private readonly encoder;
  private readonly encryptor;
  private readonly decryptor;
  private readonly modSwitcher;
  private readonly id: string;
  private readonly shape: SealShape;
  /** Secret-key encryptor for refresh replies, made on first use. */
  private symmetric?: Encryptor;
  /** The replies' encryptions of zero, made between rounds (reply-zeros.ts). */
  private replyZeros?: ReplyZeros;
  /** The client's own thread for refresh rounds (startRefreshThread), when started. */
  private thread?: RefreshThread;

  constructor(
    private readonly seal: MainModule,
    readonly params: CkksParameters,
    private readonly keys: KeyRequest,
    /** The client's secret key, for its own refresh thread (refresh-thread.ts); otherwise a new one. */
    secretKey?: Uint8Array,
  ) {
    checkSecurity(params);
    this.info = makeSealContext(seal, params);
    const ctx = this.info.context;
    if (secretKey) {
      const sk = new seal.SecretKey();
      try {
        sealCall(seal, 'secret key load', () => sk.loadFromArray(ctx, secretKey));
        this.keygen = new seal.KeyGenerator(ctx, sk);
      } finally {
        sk.delete();
      }
    } else this.keygen = new seal.KeyGenerator(ctx);
    const pk = this.keygen.createPublicKey();
    this.encoder = new seal.CKKSEncoder(ctx);
    this.encryptor = new seal.Encryptor(ctx, pk);
    pk.delete();
    this.decryptor = new seal.Decryptor(ctx, this.keygen.secretKey());
    this.modSwitcher = new seal.Evaluator(ctx);
    this.id = parametersId(params);
    this.shape = sealShape(this.info, params);
  }

  evaluationKeys(): EvaluationKeys {
    const none = this.seal.ComprModeType.none;
    // Each key object is deleted once serialized: the Galois keys alone are ~0.9 GiB of the 4 GiB wasm
    // heap at N = 16384, and freed key blocks are what the evaluator's own copy of the keys reuses.
    const save = (key: { saveToArray(m: typeof none): unknown; delete(): void }): Uint8Array => {
      try {
        return key.saveToArray(none) as Uint8Array;
      } finally {
        key.delete();
      }
    };
    const out: EvaluationKeys = {
      backend: BACKEND,
      parametersId: this.id,
      publicKey: save(this.keygen.createPublicKey()),
      galoisSteps: [],
    };
    if (this.keys.relin) {
      out.relinKeys = save(this.keygen.createRelinKeysSerializable());
      out.productKey = this.productKey();
    }
    const slots = slotsOf(this.params);
    const steps = [...new Set(this.keys.galoisSteps.map((s) => normalizeStep(s, slots)).filter((s) => s !== 0))];
    if (steps.length > 0) {
      out.galoisSteps = steps;
      out.galoisKeys = sealCall(this.seal, 'Galois key generation', () => save(this.keygen.createGaloisKeysSerializableWithSteps(Int32Array.from(steps))));
    }
    return out;
  }

  encrypt(values: ArrayLike<number>, level: number, scale: number): Uint8Array {
    checkLevel(this.params, level);
    const seal = this.seal;
    const pt = new seal.Plaintext();
    const ct = new seal.Ciphertext();
    try {
      sealCall(seal, 'encode', () => this.encoder.encode(padSlots(values, slotsOf(this.params)), scale, pt));
      this.encryptor.encrypt(pt, ct);
      if (level < topLevel(this.params)) this.modSwitcher.cipherModSwitchToInplace(ct, this.info.levels[level]!);
      return wrapCiphertext(BACKEND, this.id, ct.saveToArray(seal.ComprModeType.none) as Uint8Array);
    } finally {
      pt.delete();
      ct.delete();
    }
  }

  decrypt(bytes: Uint8Array): Float64Array {
    const seal = this.seal;
    const ct = new seal.Ciphertext();
    const pt = new seal.Plaintext();
    try {
      const payload = unwrapCiphertext(bytes, BACKEND, this.id);
      checkCiphertextBytes(payload, this.shape, 'ciphertext to decrypt', { seeded: true, sizes: [2, 3] });
      sealCall(seal, 'ciphertext load', () => ct.loadFromArray(this.info.context, payload));
      sealCall(seal, 'decrypt', () => this.decryptor.decrypt(ct, pt));
      return Float64Array.from(this.encoder.decodeFloat64(pt) as Float64Array);
    } finally {
      ct.delete();
      pt.delete();
    }
  }

  inspect(bytes: Uint8Array): { level: number; scale: number; size: number } {
    const info = checkCiphertextBytes(unwrapCiphertext(bytes, BACKEND, this.id), this.shape, 'refresh request ciphertext', { sizes: [2, 3] });
    return { level: info.level, scale: info.scale, size: info.size };
  }

  /**
   * Moves refresh rounds to a thread of the client's own, which gets the secret key (the client's side:
   * no evaluator thread ever holds it). The calling thread then runs `whileWaiting` during a round.
   */
  async startRefreshThread(): Promise<RefreshThreadStats> {
    if (!this.thread) {
      const sk = this.keygen.secretKey();
      let bytes: Uint8Array;
      try {
        bytes = new Uint8Array(sk.saveToArray(this.seal.ComprModeType.none) as Uint8Array);
      } finally {
        sk.delete();
      }
      const { RefreshThread } = await import('./refresh-thread.js');
      this.thread = await RefreshThread.start(this.params, bytes);
    }
    return this.thread.stats;
  }

  refreshExact(items: ExactRefreshItem[], whileWaiting?: WhileWaiting): Uint8Array[] {
    // The thread only pays when the caller has work to do meanwhile. Sharing a round between this thread
    // and that one was measured no faster than one thread (the round's items batch their NTTs here).
    return this.thread && whileWaiting ? this.thread.refresh(items, whileWaiting) : this.refreshHere(items);
  }

  /** The checks of a refresh round's items: the mask's hiding, the levels and scales asked for. */
  private checkRefreshItems(items: ExactRefreshItem[]) {
    return items.map(({ ciphertext, target: t }) => {
      const payload = unwrapCiphertext(ciphertext, BACKEND, this.id);
      // Size 3: an unrelinearized product (its mask re-randomized the third component); decrypted alike.
      const info = checkCiphertextBytes(payload, this.shape, `refresh request ciphertext (${t.point})`, { sizes: [2, 3] });
      const plan = checkRequestedMask(this.params, info.level, info.scale, t.bound, t.maskBits, t.minHidingBits, t.point);
      checkLevel(this.params, t.level);
      if (!(t.scale >= 1) || Math.log2(t.scale) + 1 >= modulusBitsAt(this.params, t.level)) {
        throw new FhecError(`refresh of ${t.point} asks for scale ${t.scale}, outside what level ${t.level} can carry`, { node: `%${t.point}` });
      }
      return { payload, info, plan, t };
    });
  }

  /** refreshExact on this thread. */
  private refreshHere(items: ExactRefreshItem[]): Uint8Array[] {
    const seal = this.seal;
    const n = this.params.ringDegree;
    // Every item checked before anything is decrypted.
    const checked = this.checkRefreshItems(items);
    // y = m + r as residues in coefficient form: decrypt (NTT form), then SEAL's inverse NTT.
    const decrypted = checked.map(({ payload, info }) => {
      const ct = new seal.Ciphertext();
      const pt = new seal.Plaintext();
      try {
        sealCall(seal, 'ciphertext load', () => ct.loadFromArray(this.info.context, payload));
        sealCall(seal, 'decrypt', () => this.decryptor.decrypt(ct, pt));
        return { level: info.level, scale: info.scale, words: plaintextWords(pt.saveToArray(seal.ComprModeType.none) as Uint8Array) };
      } finally {
        ct.delete();
        pt.delete();
      }
    });
    const coeffs = sealNttByLevel(seal, this.info, this.shape, this.modSwitcher, decrypted, false);
    // The exact integers, checked against the mask's limit, at the target scale, as residues of the target modulus.
    const lifted = checked.map(({ info, plan, t }, i) => {
      const lift = liftResidues(coeffs[i]!, this.params.primes.slice(0, info.level + 1), this.params.primes.slice(0, t.level + 1), n, scaleRatio(t.scale, info.scale), plan.limit);
      if (lift.overflow !== undefined) {
        throw new FhecError(
          `refresh of ${t.point}: a masked coefficient reached 2^${Math.log2(Number(lift.overflow)).toFixed(1)}, beyond the 2^${Math.log2(Number(plan.limit)).toFixed(1)} ` +
            `a value within its bound ${t.bound} allows: the value exceeds its bound (input unlike the calibration data); the key holder stops the run`,
          { node: `%${t.point}` },
        );
      }
      return { level: t.level, scale: t.scale, words: lift.residues };
    });
    const ntt = sealNttByLevel(seal, this.info, this.shape, this.modSwitcher, lifted, true);
    // Each encrypted with the secret key: a fresh encryption of zero (made between rounds if one is
    // ready) with the polynomial added to c0, seeded (c1 travels as its seed). A rotation asked for is
    // the same polynomial's NTT words permuted (galois.ts), encrypted with a zero of its own.
    const zeros = (this.replyZeros ??= new ReplyZeros((level) => this.symmetricZero(level)));
    const out: Uint8Array[] = [];
    const levels: number[] = [];
    checked.forEach(({ t }, i) => {
      for (const words of [ntt[i]!, ...(t.rotations ?? []).map((step) => rotateNttWords(ntt[i]!, n, step))]) {
        out.push(wrapCiphertext(BACKEND, this.id, withC0Added(zeros.take(t.level), this.shape, words, t.scale)));
        levels.push(t.level);
      }
    });
    zeros.roundDone(levels);
    return out;
  }

  /**
   * The product key: (p0, p1, p2) at the top level with p0 + p1 s + p2 s^2 = e, p1 and p2 uniform. It is
   * a secret-key encryption of zero (c0, c1) = (-p1 s + e, p1) with p2 s^2 taken off c0, p2 drawn
   * uniform (each NTT word by rejection, from Web Crypto) and p2 s^2 read by decrypting (0, 0, p2),
   * which CKKS decryption gives exactly (no rounding). Publishing it rests on the assumption SEAL's
   * relinearization keys already make: RLWE samples that involve s^2 (an encryption of s^2 under s).
   */
  private productKey(): Uint8Array {
    const seal = this.seal;
    const top = topLevel(this.params);
    const n = this.params.ringDegree;
    const k = top + 1;
    const parmsId = this.shape.levelIds[top]!;
    const p2 = uniformResidues(n, this.params.primes.slice(0, k));
    const zero = nttPlaintext(seal, this.info, this.shape, top, 1, new BigUint64Array(k * n));
    const z = new seal.Ciphertext();
    const third = new seal.Ciphertext();
    const p2s2 = new seal.Plaintext();
    try {
      const enc = (this.symmetric ??= this.makeSymmetricEncryptor());
      sealCall(seal, 'encrypt', () => enc.encryptSymmetric(zero, z));
      const words = new BigUint64Array(3 * k * n);
      words.set(p2, 2 * k * n);
      sealCall(seal, 'ciphertext load', () => third.loadFromArray(this.info.context, buildCiphertextBytes({ parmsId, ntt: true, n, k, scale: 1, words })));
      sealCall(seal, 'decrypt', () => this.decryptor.decrypt(third, p2s2));
      sealCall(seal, 'product key', () => this.modSwitcher.subPlain(z, p2s2, z));
      const saved = z.saveToArray(seal.ComprModeType.none) as Uint8Array;
      const info = checkCiphertextBytes(saved, this.shape, 'product key');
      words.set(new BigUint64Array(saved.slice(info.dataOffset, info.dataOffset + 16 * k * n).buffer));
      return buildCiphertextBytes({ parmsId, ntt: true, n, k, scale: 1, words });
    } finally {
      for (const o of [zero, z, third, p2s2]) o.delete();
    }
  }

  /** A fresh secret-key encryption of zero at `level` (scale 1), seeded and serialized, as SEAL makes it for a plaintext. */
  private symmetricZero(level: number): Uint8Array {
    const seal = this.seal;
    const zero = nttPlaintext(seal, this.info, this.shape, level, 1, new BigUint64Array((level + 1) * this.params.ringDegree));
    try {
      const enc = (this.symmetric ??= this.makeSymmetricEncryptor());
      const seeded = sealCall(seal, 'encrypt', () => enc.encryptSymmetricSerializable(zero));
      try {
        return seeded.saveToArray(seal.ComprModeType.none) as Uint8Array;
      } finally {
        seeded.delete();
      }
    } finally {
      zero.delete();
    }
  }

  repliesEncryptedAhead(): number {
    return this.replyZeros?.stats.usedAhead ?? 0;
  }

  private makeSymmetricEncryptor(): Encryptor {
    const pk = this.keygen.createPublicKey();
    const sk = this.keygen.secretKey();
    try {
      return new this.seal.Encryptor(this.info.context, pk, sk);
    } finally {
      pk.delete();
      sk.delete();
    }
  }

  dispose(): void {
    this.thread?.close();
    this.replyZeros?.stop();
    this.encryptor.delete();
    this.decryptor.delete();
    this.modSwitcher.delete();
    this.symmetric?.delete();
    this.encoder.delete();
    this.keygen.delete();
    this.info.context.delete();
  }
}

class SealEvaluator implements CkksEvaluator {
  readonly backend = BACKEND;
  readonly simulated = false;
  private readonly info: SealContextInfo;
  private readonly evaluator;
  private readonly encoder;
  private readonly relinKeys?: RelinKeys;
  private readonly galoisKeys?: GaloisKeys;
  private readonly galoisSteps: Set<number>;
  private readonly id: string;
  private readonly shape: SealShape;
  /** Encrypts zeros with the public key at the level asked (re-randomization; SEAL refuses the all-zero "transparent" result of x * 0). */
  private readonly zeroEncryptor: LevelZeroEncryptor;
  /** Refresh masks made ahead on a helper thread (mask-supply.ts), when asked for. */
  maskSupply?: MaskSupplier;
  private masks?: MaskSupply;
  /** Encryptions of zero made ahead by prepareZeros, per level, each used once. */
  private readonly preparedZeros = new Map<number, Ciphertext[]>();
  private readonly preparedStats = { made: 0, used: 0 };

  constructor(
    private readonly seal: MainModule,
    readonly params: CkksParameters,
    keys: EvaluationKeys,
  ) {
    checkSecurity(params);
    this.id = parametersId(params);
    checkKeysMatch(keys, BACKEND, this.id);
    this.info = makeSealContext(seal, params);
    const ctx = this.info.context;
    this.evaluator = new seal.Evaluator(ctx);
    this.encoder = new seal.CKKSEncoder(ctx);
    this.shape = sealShape(this.info, params);
    // Keys come from the other side: checked in full before SEAL parses them.
    checkPublicKeyBytes(keys.publicKey, this.shape);
    if (keys.relinKeys) checkKSwitchKeysBytes(keys.relinKeys, this.shape, 'relin');
    if (keys.galoisKeys) checkKSwitchKeysBytes(keys.galoisKeys, this.shape, 'galois', keys.galoisSteps);
    this.zeroEncryptor = new LevelZeroEncryptor(seal, params, this.info, this.shape, keys.publicKey, keys.productKey);
    if (keys.relinKeys) {
      const rk = new seal.RelinKeys();
      sealCall(seal, 'relinearization key load', () => rk.loadFromArray(ctx, keys.relinKeys));
      this.relinKeys = rk;
    }
    if (keys.galoisKeys) {
      const gk = new seal.GaloisKeys();
      sealCall(seal, 'Galois key load', () => gk.loadFromArray(ctx, keys.galoisKeys));
      this.galoisKeys = gk;
    }
    this.galoisSteps = new Set(keys.galoisSteps);
  }

  private ct(h: CkksHandle): Ciphertext {
    if (!(h instanceof SealCiphertext)) throw new FhecError('expected a SEAL ciphertext');
    return h.ct;
  }

  private pt(h: CkksHandle): Plaintext {
    if (!(h instanceof SealPlaintext)) throw new FhecError('expected a SEAL plaintext');
    return h.pt;
  }

  private out(what: string, f: (dst: Ciphertext) => void): SealCiphertext {
    const dst = new this.seal.Ciphertext();
    try {
      sealCall(this.seal, what, () => f(dst));
    } catch (e) {
      dst.delete();
      throw e;
    }
    return new SealCiphertext(dst);
  }

  loadCiphertext(bytes: Uint8Array): CkksHandle {
    const payload = unwrapCiphertext(bytes, BACKEND, this.id);
    checkCiphertextBytes(payload, this.shape, 'ciphertext', { seeded: true, sizes: [2, 3] });
    const ct = new this.seal.Ciphertext();
    sealCall(this.seal, 'ciphertext load', () => ct.loadFromArray(this.info.context, payload));
    return new SealCiphertext(ct);
  }

  /** Integer polynomials as NTT-form plaintexts at each item's level and scale (their transforms batched). */
  private integerPlaintextsAt(items: IntegerPlaintextItem[]): Plaintext[] {
    const polys = items.map(({ level, scale, poly }) => {
      checkLevel(this.params, level);
      if (poly.n !== this.params.ringDegree) throw new FhecError(`integer polynomial of ${poly.n} coefficients, the ring has ${this.params.ringDegree}`);
      return { level, scale, words: poly.residues(this.params.primes.slice(0, level + 1)) };
    });
    const ntt = sealNttByLevel(this.seal, this.info, this.shape, this.evaluator, polys, true);
    return polys.map((p, i) => nttPlaintext(this.seal, this.info, this.shape, p.level, p.scale, ntt[i]!));
  }

  /**
   * A fresh encryption at this level of `message` (an integer polynomial), or of zero, to re-randomize a
   * ciphertext of `size` polynomials: for size 3 (an unrelinearized product) a size-3 encryption with
   * the product key, whose third component is pseudorandom as well (zero-encryptor.ts).
   */
  private freshEncryption(level: number, scale: number, message?: IntegerPolynomial, size = 2): Ciphertext {
    if (size === 2) return this.publicKeyEncryption(level, scale, message);
    if (size !== 3) throw new FhecError(`a refresh mask for a ciphertext of ${size} polynomials: only 2 or 3 are refreshed`);
    if (message && message.n !== this.params.ringDegree) throw new FhecError(`integer polynomial of ${message.n} coefficients, the ring has ${this.params.ringDegree}`);
    const z = new this.seal.Ciphertext();
    try {
      this.zeroEncryptor.encryptZero(level, z, message?.residues(this.params.primes.slice(0, level + 1)), 3);
      z.setScale(scale);
      return z;
    } catch (e) {
      z.delete();
      throw e;
    }
  }

  /**
   * A fresh public-key encryption at this level of `message`, or of zero: a zero made ahead
   * (prepareZeros) with the message added as a plaintext, else one encryption of the message now
   * (zero-encryptor.ts).
   */
  private publicKeyEncryption(level: number, scale: number, message?: IntegerPolynomial): Ciphertext {
    if (message && message.n !== this.params.ringDegree) throw new FhecError(`integer polynomial of ${message.n} coefficients, the ring has ${this.params.ringDegree}`);
    let z = this.preparedZeros.get(level)?.pop();
    if (z) this.preparedStats.used++;
    else {
      z = new this.seal.Ciphertext();
      try {
        this.zeroEncryptor.encryptZero(level, z, message?.residues(this.params.primes.slice(0, level + 1)));
        z.setScale(scale);
        return z;
      } catch (e) {
        z.delete();
        throw e;
      }
    }
    try {
      z.setScale(scale);
      if (message) {
        const [pt] = this.integerPlaintextsAt([{ level, scale, poly: message }]);
        try {
          sealCall(this.seal, 'encrypt integer polynomial', () => this.evaluator.addPlain(z, pt!, z));
        } finally {
          pt!.delete();
        }
      }
      return z;
    } catch (e) {
      z.delete();
      throw e;
    }
  }

  addIntegerPolynomials(items: IntegerPolynomialItem[]): CkksHandle[] {
    const plain = items.filter((it) => !it.rerandomize);
    const pts = this.integerPlaintextsAt(plain.map(({ ct, poly }) => ({ level: this.levelOf(ct), scale: this.ct(ct).scale(), poly })));
    const out: CkksHandle[] = [];
    try {
      let next = 0;
      for (const { ct, poly, rerandomize } of items) {
        const x = this.ct(ct);
        if (!rerandomize) {
          out.push(this.out('add integer polynomial', (d) => this.evaluator.addPlain(x, pts[next++]!, d)));
          continue;
        }
        // A fresh public-key encryption of the polynomial: the masked ciphertext's randomness is new
        // (for a size-3 product, its third component's too: zero-encryptor.ts).
        const z = this.freshEncryption(this.levelOf(ct), x.scale(), poly, x.size());
        out.push(new SealCiphertext(z));
        sealCall(this.seal, 're-randomize', () => this.evaluator.addInplace(z, x));
      }
    } catch (e) {
      for (const h of out) this.free(h);
      throw e;
    } finally {
      for (const pt of pts) pt.delete();
    }
    return out;
  }

  integerPlaintexts(items: IntegerPlaintextItem[]): CkksHandle[] {
    return this.integerPlaintextsAt(items).map((pt) => new SealPlaintext(pt));
  }

  encryptIntegerPolynomials(items: IntegerPlaintextItem[]): CkksHandle[] {
    const out: CkksHandle[] = [];
    try {
      for (const { level, scale, poly, size } of items) {
        checkLevel(this.params, level);
        out.push(new SealCiphertext(this.freshEncryption(level, scale, poly, size)));
      }
    } catch (e) {
      for (const h of out) this.free(h);
      throw e;
    }
    return out;
  }

  saveCiphertext(h: CkksHandle): Uint8Array {
    return wrapCiphertext(BACKEND, this.id, this.ct(h).saveToArray(this.seal.ComprModeType.none) as Uint8Array);
  }

  encode(values: Float64Array, level: number, scale: number): CkksHandle {
    checkLevel(this.params, level);
    const pt = new this.seal.Plaintext();
    sealCall(this.seal, 'encode', () => {
      this.encoder.encode(padSlots(values, slotsOf(this.params)), scale, pt);
      if (level < topLevel(this.params)) {
        this.evaluator.plainModSwitchToInplace(pt, this.info.levels[level]!);
        // Dropping primes keeps the top-level allocation: give it back, so a plaintext held (as in the
        // plaintext cache) takes (level + 1) * N words, not the top level's.
        pt.shrinkToFit();
      }
    });
    return new SealPlaintext(pt);
  }

  encodeSplat(value: number, level: number, scale: number): CkksHandle {
    checkLevel(this.params, level);
    // SEAL's own scalar encode: round half away from zero, the same integer in every NTT position.
    const scaled = value * scale;
    const c = Math.sign(scaled) * Math.round(Math.abs(scaled));
    if (!Number.isFinite(c) || (c !== 0 && Math.log2(Math.abs(c)) + 1 >= modulusBitsAt(this.params, level))) {
      throw new FhecError(`constant ${value} at scale ${scale} does not fit the modulus at level ${level}`);
    }
    const n = this.params.ringDegree;
    const big = BigInt(c);
    const words = new BigUint64Array((level + 1) * n);
    for (let i = 0; i <= level; i++) {
      const q = this.params.primes[i]!;
      words.fill(((big % q) + q) % q, i * n, (i + 1) * n);
    }
    return new SealPlaintext(nttPlaintext(this.seal, this.info, this.shape, level, scale, words));
  }

  add(a: CkksHandle, b: CkksHandle): CkksHandle {
    return this.out('add', (d) => this.evaluator.add(this.ct(a), this.ct(b), d));
  }
  sub(a: CkksHandle, b: CkksHandle): CkksHandle {
    return this.out('sub', (d) => this.evaluator.sub(this.ct(a), this.ct(b), d));
  }
  negate(a: CkksHandle): CkksHandle {
    return this.out('negate', (d) => this.evaluator.negate(this.ct(a), d));
  }
  addPlain(a: CkksHandle, p: CkksHandle): CkksHandle {
    return this.out('add_plain', (d) => this.evaluator.addPlain(this.ct(a), this.pt(p), d));
  }
  mulPlain(a: CkksHandle, p: CkksHandle): CkksHandle {
    const x = this.ct(a);
    const pt = this.pt(p);
    if (!pt.isZero()) return this.out('mul_plain', (d) => this.evaluator.multiplyPlain(x, pt, d));
    return this.out('mul_plain by zero', (d) => {
      const [xi, pi] = [x.parmsId().values() as BigUint64Array, pt.parmsId().values() as BigUint64Array];
      if (!xi.every((v, i) => v === pi[i])) {
        throw new FhecError('mul_plain: operands at different levels');
      }
      this.zeroEncryptor.encryptZero(this.levelOf(a), d);
      d.setScale(x.scale() * pt.scale());
    });
  }
  mul(a: CkksHandle, b: CkksHandle): CkksHandle {
    return this.out('mul', (d) => this.evaluator.multiply(this.ct(a), this.ct(b), d));
  }
  relinearize(a: CkksHandle): CkksHandle {
    if (!this.relinKeys) throw new FhecError('relinearize needs relinearization keys, and none were given');
    const rk = this.relinKeys;
    return this.out('relinearize', (d) => this.evaluator.relinearize(this.ct(a), rk, d));
  }
  withScale(a: CkksHandle, scale: number): CkksHandle {
    if (!(scale > 0 && Number.isFinite(scale))) throw new FhecError(`cannot declare a ciphertext at scale ${scale}`);
    const d = sealCall(this.seal, 'with_scale', () => this.ct(a).copy());
    d.setScale(scale);
    return new SealCiphertext(d);
  }
  rescale(a: CkksHandle): CkksHandle {
    return this.out('rescale', (d) => this.evaluator.rescaleToNext(this.ct(a), d));
  }
  modSwitch(a: CkksHandle): CkksHandle {
    return this.out('mod_switch', (d) => this.evaluator.cipherModSwitchToNext(this.ct(a), d));
  }

  /** The key steps that make up `step`: its own key, or the binary decomposition over power-of-two keys. */
  keyStepsFor(step: number): number[] {
    return decomposeRotation(step, slotsOf(this.params), this.galoisSteps);
  }

  rotate(a: CkksHandle, step: number): CkksHandle {
    const parts = this.keyStepsFor(step);
    if (!this.galoisKeys && parts.length > 0) throw new FhecError(`rotation by ${step} needs Galois keys, and none were given`);
    const gk = this.galoisKeys!;
    let cur = this.ct(a);
    const owned: Ciphertext[] = [];
    for (const k of parts) {
      const src = cur;
      const next = this.out(`rotate by ${k}`, (d) => this.evaluator.rotateVector(src, k, gk, d)).ct;
      owned.push(next);
      cur = next;
    }
    if (parts.length === 0) return this.out('copy', (d) => d.assign(cur));
    owned.slice(0, -1).forEach((c) => c.delete());
    return new SealCiphertext(cur);
  }

  rotatePlaintext(p: CkksHandle, step: number): CkksHandle {
    const pt = this.pt(p);
    if (!pt.isNttForm()) throw new Error('internal: rotatePlaintext needs a plaintext in NTT form');
    const n = this.params.ringDegree;
    const words = plaintextWords(pt.saveToArray(this.seal.ComprModeType.none) as Uint8Array);
    return new SealPlaintext(nttPlaintext(this.seal, this.info, this.shape, words.length / n - 1, pt.scale(), rotateNttWords(words, n, step)));
  }

  levelOf(h: CkksHandle): number {
    return this.ct(h).coeffModulusSize() - 1;
  }
  scaleOf(h: CkksHandle): number {
    return this.ct(h).scale();
  }
  sizeOf(h: CkksHandle): number {
    return this.ct(h).size();
  }

  free(h: CkksHandle): void {
    if (h instanceof SealCiphertext) h.ct.delete();
    else if (h instanceof SealPlaintext) h.pt.delete();
  }

  prepareZeros(levels: readonly number[]): number {
    const want = new Map<number, number>();
    for (const l of levels) want.set(l, (want.get(l) ?? 0) + 1);
    let made = 0;
    for (const [level, count] of want) {
      const list = this.preparedZeros.get(level) ?? [];
      this.preparedZeros.set(level, list);
      while (list.length < Math.min(count, MAX_PREPARED_ZEROS)) {
        const z = new this.seal.Ciphertext();
        try {
          this.zeroEncryptor.encryptZero(level, z);
        } catch (e) {
          z.delete();
          throw e;
        }
        list.push(z);
        made++;
      }
    }
    this.preparedStats.made += made;
    return made;
  }

  /** Zeros made by prepareZeros, and how many of them refreshes used. */
  get preparedZerosStats(): { made: number; used: number } {
    return { ...this.preparedStats };
  }

  /** Takes refresh masks from `supply`: what arrives is loaded into this thread's SEAL (a load each, no transform). */
  useMaskSupply(supply: MaskSupply): void {
    this.masks = supply;
    const load = (m: MadeMask): SuppliedMask => {
      const ct = new this.seal.Ciphertext();
      try {
        sealCall(this.seal, 'refresh mask load', () => ct.loadFromArray(this.info.context, m.masked));
      } catch (e) {
        ct.delete();
        throw e;
      }
      checkLevel(this.params, m.toLevel);
      return { key: m.key, masked: new SealCiphertext(ct), unmask: new SealPlaintext(nttPlaintext(this.seal, this.info, this.shape, m.toLevel, m.toScale, m.unmask)) };
    };
    this.maskSupply = {
      request: (items) => supply.request(items),
      collect: () => supply.collect().map(load),
      get failed() {
        return supply.failed;
      },
      get stats() {
        return { ...supply.stats };
      },
    };
  }

  dispose(): void {
    this.masks?.close();
    for (const list of this.preparedZeros.values()) for (const z of list) z.delete();
    this.preparedZeros.clear();
    this.relinKeys?.delete();
    this.galoisKeys?.delete();
    this.zeroEncryptor.dispose();
    this.evaluator.delete();
    this.encoder.delete();
    this.info.context.delete();
  }
}

/** A key holder's client rebuilt from a secret key (the client's refresh thread, refresh-thread-worker.ts). */
export function sealClientFromSecretKey(seal: MainModule, params: CkksParameters, secretKey: Uint8Array): CkksClient {
  return new SealClient(seal, params, { relin: false, galoisSteps: [] }, secretKey);
}

export const sealBackend: CkksBackend = {
  name: BACKEND,
  simulated: false,
  label: 'backend seal: node-seal 7 (Microsoft SEAL 4.1.2), real CKKS encryption',
  async createClient(params: CkksParameters, keys: KeyRequest): Promise<CkksClient> {
    return new SealClient(await loadSeal(), params, keys);
  },
  async createEvaluator(params: CkksParameters, keys: EvaluationKeys, options: CkksEvaluatorOptions = {}): Promise<CkksEvaluator> {
    const ev = new SealEvaluator(await loadSeal(), params, keys);
    if (options.maskSupply) {
      // Loaded on demand: Node's worker_threads, which a browser bundle of the client never reaches.
      const { MaskSupply } = await import('./mask-supply.js');
      ev.useMaskSupply(await MaskSupply.start(params, keys.publicKey, keys.productKey));
    }
    return ev;
  },
};
