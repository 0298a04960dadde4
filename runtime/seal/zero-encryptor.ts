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

import type { Ciphertext, Evaluator, MainModule } from 'node-seal';
import { FhecError } from '../../ir/errors.js';
import { topLevel, type CkksParameters } from '../../ir/ckks/params.js';
import { addResidues } from '../refresh/rns.js';
import { sealCall, type SealContextInfo } from './module.js';
import { nttPlaintext, sealNtt } from './ntt.js';
import { buildCiphertextBytes, publicKeyWords, type SealShape } from './serialized.js';
import { sampleCenteredBinomial, sampleTernary, smallResidues } from './small-polynomials.js';

export class LevelZeroEncryptor {
  /** The public key restricted to each level's primes, as a ciphertext of that level (scale 1). */
  private readonly keys = new Map<number, Ciphertext>();
  /** The public key's words (2 polynomials x all primes x N, NTT form). */
  private readonly key: BigUint64Array;
  private readonly evaluator: Evaluator;

  constructor(
    private readonly seal: MainModule,
    private readonly params: CkksParameters,
    private readonly info: SealContextInfo,
    private readonly shape: SealShape,
    /** The public key, serialized (checked by the caller). */
    publicKey: Uint8Array,
  ) {
    this.key = publicKeyWords(publicKey, shape).words;
    this.evaluator = new seal.Evaluator(info.context);
  }

  /**
   * An encryption of zero at `level` (scale 1) into `destination`, a ciphertext of the full context; with
   * `message` (residues of an integer polynomial modulo q_0..q_level, prime-major, coefficient form), an
   * encryption of that polynomial instead.
   */
  encryptZero(level: number, destination: Ciphertext, message?: BigUint64Array): void {
    const { seal, shape } = this;
    if (!Number.isInteger(level) || level < 0 || level > topLevel(this.params)) throw new FhecError(`level ${level} is outside 0..${topLevel(this.params)}`);
    const n = shape.n;
    const primes = shape.primes.slice(0, level + 1);
    if (message && message.length !== primes.length * n) throw new FhecError(`a message of ${message.length} residues at level ${level}, expected ${primes.length * n}`);
    const e0 = smallResidues(sampleCenteredBinomial(n), primes);
    const [u, c0, c1] = sealNtt(seal, this.info, shape, this.evaluator, level, 1, [smallResidues(sampleTernary(n), primes), message ? addResidues(e0, message, primes, n) : e0, smallResidues(sampleCenteredBinomial(n), primes)], true);
    const uPlain = nttPlaintext(seal, this.info, shape, level, 1, u!);
    const noise = new seal.Ciphertext();
    try {
      const both = new BigUint64Array(2 * primes.length * n);
      both.set(c0!);
      both.set(c1!, primes.length * n);
      sealCall(seal, 'ciphertext load', () => noise.loadFromArray(this.info.context, buildCiphertextBytes({ parmsId: shape.levelIds[level]!, ntt: true, n, k: primes.length, scale: 1, words: both })));
      sealCall(seal, 'encrypt', () => {
        this.evaluator.multiplyPlain(this.keyAt(level), uPlain, destination);
        this.evaluator.addInplace(destination, noise);
      });
    } finally {
      uPlain.delete();
      noise.delete();
    }
  }

  private keyAt(level: number): Ciphertext {
    const known = this.keys.get(level);
    if (known) return known;
    const { seal, shape } = this;
    const n = shape.n;
    const all = shape.primes.length;
    const k = level + 1;
    const words = new BigUint64Array(2 * k * n);
    for (let p = 0; p < 2; p++) words.set(this.key.subarray(p * all * n, (p * all + k) * n), p * k * n);
    const ct = new seal.Ciphertext();
    try {
      sealCall(seal, 'public key load', () => ct.loadFromArray(this.info.context, buildCiphertextBytes({ parmsId: shape.levelIds[level]!, ntt: true, n, k, scale: 1, words })));
    } catch (e) {
      ct.delete();
      throw e;
    }
    this.keys.set(level, ct);
    return ct;
  }

  dispose(): void {
    for (const ct of this.keys.values()) ct.delete();
    this.keys.clear();
    this.evaluator.delete();
  }
}
