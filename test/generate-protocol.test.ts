// The pieces of encrypted generation's message interface: the frame codec, the KV-cache relayout,
// the cache refresh (masked, moving slots, checked against the schedule) on sim and SEAL, step planning, tokenizer.

import { describe, expect, it } from 'vitest';
import { FhecError } from '../ir/errors.js';
import { packSlots } from '../ir/fhe/layout.js';
import type { SlotLayout } from '../ir/fhe/types.js';
import type { CkksBackend } from '../runtime/backend.js';
import { selectParameters, topLevel } from '../ir/ckks/params.js';
import { CacheRefresher, carryMovesSlots, handleCacheRefresh } from '../runtime/generate/cache-refresh.js';
import { RefreshScheduleGuard, type RefreshPoint } from '../runtime/refresh/schedule.js';
import { decodeMessage, encodeMessage } from '../runtime/generate/messages.js';
import { generationSteps } from '../runtime/generate/plan-source.js';
import { applyRelayout, relayoutMap } from '../runtime/generate/relayout.js';
import { ByteTokenizer } from '../runtime/generate/tokenizer.js';
import { sealBackend } from '../runtime/seal/backend.js';
import { simBackend } from '../runtime/sim/backend.js';

const params = selectParameters({ depth: 2 });
const slots = params.ringDegree / 2;

function cacheLayout(width: number, tokens: number, blocks: number): SlotLayout {
  const stride = slots / 2 ** Math.ceil(Math.log2(blocks));
  return { length: width, tokens, stride, period: width, copies: stride / width };
}

describe('generation messages', () => {
  it('round-trip header and blobs, and reject truncation, trailing bytes and unexpected kinds', () => {
    const blobs = [new Uint8Array([1, 2, 3]), new Uint8Array(0), new Uint8Array(1000).fill(7)];
    const m = encodeMessage({ kind: 'step', index: 3 } as { kind: string }, blobs);
    const d = decodeMessage<{ kind: string; index: number }>(m, ['step']);
    expect(d.header).toEqual({ kind: 'step', index: 3 });
    expect(d.blobs).toEqual(blobs);
    expect(() => decodeMessage(m.subarray(0, m.length - 1), ['step'])).toThrow(/truncated/);
    expect(() => decodeMessage(Uint8Array.from([...m, 0]), ['step'])).toThrow(/trailing bytes/);
    expect(() => decodeMessage(m, ['logits'])).toThrow(/unexpected generation message 'step'/);
    expect(() => decodeMessage(new Uint8Array([1, 2, 3]), ['step'])).toThrow(FhecError);
    expect(() => decodeMessage(encodeMessage({ kind: 'error', message: 'boom' } as { kind: string }), ['step'])).toThrow(/the other side reported: boom/);
  });
});

describe('KV-cache relayout', () => {
  it('moves token blocks to the new stride, replicates them, and zeroes every other slot', () => {
    const width = 64;
    const T = 8;
    const data = Float64Array.from({ length: T * width }, (_, i) => Math.sin(i) + 2);
    const from = cacheLayout(width, T, 8);
    const to = cacheLayout(width, T, 9);
    expect(to.stride).toBe(from.stride / 2);
    const moved = applyRelayout(relayoutMap(from, to, slots), packSlots(from, slots, data));
    expect(Array.from(moved)).toEqual(Array.from(packSlots(to, slots, data)));
    // Garbage beyond the tokens in the source does not come along.
    const dirty = packSlots(from, slots, data);
    dirty[T * from.stride + 1] = 99;
    expect(applyRelayout(relayoutMap(from, to, slots), dirty)[T * to.stride + 1]).toBe(0);
    expect(() => relayoutMap(from, cacheLayout(width, T + 1, 9), slots)).toThrow(/cannot carry a cache of 8 x 64/);
  });
});

