// Re-randomizing zeros made ahead on a helper thread (runtime/seal/zero-supply.ts): refreshes that take
// them give back the same values, every zero is used once (the key holder never sees one c1 twice), and
// a level with none ready falls back to encrypting inline. The same for zeros an evaluation worker makes
// while it waits for the key holder (CkksEvaluator.prepareZeros).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeParameters, parametersId, topLevel } from '../ir/ckks/params.js';
import type { CkksClient, CkksEvaluator } from '../runtime/backend.js';
import { RefreshKeyHolder } from '../runtime/refresh/key-holder.js';
import { decodeRefreshRequest } from '../runtime/refresh/messages.js';
import { MaskedRefresher } from '../runtime/refresh/refresher.js';
import { loadSeal, makeSealContext, sealShape } from '../runtime/seal/module.js';
import { checkCiphertextBytes } from '../runtime/seal/serialized.js';
import { unwrapCiphertext } from '../runtime/ckks/wire.js';
import { sealPair, type SealPair } from './helpers/seal-pair.js';

const params = makeParameters({ ringDegree: 8192, bitSizes: [60, 40, 40, 60], scale: 2 ** 40 });
const slots = params.ringDegree / 2;

const maxErr = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

/**
 * A refresher whose key holder records the c1 half of every masked ciphertext it is sent (base64), to
 * tell whether two share their randomness.
 */
async function recordingRefresher(ev: CkksEvaluator, client: CkksClient): Promise<{ refresher: MaskedRefresher; seen: string[] }> {
  const shape = sealShape(makeSealContext(await loadSeal(), params), params);
  const c1 = (wrapped: Uint8Array) => {
    const bytes = unwrapCiphertext(wrapped, 'seal', parametersId(params));
    const info = checkCiphertextBytes(bytes, shape, 'ciphertext', { seeded: true });
    const half = (info.words / 2) * 8;
    return Buffer.from(bytes.subarray(info.dataOffset + half, info.dataOffset + 2 * half)).toString('base64');
  };
  const seen: string[] = [];
  const holder = new RefreshKeyHolder(client, 'unchecked');
  const refresher = new MaskedRefresher(
    ev,
    (b) => {
      for (const it of decodeRefreshRequest(b).items) seen.push(c1(it.ciphertext));
      return holder.handle(b);
    },
    { mask: { valueBound: 1 } },
  );
  return { refresher, seen };
}

describe('zeros made ahead while waiting (SEAL, prepareZeros)', () => {
  let pair: SealPair;
  beforeAll(async () => {
    pair = await sealPair(params);
  });
  afterAll(() => pair.dispose());

  it('makes the zeros asked for (bounded per level), and refreshes use each once with the same values', async () => {
    const { client, ev } = pair;
    const stats = () => (ev as unknown as { preparedZerosStats: { made: number; used: number } }).preparedZerosStats;
    expect(ev.prepareZeros!([1, 2, 1])).toBe(3);
    // Already there: nothing more to make for the same levels.
    expect(ev.prepareZeros!([1, 2])).toBe(0);
    const { refresher, seen } = await recordingRefresher(ev, client);
    // Three refreshes at level 1: two take the made zeros, the third encrypts its own; one at level 2.
    const levels = [1, 1, 1, 2];
    const values = levels.map((_, j) => Float64Array.from({ length: slots }, (_, i) => 0.7 * Math.cos(0.05 * i + j)));
    const out = refresher.refreshMany(levels.map((l, j) => ({ ct: pair.atLevel(l, values[j]!), scale: params.scale, name: `p${j}` })));
    expect(stats()).toEqual({ made: 3, used: 3 });
    for (const [j, h] of out.entries()) {
      expect(maxErr(client.decrypt(ev.saveCiphertext(h)), values[j]!), `item ${j}`).toBeLessThan(1e-6);
      ev.free(h);
    }
    expect(new Set(seen).size).toBe(4);
    // Used up: the next refresh at level 1 finds none and encrypts inline.
    const again = refresher.refreshMany([{ ct: pair.atLevel(1, values[0]!), scale: params.scale, name: 'q' }]);
    expect(stats().used).toBe(3);
    ev.free(again[0]!);
  });
});

describe('zero supply (SEAL, helper thread)', () => {
  let pair: SealPair;
  let client: CkksClient;
  let ev: CkksEvaluator;
  beforeAll(async () => {
    pair = await sealPair(params, { zeroSupply: true });
    ({ client, ev } = pair);
  });
  afterAll(() => pair.dispose());

  it('refreshes with zeros from the supply: same values, a fresh c1 for every ciphertext', async () => {
    const { refresher, seen } = await recordingRefresher(ev, client);
    const levels = [1, 2, 1, 2, 1, 1];
    const values = levels.map((_, j) => Float64Array.from({ length: slots }, (_, i) => 0.8 * Math.sin(0.1 * i + j)));
    // The first round finds nothing ready (the supply learns a level when it is first asked for); the
    // thread then makes zeros while this one waits, as it does while an evaluator computes.
    const first = refresher.refreshMany(levels.map((l, j) => ({ ct: pair.atLevel(l, values[j]!), scale: params.scale, name: `a${j}` })));
    expect(ev.zeroSupply!.missed).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 1500));
    const before = ev.zeroSupply!.served;
    const second = refresher.refreshMany(levels.map((l, j) => ({ ct: pair.atLevel(l, values[j]!), scale: params.scale, name: `b${j}` })));
    expect(ev.zeroSupply!.served - before).toBe(levels.length);
    for (const [j, h] of [...first, ...second].entries()) {
      expect(ev.levelOf(h)).toBe(topLevel(params));
      expect(maxErr(client.decrypt(ev.saveCiphertext(h)), values[j % levels.length]!), `item ${j}`).toBeLessThan(1e-6);
      ev.free(h);
    }
    // Twelve masked ciphertexts, twelve different c1s: no zero was used twice.
    expect(seen).toHaveLength(12);
    expect(new Set(seen).size).toBe(12);
  });

  it('goes on with inline zeros when the thread is gone', async () => {
    const supply = (ev as unknown as { zeros: { worker: { terminate(): Promise<number> }; failed?: string } }).zeros;
    await supply.worker.terminate();
    await new Promise((r) => setTimeout(r, 100));
    expect(supply.failed).toMatch(/exited/);
    const holder = new RefreshKeyHolder(client, 'unchecked');
    const refresher = new MaskedRefresher(ev, holder.transport(), { mask: { valueBound: 1 } });
    const values = Float64Array.from({ length: slots }, (_, i) => 0.5 * Math.cos(0.2 * i));
    const missed = ev.zeroSupply!.missed;
    // Level 1 had zeros queued before: those are used up first, then every take is a miss.
    const out = refresher.refreshMany(Array.from({ length: 12 }, (_, j) => ({ ct: pair.atLevel(1, values), scale: params.scale, name: `c${j}` })));
    expect(ev.zeroSupply!.missed).toBeGreaterThan(missed);
    for (const h of out) {
      expect(maxErr(client.decrypt(ev.saveCiphertext(h)), values)).toBeLessThan(1e-6);
      ev.free(h);
    }
  });
});
