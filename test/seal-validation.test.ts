// Every serialized SEAL object that crosses between client and evaluator is checked in TypeScript
// before SEAL (4.1.2, whose loader is not hardened) sees it. 1,000 seeded mutations of each kind -
// ciphertext, public key, relinearization keys, Galois keys, refresh request, refresh reply - give an
// FhecError or a well-formed object, never another exception or a crash, and the other side keeps
// working afterwards.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FhecError } from '../ir/errors.js';
import { makeParameters, topLevel } from '../ir/ckks/params.js';
import type { CkksClient, CkksEvaluator, EvaluationKeys } from '../runtime/backend.js';
import { unwrapCiphertext } from '../runtime/ckks/wire.js';
import { RefreshKeyHolder } from '../runtime/refresh/key-holder.js';
import { MaskedRefresher } from '../runtime/refresh/refresher.js';
import { sealBackend } from '../runtime/seal/backend.js';
import { loadSeal, makeSealContext, sealCall, sealShape } from '../runtime/seal/module.js';
import { checkCiphertextBytes, checkKSwitchKeysBytes, checkPublicKeyBytes, type SealShape } from '../runtime/seal/serialized.js';
import { parametersId } from '../ir/ckks/params.js';

// Small ring for speed: the checks do not depend on N.
const params = makeParameters({ ringDegree: 4096, bitSizes: [36, 36, 37], scale: 2 ** 30 });
const slots = params.ringDegree / 2;
const top = topLevel(params);
const xs = Float64Array.from({ length: slots }, (_, i) => 0.5 * Math.cos(0.1 * i));
const RUNS = 1000;

/** Seeded mutations: bit flips, byte and word overwrites, truncation, extension, chunk duplication. */
function mutator(seed: number) {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
  const pos = (n: number) => (next() % 2 === 0 ? next() % Math.min(n, 256) : next() % n);
  return (bytes: Uint8Array): Uint8Array => {
    const b = bytes.slice();
    switch (next() % 7) {
      case 0:
        b[pos(b.length)]! ^= 1 << (next() % 8);
        return b;
      case 1:
        for (let i = 0, k = 1 + (next() % 8); i < k; i++) b[pos(b.length)] = next() & 0xff;
        return b;
      case 2: {
        const at = pos(b.length - 8);
        const word = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff].map((v, i) => (next() % 3 === 0 ? 0 : i < 4 ? next() & 0xff : v));
        b.set(word, at);
        return b;
      }
      case 3:
        return b.subarray(0, next() % b.length);
      case 4: {
        const out = new Uint8Array(b.length + 1 + (next() % 64));
        out.set(b);
        for (let i = b.length; i < out.length; i++) out[i] = next() & 0xff;
        return out;
      }
      case 5: {
        const at = pos(b.length);
        const len = Math.min(1 + (next() % 64), b.length - at);
        const out = new Uint8Array(b.length + len);
        out.set(b.subarray(0, at + len));
        out.set(b.subarray(at), at + len);
        return out;
      }
      default: {
        // An 8-byte size field in the first 256 bytes set to a plausible-but-wrong value.
        const at = 8 * (next() % 32);
        if (at + 8 <= b.length) new DataView(b.buffer, b.byteOffset).setBigUint64(at, BigInt(next() % 100000), true);
        return b;
      }
    }
  };
}

/** Runs `use` on RUNS mutations of `bytes`: each either succeeds or throws an FhecError. */
function fuzz(name: string, seed: number, bytes: Uint8Array, use: (b: Uint8Array) => void): { rejected: number; accepted: number } {
  const mutate = mutator(seed);
  let rejected = 0;
  let accepted = 0;
  for (let i = 0; i < RUNS; i++) {
    const m = mutate(bytes);
    try {
      use(m);
      accepted++;
    } catch (e) {
      if (!(e instanceof FhecError)) throw new Error(`${name} mutation ${i}: ${String(e)} is not an FhecError`);
      rejected++;
    }
  }
  console.log(`${name}: ${RUNS} mutations, ${rejected} rejected with an FhecError, ${accepted} well-formed`);
  return { rejected, accepted };
}