for (const backend of [simBackend, sealBackend] as CkksBackend[]) {
  describe(`cache refresh on ${backend.name}`, () => {
    it('returns the cache at the top level in the next layout; the key holder sees only masked values; a replay is refused', async () => {
      // The evaluator moves the slots itself (rotations composed from power-of-two keys, one level).
      const powers = Array.from({ length: Math.log2(slots) }, (_, i) => 2 ** i);
      const client = await backend.createClient(params, { galoisSteps: powers, relin: false });
      const ev = await backend.createEvaluator(params, structuredClone(client.evaluationKeys()));
      const width = 64;
      const T = 8;
      const data = Float64Array.from({ length: T * width }, (_, i) => 3 * Math.cos(i));
      const from = cacheLayout(width, T, 8);
      const to = cacheLayout(width, T, 9);
      const views: Float64Array[] = [];
      // The schedule the client derives from the plan: present.0.key carried from the top level into the
      // next layout (the evaluator's slot move takes one level), then the same cache kept in its layout.
      const top = topLevel(params);
      const moved = (params.scale * Number(params.primes[top]!)) / Number(params.primes[top]!);
      const points: RefreshPoint[] = [
        { id: 'present.0.key', kind: 'carry', level: top - 1, scale: moved, toLevel: top, toScale: params.scale, slots, bound: 4, from, to },
        // (A layout with unused slots moves too: the map zeroes them.)
        { id: 'present.0.key', kind: 'carry', level: carryMovesSlots(from, from, slots) ? top - 1 : top, scale: carryMovesSlots(from, from, slots) ? moved : params.scale, toLevel: top, toScale: params.scale, slots, bound: 4, from, to: from },
      ];
      const guard = new RefreshScheduleGuard(() => points);
      guard.beginStep(0);
      let replay: Uint8Array | undefined;
      const refresher = new CacheRefresher(ev, (req) => {
        const d = decodeMessage(req, ['cache-refresh']);
        views.push(client.decrypt(d.blobs[0]!));
        replay ??= req;
        return handleCacheRefresh(client, guard, req).reply;
      });
      const item = () => ({ ct: ev.loadCiphertext(client.encrypt(packSlots(from, slots, data), topLevel(params), params.scale)), from, to, level: topLevel(params), scale: params.scale, bound: 4, name: 'present.0.key' });
      const it0 = item();
      const [bytes] = refresher.refresh([it0]);
      const out = client.decrypt(bytes!);
      const want = packSlots(to, slots, data);
      let err = 0;
      for (let u = 0; u < slots; u++) err = Math.max(err, Math.abs(out[u]! - want[u]!));
      expect(err).toBeLessThan(1e-5);
      expect(ev.levelOf(ev.loadCiphertext(bytes!))).toBe(topLevel(params));
      // The key holder's view on SEAL: the masked polynomial (mask 2^53 times the coefficient bound),
      // whose slots are nowhere near x or its new layout. (The simulator keeps the mask beside the values.)
      const x = packSlots(from, slots, data);
      const diffs = Array.from(views[0]!.subarray(0, 4096), (v, u) => Math.abs(v - x[u]!));
      if (!ev.simulated) expect(diffs.reduce((s, d) => s + d, 0) / diffs.length).toBeGreaterThan(2 ** 40);
      // A cache at level 1 has no level left for the move and a modulus too narrow below: refused, named.
      const low = { ...item(), ct: ev.loadCiphertext(client.encrypt(packSlots(from, slots, data), 1, params.scale)) };
      expect(() => refresher.refresh([low])).toThrow(/present\.0\.key at level 0/);
      // The same layout: the map still zeroes the slots of no token, so the evaluator moves it (one level).
      const same = { ...item(), to: from };
      const [kept] = refresher.refresh([same]);
      const back = client.decrypt(kept!);
      let err2 = 0;
      for (let u = 0; u < slots; u++) err2 = Math.max(err2, Math.abs(back[u]! - x[u]!));
      expect(err2).toBeLessThan(1e-5);
      expect(refresher.traffic).toMatchObject({ roundTrips: 2, ciphertexts: 2 });
      expect(refresher.traffic.bytesToKeyHolder).toBeGreaterThan(0);
      guard.endStep();
      guard.beginStep(1);
      // The first request again (a replay, and for step 0 while step 1 runs): refused, and the session is over.
      expect(() => handleCacheRefresh(client, guard, replay!)).toThrow(/request refused, session ended: a carry request \(id 1\) is for step 0, the running step is 1/);
      expect(() => refresher.refresh([item()])).toThrow(/key holder ended this session/);
      ev.free(it0.ct);
      ev.dispose();
      client.dispose();
    }, 60000);
  });
}

describe('generation steps', () => {
  it('prefills the longest compiled length that fits, then decodes every later position but the last', () => {
    expect(generationSteps({ prefillLengths: () => [4, 8] }, 6, 3)).toEqual([
      { kind: 'prefill', tokens: 4 },
      { kind: 'decode', past: 4 },
      { kind: 'decode', past: 5 },
      { kind: 'decode', past: 6 },
      { kind: 'decode', past: 7 },
    ]);
    expect(generationSteps({ prefillLengths: () => [8] }, 3, 1)).toEqual([{ kind: 'prefill', tokens: 3 }]);
  });
});

describe('byte tokenizer', () => {
  it('maps text to UTF-8 bytes and back, and refuses vocabularies other than 256', () => {
    const t = new ByteTokenizer(256);
    expect(t.encode('é!')).toEqual([0xc3, 0xa9, 0x21]);
    expect(t.decode([0xc3, 0xa9, 0x21])).toBe('é!');
    expect(() => new ByteTokenizer(32000)).toThrow(/UTF-8 bytes needs a vocabulary of 256; this model has 32000: pass its Hugging Face tokenizer folder with --tokenizer DIR/);
  });
});
