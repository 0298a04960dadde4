// A public slot permutation applied to a ciphertext homomorphically (the KV-cache carry moves its slots
// this way before masking, runtime/generate/cache-refresh.ts; evaluation workers run it for the pool).

import { FhecError } from '../../ir/errors.js';
import { slotsOf } from '../../ir/ckks/params.js';
import type { CkksEvaluator, CkksHandle } from '../backend.js';

/** Whether a slot map (destination -> source) leaves every slot where it is. */
export function isIdentityMap(map: Int32Array): boolean {
  return map.every((s, u) => s === u);
}

/** Distinct rotations applySlotMap makes for this map (0 for the identity): its cost in rotations. */
export function slotMapRotations(map: Int32Array, slots: number): number {
  const shifts = new Set<number>();
  map.forEach((s, u) => {
    if (s >= 0) shifts.add((((s - u) % slots) + slots) % slots);
  });
  shifts.delete(0);
  return isIdentityMap(map) ? 0 : shifts.size;
}

/**
 * Applies a public slot map (destination -> source, -1: zero) to a ciphertext: for each distinct shift
 * d = source - destination, the source slots moving by d are selected by a 0/1 mask and rotated left
 * by d; the terms are summed and rescaled once. Consumes one level.
 */
export function applySlotMap(ev: CkksEvaluator, ct: CkksHandle, map: Int32Array): CkksHandle {
  const level = ev.levelOf(ct);
  if (level < 1) throw new FhecError('moving cache slots needs a level to spend, and the cache is at level 0');
  const slots = slotsOf(ev.params);
  const byShift = new Map<number, Float64Array>();
  map.forEach((s, u) => {
    if (s < 0) return;
    const d = (((s - u) % slots) + slots) % slots;
    let m = byShift.get(d);
    if (!m) byShift.set(d, (m = new Float64Array(slots)));
    m[s] = 1;
  });
  const prime = Number(ev.params.primes[level]!);
  let sum: CkksHandle | undefined;
  for (const [d, mask] of byShift) {
    const pt = ev.encode(mask, level, prime);
    const selected = ev.mulPlain(ct, pt);
    ev.free(pt);
    const moved = d === 0 ? selected : ev.rotate(selected, d);
    if (moved !== selected) ev.free(selected);
    if (!sum) sum = moved;
    else {
      const next = ev.add(sum, moved);
      ev.free(sum);
      ev.free(moved);
      sum = next;
    }
  }
  if (!sum) throw new FhecError('the cache slot map moves no slot');
  const out = ev.rescale(sum);
  ev.free(sum);
  return out;
}
