// Encryptions of zero made at the level they are used (runtime/seal/zero-encryptor.ts): each decrypts
// to zero under the client's secret key with the noise of SEAL's own top-level encryption brought down
// to that level, is at that level, and is fresh (a new c1 each time).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeParameters, parametersId, topLevel } from '../ir/ckks/params.js';
import type { CkksClient } from '../runtime/backend.js';
import { sealBackend } from '../runtime/seal/backend.js';
import { loadSeal, makeSealContext, sealShape } from '../runtime/seal/module.js';
import { checkCiphertextBytes } from '../runtime/seal/serialized.js';
import { LevelZeroEncryptor } from '../runtime/seal/zero-encryptor.js';
import { wrapCiphertext } from '../runtime/ckks/wire.js';

const params = makeParameters({ ringDegree: 8192, bitSizes: [60, 40, 40, 60], scale: 2 ** 40 });
const top = topLevel(params);

describe('LevelZeroEncryptor', () => {
  let client: CkksClient;
  beforeAll(async () => {
    client = await sealBackend.createClient(params, { galoisSteps: [], relin: false });
  });
  afterAll(() => client.dispose());

  it('encrypts zero at each level with the noise of a top-level encryption, fresh each time', async () => {
    const seal = await loadSeal();
    const info = makeSealContext(seal, params);
    const shape = sealShape(info, params);
    const publicKey = client.evaluationKeys().publicKey;
    const zeros = new LevelZeroEncryptor(seal, params, info, shape, publicKey);
    // SEAL's own: encrypt at the top, drop primes down to the level.
    const pk = new seal.PublicKey();
    pk.loadFromArray(info.context, publicKey);
    const reference = new seal.Encryptor(info.context, pk);
    const ev = new seal.Evaluator(info.context);
    const peak = (ct: InstanceType<typeof seal.Ciphertext>) => {
      ct.setScale(2 ** 30);
      const bytes = ct.saveToArray(seal.ComprModeType.none) as Uint8Array;
      return { bytes, peak: Math.max(...client.decrypt(wrapCiphertext('seal', parametersId(params), bytes)).map(Math.abs)) };
    };
    for (let level = 0; level <= top; level++) {
      const a = new seal.Ciphertext();
      const b = new seal.Ciphertext();
      const r = new seal.Ciphertext();
      zeros.encryptZero(level, a);
      zeros.encryptZero(level, b);
      reference.encryptZero(r);
      if (level < top) ev.cipherModSwitchToInplace(r, info.levels[level]!);
      const [pa, pb, pr] = [peak(a), peak(b), peak(r)];
      expect(checkCiphertextBytes(pa.bytes, shape, 'zero').level, `level ${level}`).toBe(level);
      // Zero within noise: decrypted at scale 2^30, SEAL's top-level zero peaks near 1e-6 at N=8192.
      expect(pa.peak).toBeGreaterThan(0);
      expect(pa.peak, `level ${level}`).toBeLessThan(4 * pr.peak);
      expect(pr.peak, `level ${level}`).toBeLessThan(4 * pa.peak);
      expect(pa.peak).toBeLessThan(1e-4);
      // Fresh: the two zeros share no c1 word in any position range.
      const info2 = checkCiphertextBytes(pa.bytes, shape, 'zero');
      const c1 = (bytes: Uint8Array) => new BigUint64Array(bytes.slice(info2.dataOffset + 4 * info2.words, info2.dataOffset + 8 * info2.words).buffer);
      const [ca, cb] = [c1(pa.bytes), c1(pb.bytes)];
      expect(ca.filter((w, i) => w === cb[i]!).length).toBeLessThan(4);
      for (const c of [a, b, r]) c.delete();
    }
    zeros.dispose();
    reference.delete();
    pk.delete();
    ev.delete();
  });
});
