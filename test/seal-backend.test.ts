import { describe, expect, it } from 'vitest';
import { FhecError } from '../ir/errors.js';
import { FheBuilder } from '../ir/fhe/index.js';
import { manageScales } from '../passes/fhe/manage/manage-scales.js';
import { executeProgram, runProgram } from '../runtime/ckks/execute.js';
import { fheChain, makeParameters, selectParameters } from '../ir/ckks/params.js';
import { coeffModulusPrimes } from '../ir/ckks/primes.js';
import { loadSeal } from '../runtime/seal/module.js';
import { sealBackend } from '../runtime/seal/backend.js';
import { simBackend } from '../runtime/sim/backend.js';

const params = selectParameters({ depth: 2 });
const slots = params.ringDegree / 2;

/** Every object reachable from `root` (own properties, a few levels deep). */
function reachable(root: object, depth = 4): unknown[] {
  const seen = new Set<unknown>();
  const walk = (v: unknown, d: number) => {
    if (v === null || typeof v !== 'object' || seen.has(v) || d < 0) return;
    seen.add(v);
    for (const k of Object.getOwnPropertyNames(v)) walk((v as Record<string, unknown>)[k], d - 1);
  };
  walk(root, depth);
  return [...seen];
}

describe('seal backend', () => {
  it('gives SEAL the primes the parameter model computed', async () => {
    const seal = await loadSeal();
    for (const [n, bits] of [[8192, [60, 40, 40, 60]], [16384, [60, 40, 40, 40, 40, 40, 40, 40, 60]], [4096, [30, 20, 30]]] as const) {
      const got = seal.jsArrayFromVecModulus(seal.CoeffModulus.Create(n, Int32Array.from(bits))) as bigint[];
      expect(got).toEqual(coeffModulusPrimes(n, bits));
    }
  });

  it('builds the evaluator from public material only: no secret key anywhere in it', async () => {
    const seal = await loadSeal();
    const client = await sealBackend.createClient(params, { galoisSteps: [1, -3], relin: true });
    const keys = client.evaluationKeys();
    expect(Object.keys(keys).sort()).toEqual(['backend', 'galoisKeys', 'galoisSteps', 'parametersId', 'productKey', 'publicKey', 'relinKeys']);
    // The bundle survives a structured clone (as across a worker or process boundary).
    const ev = await sealBackend.createEvaluator(params, structuredClone(keys));
    const objs = reachable(ev);
    expect(objs.length).toBeGreaterThan(3);
    for (const o of objs) {
      expect(o instanceof seal.SecretKey).toBe(false);
      expect(o instanceof seal.Decryptor).toBe(false);
      expect(o instanceof seal.KeyGenerator).toBe(false);
    }
    expect('decrypt' in ev).toBe(false);
    // It still evaluates: rotate by 1 and by -3 on ciphertexts from the client.
    const xs = Float64Array.from({ length: slots }, (_, i) => Math.cos(i));
    const x = ev.loadCiphertext(client.encrypt(xs, 2, params.scale));
    const y = client.decrypt(ev.saveCiphertext(ev.rotate(x, -3)));
    for (const i of [0, 5, 100]) expect(Math.abs(y[i]! - xs[(i - 3 + slots) % slots]!)).toBeLessThan(1e-5);
    expect(() => ev.rotate(x, 2)).toThrow(/no Galois key/);
    ev.dispose();
    client.dispose();
  });

  it('rejects keys from other parameters and ciphertexts for another context', async () => {
    const other = makeParameters({ ringDegree: 8192, bitSizes: [60, 40, 60] });
    const client = await sealBackend.createClient(params, { galoisSteps: [], relin: true });
    const otherClient = await sealBackend.createClient(other, { galoisSteps: [], relin: false });
    await expect(sealBackend.createEvaluator(params, otherClient.evaluationKeys())).rejects.toThrow(/other parameters/);
    // Same parameters id but forged key bytes from the other context: SEAL's own check, as an FhecError.
    const forged = { ...otherClient.evaluationKeys(), parametersId: client.evaluationKeys().parametersId };
    await expect(sealBackend.createEvaluator(params, forged)).rejects.toThrow(FhecError);
    const ev = await sealBackend.createEvaluator(params, client.evaluationKeys());
    const foreign = otherClient.encrypt([1, 2, 3], 1, 2 ** 40);
    expect(() => ev.loadCiphertext(foreign)).toThrow(/another context/);
    expect(() => ev.loadCiphertext(new Uint8Array([1, 2, 3, 4, 5, 6, 7]))).toThrow(/not a fhec ciphertext/);
    const simCt = (await simBackend.createClient(params, { galoisSteps: [], relin: false })).encrypt([1], 2, 2 ** 40);
    expect(() => ev.loadCiphertext(simCt)).toThrow(/sim backend/);
    expect(() => client.decrypt(foreign)).toThrow(/another context/);
    ev.dispose();
    client.dispose();
    otherClient.dispose();
  });

  it('turns SEAL exceptions into FhecErrors with SEAL\'s message', async () => {
    const client = await sealBackend.createClient(params, { galoisSteps: [], relin: true });
    const ev = await sealBackend.createEvaluator(params, client.evaluationKeys());
    const a = ev.loadCiphertext(client.encrypt([1], 2, 2 ** 40));
    const b = ev.loadCiphertext(client.encrypt([1], 1, 2 ** 40));
    expect(() => ev.add(a, b)).toThrow(/SEAL add failed: .*mismatch/);
    ev.dispose();
    client.dispose();
  });

  it('executes x * 0 (SEAL refuses transparent ciphertexts; the evaluator encrypts a zero instead)', async () => {
    const layout = { length: 4, tokens: 1, stride: slots, period: 4, copies: slots / 4 };
    const b = new FheBuilder('zero', slots);
    const x = b.input('x', layout);
    b.output('y', b.addConst(b.mulConst(x, { kind: 'splat', value: 0 }), { kind: 'splat', value: 2.5 }), layout);
    const m = manageScales(b.build(), { chain: fheChain(params), topScale: params.scale });
    const r = await runProgram(m, params, sealBackend, { x: [1, 2, 3, 4] });
    for (const v of r.outputs.get('y')!.values) expect(v).toBeCloseTo(2.5, 6);
  });

  it('checks input ciphertexts against the program before running', async () => {
    const layout = { length: 4, tokens: 1, stride: slots, period: 4, copies: slots / 4 };
    const b = new FheBuilder('p', slots);
    b.output('y', b.negate(b.input('x', layout)), layout);
    const m = manageScales(b.build(), { chain: fheChain(params), topScale: params.scale, inputLevel: 2 });
    const client = await sealBackend.createClient(params, { galoisSteps: [], relin: false });
    const ev = await sealBackend.createEvaluator(params, client.evaluationKeys());
    const wrongLevel = client.encrypt([1, 2, 3, 4], 1, m.ops[0]!.result!.type.scale!);
    expect(() => executeProgram(m, ev, new Map([['x', wrongLevel]]))).toThrow(/level 1, the program expects 2/);
    expect(() => executeProgram(m, ev, new Map())).toThrow(/no ciphertext given for input "x"/);
    ev.dispose();
    client.dispose();
  });
});
