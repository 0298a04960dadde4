// The key holder's encryptions of zero for refresh replies, made between rounds (runtime/seal/reply-zeros.ts):
// the stock learns per level how many one round asks for, refills once the thread is idle, hands each
// zero out once, makes one on the spot when none is ready, and stops filling on stop(). On SEAL, a round
// after an idle moment uses the zeros made ahead and its replies decrypt to the refreshed values.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeParameters, topLevel } from '../ir/ckks/params.js';
import { RefreshKeyHolder } from '../runtime/refresh/key-holder.js';
import { MaskedRefresher } from '../runtime/refresh/refresher.js';
import { MAX_AHEAD_PER_LEVEL, ReplyZeros } from '../runtime/seal/reply-zeros.js';
import { sealPair, type SealPair } from './helpers/seal-pair.js';

/** Lets queued setImmediate work run (the stock fills one zero per turn). */
async function idle(turns = 400): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
}

describe('ReplyZeros', () => {
  it('learns the most one round asked per level, refills when idle, hands each zero out once', async () => {
    let made = 0;
    const zeros = new ReplyZeros((level) => Uint8Array.of(level, made++));
    // Nothing ready yet: made on the spot.
    expect(zeros.take(1)).toEqual(Uint8Array.of(1, 0));
    expect(zeros.stats).toEqual({ madeAhead: 0, usedAhead: 0 });
    zeros.roundDone([1, 1, 2]);
    expect(zeros.ready(1)).toBe(0);
    await idle();
    expect([zeros.ready(1), zeros.ready(2), zeros.ready(0)]).toEqual([2, 1, 0]);
    expect(zeros.stats.madeAhead).toBe(3);
    const a = zeros.take(1);
    const b = zeros.take(1);
    const c = zeros.take(1);
    expect(a[0]).toBe(1);
    expect(new Set([a[1], b[1], c[1]]).size).toBe(3);
    expect(zeros.stats.usedAhead).toBe(2);
    // A smaller round keeps the larger count; the stock refills to it.
    zeros.roundDone([1]);
    await idle();
    expect(zeros.ready(1)).toBe(2);
  });

  it('fills the stock while the thread waits for its next message, not one zero per message', async () => {
    // A key holder's thread between rounds: nothing to do but wait on its port. The refill must not
    // depend on other events waking the loop (unreferenced immediates let Node block in its poll phase,
    // so the stock grew by one or two zeros per round: measured 1,049 replies of 1,086 encrypted ahead
    // with the fix against 696 before, on model A's 3-token run).
    let made = 0;
    const zeros = new ReplyZeros((level) => Uint8Array.of(level, made++));
    zeros.roundDone([2, 2, 2, 2, 2, 2, 2, 2]);
    const { Worker } = await import('node:worker_threads');
    // The next "round": a message another thread posts 300 ms from now (no timer on this thread).
    const sender = new Worker("const { parentPort } = require('node:worker_threads'); setTimeout(() => parentPort.postMessage('round'), 300);", { eval: true });
    let readyAtMessage = -1;
    await new Promise<void>((resolve) =>
      sender.once('message', () => {
        readyAtMessage = zeros.ready(2);
        resolve();
      }),
    );
    await sender.terminate();
    expect(readyAtMessage).toBe(8);
    zeros.stop();
  });

  it('keeps at most MAX_AHEAD_PER_LEVEL per level and stops filling once stopped', async () => {
    let made = 0;
    const zeros = new ReplyZeros(() => Uint8Array.of(made++));
    zeros.roundDone(new Array(MAX_AHEAD_PER_LEVEL + 10).fill(0));
    await idle(MAX_AHEAD_PER_LEVEL * 3);
    expect(zeros.ready(0)).toBe(MAX_AHEAD_PER_LEVEL);
    zeros.take(0);
    zeros.stop();
    expect(zeros.ready(0)).toBe(0);
    zeros.roundDone([0]);
    await idle(10);
    expect(zeros.ready(0)).toBe(0);
    expect(made).toBe(MAX_AHEAD_PER_LEVEL);
  });

  it('stops filling when making a zero fails; a round then makes its own (and sees the error)', async () => {
    let fail = false;
    const zeros = new ReplyZeros(() => {
      if (fail) throw new Error('no memory');
      return Uint8Array.of(1);
    });
    fail = true;
    zeros.roundDone([0, 0]);
    await idle(10);
    expect(zeros.ready(0)).toBe(0);
    expect(() => zeros.take(0)).toThrow(/no memory/);
  });
});

describe('refresh replies on SEAL with zeros made between rounds', () => {
  const params = makeParameters({ ringDegree: 8192, bitSizes: [60, 40, 40, 60], scale: 2 ** 40 });
  const slots = params.ringDegree / 2;
  const top = topLevel(params);
  let pair: SealPair;
  beforeAll(async () => {
    pair = await sealPair(params);
  });
  afterAll(() => pair.dispose());

  it('uses them in the next round and its replies decrypt to the values, each reply a different ciphertext', async () => {
    const { client, ev } = pair;
    const keyHolder = new RefreshKeyHolder(client, 'unchecked');
    const values = [0, 1, 2].map((k) => Float64Array.from({ length: slots }, (_, i) => 0.8 * Math.cos(0.11 * i + k)));
    const round = () => {
      const inputs = values.map((v) => pair.atLevel(1, v));
      const fresh = new MaskedRefresher(ev, (bytes) => keyHolder.handle(bytes), { mask: { valueBound: 1 } }).refreshMany(inputs.map((ct, k) => ({ ct, scale: params.scale, name: `v${k}` })));
      for (const h of inputs) ev.free(h);
      return fresh;
    };
    const first = round();
    expect(client.repliesEncryptedAhead!()).toBe(0);
    await idle();
    const second = round();
    expect(client.repliesEncryptedAhead!()).toBe(3);
    for (const fresh of [first, second]) {
      fresh.forEach((h, k) => {
        const got = client.decrypt(ev.saveCiphertext(h));
        const worst = got.reduce((m, x, i) => Math.max(m, Math.abs(x - values[k]![i]!)), 0);
        expect(worst).toBeLessThan(1e-5);
        expect(ev.levelOf(h)).toBe(top);
      });
    }
    const bytes = second.map((h) => ev.saveCiphertext(h));
    expect(new Set(bytes.map((b) => b.subarray(200, 232).join(','))).size).toBe(3);
    for (const h of [...first, ...second]) ev.free(h);
  });
});
