// Refresh masks made ahead on a helper thread (runtime/seal/mask-supply.ts): each Enc(r) at the level asked
// with r of the width asked, refreshes that take them give back the same values, every mask is used once
// (the key holder never sees one c1 twice), and with the thread gone the evaluator masks on its own. Also
// the zeros an evaluation worker makes while it waits for the key holder (CkksEvaluator.prepareZeros).
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

describe('refresh masks made on a helper thread (SEAL, mask-supply.ts)', () => {
  let pair: SealPair;
  let client: CkksClient;
  let ev: CkksEvaluator;
  beforeAll(async () => {
    pair = await sealPair(params, { maskSupply: true });
    ({ client, ev } = pair);
  });
  afterAll(() => pair.dispose());

  /** Waits (this thread idle, as while the key holder answers) until the supply has sent `n` masks. */
  const arrived = async (n: number) => {
    for (let t = 0; t < 100 && ev.maskSupply!.stats.delivered < n; t++) {
      await new Promise((r) => setTimeout(r, 50));
      // collect() is what the stock calls; the masks taken here are freed (only the count is wanted).
      for (const m of ev.maskSupply!.collect()) {
        ev.free(m.masked);
        ev.free(m.unmask);
      }
    }
  };

  it('makes Enc(r) at the level asked with r uniform over [-W, W] (its decoded size as predicted), one fresh r per mask', async () => {
    const width = 1n << 70n;
    const scale = 2 ** 40;
    ev.maskSupply!.request([0, 1].map((i) => ({ key: `k${i}`, level: 1, scale, width, toLevel: topLevel(params), toScale: scale, ratio: { num: 1n, den: 1n } })));
    let got: { masked: ReturnType<CkksEvaluator['add']>; unmask: ReturnType<CkksEvaluator['add']> }[] = [];
    for (let t = 0; t < 100 && got.length < 2; t++) {
      await new Promise((r) => setTimeout(r, 50));
      got = [...got, ...ev.maskSupply!.collect()];
    }
    expect(got).toHaveLength(2);
    // A slot's real part sums N terms r_j cos(.): variance (N / 2) W^2 / 3 over the scale squared.
    const predicted = Math.sqrt(((params.ringDegree / 2) * Number(width) ** 2) / 3) / scale;
    const decoded = got.map((m) => client.decrypt(ev.saveCiphertext(m.masked)));
    for (const [i, v] of decoded.entries()) {
      expect(ev.levelOf(got[i]!.masked)).toBe(1);
      const rms = Math.sqrt(v.reduce((a, x) => a + x * x, 0) / v.length);
      expect(rms / predicted, `mask ${i}`).toBeGreaterThan(0.9);
      expect(rms / predicted, `mask ${i}`).toBeLessThan(1.1);
    }
    // Two masks, two independent r: their decodings share nothing.
    expect(maxErr(decoded[0]!, decoded[1]!)).toBeGreaterThan(predicted);
    for (const m of got) {
      ev.free(m.masked);
      ev.free(m.unmask);
    }
  });

  it('refreshes with masks made on the thread: same values, a fresh c1 for every ciphertext, the mask r never on this thread', async () => {
    const { refresher, seen } = await recordingRefresher(ev, client);
    const levels = [1, 2, 1, 2, 1, 1];
    const values = levels.map((_, j) => Float64Array.from({ length: slots }, (_, i) => 0.8 * Math.sin(0.1 * i + j)));
    const cts = levels.map((l, j) => pair.atLevel(l, values[j]!));
    const before = ev.maskSupply!.stats.delivered;
    // Asked for ahead (as the program runtime does for the rounds to come), made while this thread waits.
    expect(refresher.prepare(levels.map((l, j) => ({ name: `a${j}`, level: l, scale: ev.scaleOf(cts[j]!), toScale: params.scale })))).toBe(levels.length);
    await new Promise((r) => setTimeout(r, 1500));
    const out = refresher.refreshMany(levels.map((_, j) => ({ ct: cts[j]!, scale: params.scale, name: `a${j}` })));
    expect(ev.maskSupply!.stats.delivered - before).toBe(levels.length);
    expect(refresher.preparedMasks).toEqual({ made: 0, supplied: levels.length, used: levels.length });
    for (const [j, h] of out.entries()) {
      expect(ev.levelOf(h)).toBe(topLevel(params));
      expect(maxErr(client.decrypt(ev.saveCiphertext(h)), values[j]!), `item ${j}`).toBeLessThan(1e-6);
      ev.free(h);
    }
    for (const h of cts) ev.free(h);
    expect(new Set(seen).size).toBe(levels.length);
    // Nothing asked for is left over: a second round of the same shapes asks again.
    expect(refresher.prepare([{ name: 'a0', level: 1, scale: ev.scaleOf(pair.atLevel(1, values[0]!)), toScale: params.scale }])).toBe(1);
    await arrived(before + levels.length + 1);
  });

  it('goes on masking on this thread when the helper thread is gone', async () => {
    const supply = (ev as unknown as { masks: { worker: { terminate(): Promise<number> }; failed?: string } }).masks;
    await supply.worker.terminate();
    await new Promise((r) => setTimeout(r, 100));
    expect(supply.failed).toMatch(/exited/);
    expect(ev.maskSupply!.failed).toMatch(/exited/);
    const holder = new RefreshKeyHolder(client, 'unchecked');
    const refresher = new MaskedRefresher(ev, holder.transport(), { mask: { valueBound: 1 } });
    const values = Float64Array.from({ length: slots }, (_, i) => 0.5 * Math.cos(0.2 * i));
    const ct = pair.atLevel(1, values);
    // The stock makes the masks itself now.
    expect(refresher.prepare([{ name: 'c0', level: 1, scale: ev.scaleOf(ct), toScale: params.scale }])).toBe(1);
    const out = refresher.refreshMany([{ ct, scale: params.scale, name: 'c0' }]);
    expect(refresher.preparedMasks).toEqual({ made: 1, supplied: 0, used: 1 });
    expect(maxErr(client.decrypt(ev.saveCiphertext(out[0]!)), values)).toBeLessThan(1e-6);
    for (const h of [ct, out[0]!]) ev.free(h);
  });
});
