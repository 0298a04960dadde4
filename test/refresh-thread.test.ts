// The key holder's refresh rounds on a thread of the client's own (runtime/seal/refresh-thread.ts): the
// thread rebuilds the client from its secret key and runs the same refreshExact; the evaluator's thread
// makes the next round's zeros while it waits. Same values as on one thread, every round with work to do
// meanwhile on the thread (the others on the calling thread), each zero made ahead used once; a value
// beyond its bound stops the run with the key holder's error, naming the refresh point, and the thread
// answers the next request, also after the caller's own work failed.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FhecError } from '../ir/errors.js';
import { fheChain, makeParameters, topLevel } from '../ir/ckks/params.js';
import { manageScales } from '../passes/fhe/manage/manage-scales.js';
import { placeRefreshes } from '../passes/fhe/refresh/refresh-placement.js';
import type { RefreshThreadStats } from '../runtime/backend.js';
import { encryptInputs, executeProgram } from '../runtime/ckks/execute.js';
import { RefreshKeyHolder } from '../runtime/refresh/key-holder.js';
import { MaskedRefresher } from '../runtime/refresh/refresher.js';
import { refreshStages } from '../runtime/refresh/rounds.js';
import { sealPair, type SealPair } from './helpers/seal-pair.js';
import { signComposition, signCompositionOf } from './helpers/sign-composition.js';

const params = makeParameters({ ringDegree: 8192, bitSizes: [60, 40, 40, 60], scale: 2 ** 40 });
const slots = params.ringDegree / 2;
const top = topLevel(params);
const xs = Float64Array.from({ length: slots }, (_, i) => 0.9 * Math.sin(0.37 * i));


const rms = (a: ArrayLike<number>, b: ArrayLike<number>) => Math.sqrt(Array.from(a, (v, i) => (v - b[i]!) ** 2).reduce((s, v) => s + v, 0) / a.length);

describe("the key holder's refresh thread on SEAL", () => {
  let pair: SealPair;
  let thread: RefreshThreadStats;
  beforeAll(async () => {
    pair = await sealPair(params);
    thread = await pair.client.startRefreshThread!();
  });
  afterAll(() => pair.dispose());

  it('refreshes every round on the thread while the evaluator makes the next masks: same values, each mask used once', () => {
    const { client, ev } = pair;
    const placed = placeRefreshes(signComposition(5, slots), { levels: top - 1 });
    const managed = manageScales(placed.program, { chain: fheChain(params), topScale: params.scale, inputLevel: top });
    const stages = refreshStages(managed).stages.filter((s) => s.refreshes.length > 0);
    const before = { ...thread };
    const keyHolder = new RefreshKeyHolder(client, 'unchecked');
    const refresher = new MaskedRefresher(ev, keyHolder.transport(), { mask: { valueBound: 1 } });
    // (Ops set aside for the waits, program-runtime.ts, would give the last round work too: not here.)
    const run = executeProgram(managed, ev, encryptInputs(managed, client, { x: xs }), { refresher, deferOps: false });
    const want = xs.map((v) => signCompositionOf(v, 5));
    expect(rms(client.decrypt(run.outputs.get('y')!), want)).toBeLessThan(1e-6);
    // Every round but the last went to the thread; the last (no next round's masks to make) ran here.
    const last = stages[stages.length - 1]!.refreshes.length;
    expect(thread.rounds - before.rounds).toBe(stages.length - 1);
    expect(thread.ciphertexts - before.ciphertexts).toBe(placed.count - last);
    expect(thread.ms).toBeGreaterThan(before.ms);
    // The calling thread made the masks of every round after the first while the thread worked.
    const ahead = placed.count - stages[0]!.refreshes.length;
    expect(refresher.preparedMasks).toEqual({ made: ahead, supplied: 0, used: ahead });
  });

  it('answers on the calling thread when the caller has nothing to do meanwhile (the thread would only add a hop)', () => {
    const { client, ev } = pair;
    const keyHolder = new RefreshKeyHolder(client, 'unchecked');
    const inputs = [0, 1, 2].map((k) => pair.atLevel(1 + (k % 2), xs.map((v) => v * (k + 1) * 0.3)));
    const before = { ...thread };
    const fresh = new MaskedRefresher(ev, (bytes) => keyHolder.handle(bytes), { mask: { valueBound: 1 } }).refreshMany(inputs.map((ct, k) => ({ ct, scale: params.scale, name: `v${k}` })));
    expect(thread.rounds - before.rounds).toBe(0);
    fresh.forEach((h, k) => expect(rms(client.decrypt(ev.saveCiphertext(h)), xs.map((v) => v * (k + 1) * 0.3))).toBeLessThan(1e-6));
    for (const h of [...inputs, ...fresh]) ev.free(h);
  });

  it('takes the answer off the port when the work done while waiting fails, so the next round gets its own', () => {
    const { client, ev } = pair;
    const keyHolder = new RefreshKeyHolder(client, 'unchecked');
    const a = pair.atLevel(2, xs);
    const failing = new MaskedRefresher(ev, (bytes) => keyHolder.handle(bytes, () => { throw new Error('out of memory while waiting'); }), { mask: { valueBound: 1 } });
    expect(() => failing.refreshMany([{ ct: a, scale: params.scale, name: 'a' }])).toThrow(/out of memory while waiting/);
    const b = pair.atLevel(2, xs.map((v) => -v));
    const [fresh] = new MaskedRefresher(ev, (bytes) => keyHolder.handle(bytes, () => undefined), { mask: { valueBound: 1 } }).refreshMany([{ ct: b, scale: params.scale, name: 'b' }]);
    expect(rms(client.decrypt(ev.saveCiphertext(fresh!)), xs.map((v) => -v))).toBeLessThan(1e-6);
    for (const h of [a, b, fresh!]) ev.free(h);
  });

  it("stops on a value beyond its bound with the key holder's error naming the point, then answers the next request", () => {
    const { client, ev } = pair;
    const keyHolder = new RefreshKeyHolder(client, 'unchecked');
    // |x| near 2^58 against a bound of 1: coefficients near 2^97 exceed what the mask allows (W + B' = 2^94 + 2^41).
    const x = pair.atLevel(2, xs.map((v) => v * 2 ** 58));
    let error: unknown;
    try {
      // Work to do meanwhile: the round goes to the thread, whose error must come back whole.
      new MaskedRefresher(ev, (bytes) => keyHolder.handle(bytes, () => undefined), { mask: { valueBound: 1 } }).refreshMany([{ ct: x, scale: params.scale, name: 'h7' }]);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(FhecError);
    expect((error as FhecError).message).toMatch(/^refresh of h7: a masked coefficient reached 2\^[\d.]+, beyond the 2\^[\d.]+ a value within its bound 1 allows/);
    expect((error as FhecError).where.node).toBe('%h7');
    const good = pair.atLevel(2, xs);
    const before = thread.rounds;
    const [fresh] = new MaskedRefresher(ev, (bytes) => keyHolder.handle(bytes, () => undefined), { mask: { valueBound: 1 } }).refreshMany([{ ct: good, scale: params.scale, name: 'h7' }]);
    expect(thread.rounds).toBe(before + 1);
    expect(rms(client.decrypt(ev.saveCiphertext(fresh!)), xs)).toBeLessThan(1e-6);
    ev.free(x);
    ev.free(good);
    ev.free(fresh!);
  });
});
