// SEAL's slot rotation as a permutation of NTT-form words (runtime/seal/galois.ts): a plaintext's words
// permuted by the table decode to the rotated slots, word for word the coefficient automorphism X -> X^g,
// and agree with SEAL's own rotation of a ciphertext (a key switch) up to its noise.
import { describe, expect, it } from 'vitest';
import { makeParameters, topLevel } from '../ir/ckks/params.js';
import { sealBackend } from '../runtime/seal/backend.js';
import { galoisElement, galoisNttTable, rotateNttWords } from '../runtime/seal/galois.js';
import { loadSeal, makeSealContext, sealShape } from '../runtime/seal/module.js';
import { sealNtt } from '../runtime/seal/ntt.js';
import { buildPlaintextBytes, plaintextWords } from '../runtime/seal/serialized.js';
import { maxAbsDiff } from './helpers/compare.js';

const params = makeParameters({ ringDegree: 8192, bitSizes: [60, 40, 40, 60], scale: 2 ** 40 });
const N = params.ringDegree;
const slots = N / 2;
const values = Float64Array.from({ length: slots }, (_, i) => Math.sin(0.01 * i) + 0.001 * i);
const rotated = (step: number) => Float64Array.from({ length: slots }, (_, i) => values[(((i + step) % slots) + slots) % slots]!);

describe('SEAL rotations as NTT-word permutations', () => {
  it('the table is a permutation, the identity for step 0, and composes like the rotations', () => {
    expect([...galoisNttTable(0, N)]).toEqual(Array.from({ length: N }, (_, i) => i));
    const t = galoisNttTable(5, N);
    expect(new Set(t).size).toBe(N);
    // Rotating by 2 then by 3 is rotating by 5.
    const words = BigUint64Array.from({ length: N }, (_, i) => BigInt(i * 7 + 1));
    expect(rotateNttWords(rotateNttWords(words, N, 2), N, 3)).toEqual(rotateNttWords(words, N, 5));
    expect(galoisElement(-1, N)).toBe(galoisElement(slots - 1, N));
  });

  it('a plaintext rotated on its words decodes to the rotated slots, as the coefficient automorphism gives', async () => {
    const seal = await loadSeal();
    const info = makeSealContext(seal, params);
    const shape = sealShape(info, params);
    const ev = new seal.Evaluator(info.context);
    const encoder = new seal.CKKSEncoder(info.context);
    const level = topLevel(params);
    const pt = new seal.Plaintext();
    encoder.encode(values, params.scale, pt);
    const words = plaintextWords(pt.saveToArray(seal.ComprModeType.none) as Uint8Array);
    const decode = (w: BigUint64Array) => {
      const q = new seal.Plaintext();
      q.loadFromArray(info.context, buildPlaintextBytes({ parmsId: shape.levelIds[level]!, scale: params.scale, words: w }));
      const out = encoder.decodeFloat64(q) as Float64Array;
      q.delete();
      return out;
    };
    const [coeffs] = sealNtt(seal, info, shape, ev, level, params.scale, [words], false);
    for (const step of [1, 3, 7, -1, -5]) {
      const perm = rotateNttWords(words, N, step);
      expect(maxAbsDiff(decode(perm), rotated(step)), `step ${step}`).toBeLessThan(1e-8);
      // X -> X^g on the coefficients (sign flips past X^N), transformed back: the same words.
      const g = galoisElement(step, N);
      const auto = new BigUint64Array(coeffs!.length);
      for (let j = 0; j <= level; j++) {
        const q = params.primes[j]!;
        for (let i = 0; i < N; i++) {
          const c = coeffs![j * N + i]!;
          const at = (i * g) % (2 * N);
          if (at < N) auto[j * N + at] = c;
          else auto[j * N + at - N] = c === 0n ? 0n : q - c;
        }
      }
      const [back] = sealNtt(seal, info, shape, ev, level, params.scale, [auto], true);
      expect(back, `step ${step}`).toEqual(perm);
    }
    pt.delete();
    encoder.delete();
    ev.delete();
  });

  it('agrees with SEAL rotating a ciphertext with its Galois key', async () => {
    const client = await sealBackend.createClient(params, { galoisSteps: [3], relin: false });
    const ev = await sealBackend.createEvaluator(params, client.evaluationKeys());
    try {
      const ct = ev.loadCiphertext(client.encrypt(values, topLevel(params), params.scale));
      const r = ev.rotate(ct, 3);
      expect(maxAbsDiff(client.decrypt(ev.saveCiphertext(r)), rotated(3))).toBeLessThan(1e-5);
      for (const h of [ct, r]) ev.free(h);
    } finally {
      ev.dispose();
      client.dispose();
    }
  });
});