describe('validated deserialization of SEAL objects', () => {
  let client: CkksClient;
  let ev: CkksEvaluator;
  let keys: EvaluationKeys;
  let shape: SealShape;
  const steps = [1, 4];

  beforeAll(async () => {
    client = await sealBackend.createClient(params, { galoisSteps: steps, relin: true });
    keys = client.evaluationKeys();
    ev = await sealBackend.createEvaluator(params, structuredClone(keys));
    shape = sealShape(makeSealContext(await loadSeal(), params), params);
  });
  afterAll(() => {
    ev.dispose();
    client.dispose();
  });

  it('accepts what SEAL wrote, and names what is wrong otherwise', () => {
    const ct = unwrapCiphertext(client.encrypt(xs, top, params.scale), 'seal', parametersId(params));
    expect(checkCiphertextBytes(ct, shape, 'ciphertext').level).toBe(top);
    checkPublicKeyBytes(keys.publicKey, shape);
    checkKSwitchKeysBytes(keys.relinKeys!, shape, 'relin');
    checkKSwitchKeysBytes(keys.galoisKeys!, shape, 'galois', steps);
    expect(() => checkKSwitchKeysBytes(keys.galoisKeys!, shape, 'galois', [1])).toThrow(/not announced/);
    expect(() => checkKSwitchKeysBytes(keys.galoisKeys!, shape, 'galois', [1, 4, 8])).toThrow(/missing/);
    expect(() => checkCiphertextBytes(ct, shape, 'ciphertext', { level: 0 })).toThrow(/at level 1, expected 0/);
    const bad = ct.slice();
    bad[bad.length - 1] = 0xff; // top byte of the last coefficient: beyond its prime
    expect(() => checkCiphertextBytes(bad, shape, 'ciphertext')).toThrow(/coefficient 4095 of polynomial 1 is not below its prime/);
    const compressed = ct.slice();
    compressed[5] = 2;
    expect(() => checkCiphertextBytes(compressed, shape, 'ciphertext')).toThrow(/compression mode 2/);
    expect(() => checkCiphertextBytes(ct.subarray(0, 100), shape, 'ciphertext')).toThrow(/does not fit|truncated/);
  });

  it('ciphertexts: 1,000 mutations loaded by the evaluator and decrypted by the client', () => {
    const good = client.encrypt(xs, top, params.scale);
    const r1 = fuzz('evaluator ciphertext', 11, good, (b) => ev.free(ev.loadCiphertext(b)));
    const r2 = fuzz('client ciphertext', 12, good, (b) => void client.decrypt(b));
    expect(r1.rejected).toBeGreaterThan(RUNS / 2);
    expect(r2.rejected).toBeGreaterThan(RUNS / 2);
    expect(Math.max(...client.decrypt(ev.saveCiphertext(ev.loadCiphertext(good))).map((v, i) => Math.abs(v - xs[i]!)))).toBeLessThan(1e-5);
  });

  it('keys: 1,000 mutations of each kind checked, and loaded by SEAL when the check passes', async () => {
    const seal = await loadSeal();
    const info = makeSealContext(seal, params);
    const load = (make: () => { loadFromArray(c: unknown, b: Uint8Array): void; delete(): void }, b: Uint8Array) => {
      const k = make();
      try {
        sealCall(seal, 'key load', () => k.loadFromArray(info.context, b));
      } finally {
        k.delete();
      }
    };
    const results = [
      fuzz('public key', 21, keys.publicKey, (b) => {
        checkPublicKeyBytes(b, shape);
        load(() => new seal.PublicKey(), b);
      }),
      fuzz('relinearization keys', 22, keys.relinKeys!, (b) => {
        checkKSwitchKeysBytes(b, shape, 'relin');
        load(() => new seal.RelinKeys(), b);
      }),
      fuzz('Galois keys', 23, keys.galoisKeys!, (b) => {
        checkKSwitchKeysBytes(b, shape, 'galois', steps);
        load(() => new seal.GaloisKeys(), b);
      }),
    ];
    for (const r of results) expect(r.rejected).toBeGreaterThan(RUNS / 2);
    // The evaluator's constructor runs the same checks: a mutated key is a clean error there too.
    const broken = keys.relinKeys!.slice();
    broken[40] ^= 0x10;
    await expect(sealBackend.createEvaluator(params, { ...keys, relinKeys: broken })).rejects.toThrow(FhecError);
    info.context.delete();
  });

  it('refresh requests and replies: 1,000 mutations each, and the protocol keeps working', () => {
    let ct = ev.loadCiphertext(client.encrypt(xs, top, params.scale));
    // This small chain (72 bits at the top) carries a 20-bit mask; the checks do not depend on it.
    const holder = new RefreshKeyHolder(client, 'unchecked', 20);
    const policy = { mask: { valueBound: 1, hidingBits: 20, minHidingBits: 20 } };
    let request: Uint8Array | undefined;
    let reply: Uint8Array | undefined;
    const record = new MaskedRefresher(ev, (b) => {
      request = b;
      reply = holder.handle(b);
      return reply;
    }, policy);
    ev.free(record.refresh(ct, params.scale, 'x'));
    const r1 = fuzz('refresh request', 31, request!, (b) => void holder.handle(b));
    const r2 = fuzz('refresh reply', 32, reply!, (b) => ev.free(new MaskedRefresher(ev, () => b, policy).refresh(ct, params.scale, 'x')));
    expect(r1.rejected).toBeGreaterThan(RUNS / 2);
    expect(r2.rejected).toBeGreaterThan(RUNS / 2);
    const out = new MaskedRefresher(ev, holder.transport(), policy).refresh(ct, params.scale, 'x');
    expect(Math.max(...client.decrypt(ev.saveCiphertext(out)).map((v, i) => Math.abs(v - xs[i]!)))).toBeLessThan(1e-4);
    ev.free(out);
    ev.free(ct);
  });
});
