// Public-key encryptions at the level they are used (refresh re-randomization and masks, x * 0).
//
// At level l the public key restricted to q_0..q_l, (-(a s + e), a) mod Q_l, is a public key of that
// modulus, and an encryption of an integer polynomial m under it is the textbook RLWE one:
//   (u pk_0 + e_0 + m, u pk_1 + e_1) mod Q_l,  u ternary, e_0 and e_1 centered binomial,
// sampled as SEAL 4 samples them (small-polynomials.ts). In NTT form that is one transform of the three
// small polynomials u, e_0 + m and e_1 (3 (l + 1) NTTs) and pointwise products. SEAL's own Encryptor
// works at the top of the chain with the special prime P and divides by P at the end, which keeps the
// fresh noise near 1 instead of u e + e_1 s + e_0 (standard deviation 3.24 sqrt(4N/3), ~480 at
// N = 16384), and costs 5 (l + 2) NTTs; the ciphertexts made here carry that larger noise, ~2^-31 of the
// scale 2^40 per coefficient: below what the rescales around them add (a refresh's key holder rounds it
// off with the rest). Security is RLWE's as for SEAL's encryption: c_1 = u a + e_1 is pseudorandom.
// With the client's product key (p_0, p_1, p_2), p_0 + p_1 s + p_2 s^2 = e, p_1 and p_2 uniform (a
// size-3 encryption of zero, SealClient.productKey), the same recipe gives a size-3 encryption:
//   (u p_0 + e_0 + m, u p_1 + e_1, u p_2 + e_2) mod Q_l,
// what masks an unrelinearized product: its third component u p_2 + e_2 is pseudorandom too, so the
// product's own c2 never reaches the key holder as it is. Noise: e_2 s^2 more (variance 4 n^2 / 9
// times e's per coefficient, ~2^15 at N = 16384, far below a product's scale Delta^2).

import type { Ciphertext, Evaluator, MainModule } from 'node-seal';
import { FhecError } from '../../ir/errors.js';
import { topLevel, type CkksParameters } from '../../ir/ckks/params.js';
import { addResidues } from '../refresh/rns.js';
import { sealCall, type SealContextInfo } from './module.js';
import { nttPlaintext, sealNtt } from './ntt.js';
import { buildCiphertextBytes, checkCiphertextBytes, publicKeyWords, type SealShape } from './serialized.js';
import { sampleCenteredBinomial, sampleTernary, smallResidues } from './small-polynomials.js';

export class LevelZeroEncryptor {
  /** Each key restricted to each level's primes, as a ciphertext of that level (scale 1), by size and level. */
  private readonly keys = new Map<string, Ciphertext>();
  /** The public key's words (2 polynomials x all primes x N, NTT form). */
  private readonly key: BigUint64Array;
  /** The product key's words (3 polynomials x the data primes x N, NTT form), if given. */
  private readonly product?: BigUint64Array;
  private readonly evaluator: Evaluator;

  constructor(
    private readonly seal: MainModule,
    private readonly params: CkksParameters,
    private readonly info: SealContextInfo,
    private readonly shape: SealShape,
    /** The public key, serialized (checked by the caller). */
    publicKey: Uint8Array,
    /** The product key, serialized (checked here): for size-3 encryptions. */
    productKey?: Uint8Array,
  ) {
    this.key = publicKeyWords(publicKey, shape).words;
    if (productKey) this.product = productKeyWords(productKey, shape, topLevel(params));
    this.evaluator = new seal.Evaluator(info.context);
  }

  /**
   * An encryption of zero at `level` (scale 1) into `destination`, a ciphertext of the full context; with
   * `message` (residues of an integer polynomial modulo q_0..q_level, prime-major, coefficient form), an
   * encryption of that polynomial instead. `size` 3 encrypts with the product key (three polynomials).
   */
  encryptZero(level: number, destination: Ciphertext, message?: BigUint64Array, size: 2 | 3 = 2): void {
    const { seal, shape } = this;
    if (!Number.isInteger(level) || level < 0 || level > topLevel(this.params)) throw new FhecError(`level ${level} is outside 0..${topLevel(this.params)}`);
    if (size === 3 && !this.product) throw new FhecError('a size-3 encryption (the mask of an unrelinearized product) needs the client\'s product key, and none was given');
    const n = shape.n;
    const primes = shape.primes.slice(0, level + 1);
    if (message && message.length !== primes.length * n) throw new FhecError(`a message of ${message.length} residues at level ${level}, expected ${primes.length * n}`);
    const e0 = smallResidues(sampleCenteredBinomial(n), primes);
    const errors = Array.from({ length: size - 1 }, () => smallResidues(sampleCenteredBinomial(n), primes));
    const [u, ...cs] = sealNtt(seal, this.info, shape, this.evaluator, level, 1, [smallResidues(sampleTernary(n), primes), message ? addResidues(e0, message, primes, n) : e0, ...errors], true);
    const uPlain = nttPlaintext(seal, this.info, shape, level, 1, u!);
    const noise = new seal.Ciphertext();
    try {
      const all = new BigUint64Array(size * primes.length * n);
      cs.forEach((c, i) => all.set(c, i * primes.length * n));
      sealCall(seal, 'ciphertext load', () => noise.loadFromArray(this.info.context, buildCiphertextBytes({ parmsId: shape.levelIds[level]!, ntt: true, n, k: primes.length, scale: 1, words: all })));
      sealCall(seal, 'encrypt', () => {
        this.evaluator.multiplyPlain(this.keyAt(level, size), uPlain, destination);
        this.evaluator.addInplace(destination, noise);
      });
    } finally {
      uPlain.delete();
      noise.delete();
    }
  }

  /** The public key (size 2) or the product key (size 3) restricted to q_0..q_level. */
  private keyAt(level: number, size: 2 | 3): Ciphertext {
    const known = this.keys.get(`${size}/${level}`);
    if (known) return known;
    const { seal, shape } = this;
    const n = shape.n;
    // The public key spans every prime (the special prime too); the product key the data primes.
    const [source, all] = size === 2 ? [this.key, shape.primes.length] : [this.product!, topLevel(this.params) + 1];
    const k = level + 1;
    const words = new BigUint64Array(size * k * n);
    for (let p = 0; p < size; p++) words.set(source.subarray(p * all * n, (p * all + k) * n), p * k * n);
    const ct = new seal.Ciphertext();
    try {
      sealCall(seal, 'public key load', () => ct.loadFromArray(this.info.context, buildCiphertextBytes({ parmsId: shape.levelIds[level]!, ntt: true, n, k, scale: 1, words })));
    } catch (e) {
      ct.delete();
      throw e;
    }
    this.keys.set(`${size}/${level}`, ct);
    return ct;
  }

  dispose(): void {
    for (const ct of this.keys.values()) ct.delete();
    this.keys.clear();
    this.evaluator.delete();
  }
}

/** The product key's words: a size-3 ciphertext at the top level, NTT form (checked). */
function productKeyWords(bytes: Uint8Array, shape: SealShape, top: number): BigUint64Array {
  const info = checkCiphertextBytes(bytes, shape, 'product key', { level: top, sizes: [3] });
  if (!info.ntt) throw new FhecError('product key: not in NTT form');
  const count = 3 * (top + 1) * shape.n;
  return new BigUint64Array(bytes.slice(info.dataOffset, info.dataOffset + 8 * count).buffer);
}
