// Encryptions made at the level they are used (runtime/seal/zero-encryptor.ts): each decrypts under the
// client's secret key to zero (or to the integer polynomial given) with the noise the textbook RLWE
// encryption predicts, is at that level, and is fresh (a new c1 each time).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeParameters, parametersId, topLevel } from '../ir/ckks/params.js';
import type { CkksClient } from '../runtime/backend.js';
import { sealBackend } from '../runtime/seal/backend.js';
import { loadSeal, makeSealContext, sealShape } from '../runtime/seal/module.js';
import { checkCiphertextBytes } from '../runtime/seal/serialized.js';
import { LevelZeroEncryptor } from '../runtime/seal/zero-encryptor.js';
import { wrapCiphertext } from '../runtime/ckks/wire.js';
import { bigintResidues } from '../runtime/refresh/integer-mask.js';

const params = makeParameters({ ringDegree: 8192, bitSizes: [60, 40, 40, 60], scale: 2 ** 40 });
const top = topLevel(params);

describe('LevelZeroEncryptor', () => {
  let client: CkksClient;
  beforeAll(async () => {
    client = await sealBackend.createClient(params, { galoisSteps: [], relin: false });
  });
  afterAll(() => client.dispose());

  it('encrypts zero at each level with the noise of a textbook RLWE encryption mod Q_l, fresh each time', async () => {
    const seal = await loadSeal();
    const info = makeSealContext(seal, params);
    const shape = sealShape(info, params);
    const publicKey = client.evaluationKeys().publicKey;
    const zeros = new LevelZeroEncryptor(seal, params, info, shape, publicKey);
    const n = params.ringDegree;
    // Noise u e + e_1 s + e_0: per coefficient variance 10.5 (1 + 4N/3) (u, s ternary: 2/3; errors
    // centered binomial: 21/2); a decoded slot's real part has variance N/2 times that, over the scale.
    const predicted = Math.sqrt(((n / 2) * 10.5 * (1 + (4 * n) / 3))) / 2 ** 30;
    const decrypted = (ct: InstanceType<typeof seal.Ciphertext>) => {
      ct.setScale(2 ** 30);
      const bytes = ct.saveToArray(seal.ComprModeType.none) as Uint8Array;
      return { bytes, values: client.decrypt(wrapCiphertext('seal', parametersId(params), bytes)) };
    };
    const rms = (v: Float64Array) => Math.sqrt(v.reduce((a, x) => a + x * x, 0) / v.length);
    for (let level = 0; level <= top; level++) {
      const a = new seal.Ciphertext();
      const b = new seal.Ciphertext();
      zeros.encryptZero(level, a);
      zeros.encryptZero(level, b);
      const [pa, pb] = [decrypted(a), decrypted(b)];
      const info2 = checkCiphertextBytes(pa.bytes, shape, 'zero');
      expect(info2.level, `level ${level}`).toBe(level);
      // Zero within the predicted noise (4096 slots: the RMS is within a few percent of its expectation).
      expect(rms(pa.values) / predicted, `level ${level}`).toBeGreaterThan(0.9);
      expect(rms(pa.values) / predicted, `level ${level}`).toBeLessThan(1.1);
      // Fresh: the two zeros share almost no c1 word, and their noises differ.
      const c1 = (bytes: Uint8Array) => new BigUint64Array(bytes.slice(info2.dataOffset + 4 * info2.words, info2.dataOffset + 8 * info2.words).buffer);
      const [ca, cb] = [c1(pa.bytes), c1(pb.bytes)];
      expect(ca.filter((w, i) => w === cb[i]!).length).toBeLessThan(4);
      expect(pa.values[0]).not.toBe(pb.values[0]);
      for (const c of [a, b]) c.delete();
    }
    zeros.dispose();
  });

  it('encrypts an integer polynomial given as residues: it decrypts to the polynomial plus that noise', async () => {
    const seal = await loadSeal();
    const info = makeSealContext(seal, params);
    const shape = sealShape(info, params);
    const zeros = new LevelZeroEncryptor(seal, params, info, shape, client.evaluationKeys().publicKey);
    const n = params.ringDegree;
    // The polynomial 2^30 * 3 (constant): every slot decodes to 3 at scale 2^30.
    const coeffs = Array.from({ length: n }, (_, i) => (i === 0 ? 3n << 30n : 0n));
    for (const level of [0, top]) {
      const message = bigintResidues(coeffs, params.primes.slice(0, level + 1), n);
      const ct = new seal.Ciphertext();
      zeros.encryptZero(level, ct, message);
      ct.setScale(2 ** 30);
      const values = client.decrypt(wrapCiphertext('seal', parametersId(params), ct.saveToArray(seal.ComprModeType.none) as Uint8Array));
      const worst = values.reduce((m, x) => Math.max(m, Math.abs(x - 3)), 0);
      expect(worst, `level ${level}`).toBeGreaterThan(0);
      expect(worst, `level ${level}`).toBeLessThan(1e-3);
      ct.delete();
      expect(() => zeros.encryptZero(level, new seal.Ciphertext(), message.subarray(n))).toThrow(/residues at level/);
    }
    zeros.dispose();
  });
});
