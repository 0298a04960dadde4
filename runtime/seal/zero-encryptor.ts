// Public-key encryptions of zero made at the level they are used (refresh re-randomization, x * 0).
//
// SEAL's Encryptor encrypts at the top of the chain: it works modulo all primes and the special prime
// P, divides by P, and the caller then drops the primes it does not need: at N=16384 with 4 data
// primes about 25 NTTs, about half of a refresh's evaluator work. The same encryption modulo q_0..q_l and P
// only is an encryption of zero at level l under the same secret key: the public key (-(a s + e), a)
// restricted to those primes is a public key of that smaller modulus, and SEAL's own encryptor in a
// context of primes [q_0..q_l, P] samples u and the errors, multiplies and divides by P exactly as it
// does at the top (same distribution, same noise). The result's words are those of a level-l
// ciphertext of the full context; only its parms_id differs, and is rewritten.

import type { Ciphertext, Encryptor, MainModule, SEALContext } from 'node-seal';
import { FhecError } from '../../ir/errors.js';
import { topLevel, type CkksParameters } from '../../ir/ckks/params.js';
import { sealCall, type SealContextInfo } from './module.js';
import { buildCiphertextBytes, parmsIdHex, publicKeyWords, rewriteParmsId, type SealShape } from './serialized.js';

interface AtLevel {
  context: SEALContext;
  encryptor: Encryptor;
}

export class LevelZeroEncryptor {
  private readonly levels = new Map<number, AtLevel>();
  /** The public key's words (2 polynomials x all primes x N, NTT form) and scale. */
  private readonly key: { words: BigUint64Array; scale: number };

  constructor(
    private readonly seal: MainModule,
    private readonly params: CkksParameters,
    private readonly info: SealContextInfo,
    private readonly shape: SealShape,
    /** The public key, serialized (checked by the caller). */
    publicKey: Uint8Array,
  ) {
    this.key = publicKeyWords(publicKey, shape);
  }

  /** An encryption of zero at `level` (scale 1) into `destination`, a ciphertext of the full context. */
  encryptZero(level: number, destination: Ciphertext): void {
    const { seal, shape } = this;
    if (!Number.isInteger(level) || level < 0 || level > topLevel(this.params)) throw new FhecError(`level ${level} is outside 0..${topLevel(this.params)}`);
    const at = this.at(level);
    const sub = new seal.Ciphertext();
    try {
      sealCall(seal, 'encrypt zero', () => at.encryptor.encryptZero(sub));
      const bytes = sub.saveToArray(seal.ComprModeType.none) as Uint8Array;
      // SEAL wrote these words itself (nothing from outside): only the parms_id changes.
      rewriteParmsId(bytes, shape.levelIds[level]!);
      sealCall(seal, 'ciphertext load', () => destination.loadFromArray(this.info.context, bytes));
    } finally {
      sub.delete();
    }
  }

  private at(level: number): AtLevel {
    const known = this.levels.get(level);
    if (known) return known;
    const { seal, params, shape } = this;
    const n = params.ringDegree;
    const all = params.primes.length;
    // Primes q_0..q_level and the special prime; the public key's residues for them, poly by poly.
    const picked = [...Array.from({ length: level + 1 }, (_, j) => j), all - 1];
    const words = new BigUint64Array(2 * picked.length * n);
    for (let p = 0; p < 2; p++) {
      picked.forEach((j, i) => words.set(this.key.words.subarray((p * all + j) * n, (p * all + j + 1) * n), (p * picked.length + i) * n));
    }
    const parms = new seal.EncryptionParameters(seal.SchemeType.ckks);
    const moduli = picked.map((j) => new seal.Modulus(params.primes[j]!));
    try {
      parms.setPolyModulusDegree(n);
      const vector = seal.vecFromArrayModulus(moduli);
      parms.setCoeffModulus(vector);
      vector.delete();
      const context = sealCall(seal, 'context', () => new seal.SEALContext(parms, true, params.insecure ? seal.SecLevelType.none : seal.SecLevelType.tc128));
      if (!context.parametersSet()) throw new FhecError(`SEAL rejects the level-${level} encryption parameters`);
      const keyId = parmsIdHex(context.keyParmsId().values() as BigUint64Array);
      const pk = new seal.PublicKey();
      try {
        sealCall(seal, 'public key load', () => pk.loadFromArray(context, buildCiphertextBytes({ parmsId: keyId, ntt: true, n, k: picked.length, scale: this.key.scale, words })));
        const made = { context, encryptor: new seal.Encryptor(context, pk) };
        this.levels.set(level, made);
        return made;
      } finally {
        pk.delete();
      }
    } finally {
      parms.delete();
      for (const m of moduli) m.delete();
    }
  }

  dispose(): void {
    for (const { context, encryptor } of this.levels.values()) {
      encryptor.delete();
      context.delete();
    }
    this.levels.clear();
  }
}
