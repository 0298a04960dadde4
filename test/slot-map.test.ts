// Public slot maps applied to a ciphertext (runtime/ckks/slot-map.ts: the KV-cache carry's re-layout),
// baby-step giant-step: the moved values against the map applied to the plain vector, one level spent,
// and fewer rotations (key switches) than one per distinct shift, on the simulator with SEAL's key rules.
import { describe, expect, it } from 'vitest';
import { makeParameters, topLevel } from '../ir/ckks/params.js';
import { applySlotMap, applySlotMapToEach, planSlotMap, slotMapRotations } from '../runtime/ckks/slot-map.js';
import { makeSimBackend } from '../runtime/sim/backend.js';

const params = makeParameters({ ringDegree: 8192, bitSizes: [60, 40, 40, 60], scale: 2 ** 40 });
const slots = params.ringDegree / 2;
const powersOfTwo = Array.from({ length: Math.log2(slots) }, (_, i) => 2 ** i);

/** Block moves: `blocks` blocks of `width` slots, block k from source block perm[k] (a cache re-layout), the rest zero. */
function blockMap(blocks: number, width: number, stride: number, seed: number): Int32Array {
  const perm = Array.from({ length: blocks }, (_, k) => k);
  let x = seed;
  for (let k = blocks - 1; k > 0; k--) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const j = x % (k + 1);
    [perm[k], perm[j]] = [perm[j]!, perm[k]!];
  }
  const map = new Int32Array(slots).fill(-1);
  for (let k = 0; k < blocks; k++) for (let i = 0; i < width; i++) map[k * width + i] = perm[k]! * stride + i;
  return map;
}

describe('slot maps, baby-step giant-step', () => {
  for (const [blocks, width, stride] of [[64, 16, 48], [16, 64, 200], [5, 7, 9]] as const) {
    it(`moves ${blocks} blocks of ${width} (source stride ${stride}): the map's values, one level down, fewer key switches than a rotation per shift`, async () => {
      const map = blockMap(blocks, width, stride, blocks * 31 + width);
      const backend = makeSimBackend(7);
      const client = await backend.createClient(params, { galoisSteps: powersOfTwo, relin: true });
      const ev = await backend.createEvaluator(params, client.evaluationKeys());
      const xs = Float64Array.from({ length: slots }, (_, i) => Math.sin(0.01 * i) + 0.001 * i);
      const top = topLevel(params);
      const out = applySlotMap(ev, ev.loadCiphertext(client.encrypt(xs, top, params.scale)), map);
      expect(ev.levelOf(out)).toBe(top - 1);
      const got = client.decrypt(ev.saveCiphertext(out));
      let worst = 0;
      map.forEach((s, u) => (worst = Math.max(worst, Math.abs(got[u]! - (s < 0 ? 0 : xs[s]!)))));
      expect(worst).toBeLessThan(1e-6);
      // The plan against one rotation per distinct shift, both counted in key switches of these keys.
      const ks = (step: number) => ev.keyStepsFor!(step).length;
      const shifts = new Set(Array.from(map, (s, u) => (s < 0 ? 0 : (((s - u) % slots) + slots) % slots)));
      shifts.delete(0);
      const perShift = [...shifts].reduce((t, d) => t + ks(d), 0);
      const plan = planSlotMap(map, slots, ks);
      expect(plan.keySwitches).toBeLessThanOrEqual(perShift);
      console.log(`${blocks} blocks: ${shifts.size} shifts, ${perShift} key switches one rotation per shift, ${plan.keySwitches} baby-step giant-step`);
      if (shifts.size >= 16) expect(plan.keySwitches).toBeLessThan(perShift);
      if (shifts.size >= 48) expect(plan.keySwitches).toBeLessThan(perShift / 2);
      expect(slotMapRotations(map, slots)).toBeLessThanOrEqual(shifts.size);
    });
  }

  it('moves several ciphertexts alike with each mask encoded once for all of them (a carry of every layer)', async () => {
    const map = blockMap(16, 64, 200, 7);
    const backend = makeSimBackend(11);
    const client = await backend.createClient(params, { galoisSteps: powersOfTwo, relin: true });
    const ev = await backend.createEvaluator(params, client.evaluationKeys());
    const top = topLevel(params);
    const inputs = [0, 1, 2].map((k) => Float64Array.from({ length: slots }, (_, i) => Math.cos(0.02 * i + k) * (k + 1)));
    let encodes = 0;
    const encode = ev.encode.bind(ev);
    ev.encode = (values, level, scale) => (encodes++, encode(values, level, scale));
    const outs = applySlotMapToEach(ev, inputs.map((xs) => ev.loadCiphertext(client.encrypt(xs, top, params.scale))), map);
    const masks = [...planSlotMap(map, slots, (step) => ev.keyStepsFor!(step).length).terms.values()].reduce((n, m) => n + m.size, 0);
    expect(encodes).toBe(masks);
    outs.forEach((out, k) => {
      expect(ev.levelOf(out)).toBe(top - 1);
      const got = client.decrypt(ev.saveCiphertext(out));
      let worst = 0;
      map.forEach((s, u) => (worst = Math.max(worst, Math.abs(got[u]! - (s < 0 ? 0 : inputs[k]![s]!)))));
      expect(worst, `ciphertext ${k}`).toBeLessThan(1e-5);
    });
  });

  it('leaves the identity alone and costs nothing for it', () => {
    expect(slotMapRotations(Int32Array.from({ length: slots }, (_, i) => i), slots)).toBe(0);
  });
});
