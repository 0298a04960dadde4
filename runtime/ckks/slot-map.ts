// A public slot permutation applied to a ciphertext homomorphically (the KV-cache carry moves its slots
// this way before masking, runtime/generate/cache-refresh.ts; evaluation workers run it for the pool).

import { FhecError } from '../../ir/errors.js';
import { slotsOf } from '../../ir/ckks/params.js';
import type { CkksEvaluator, CkksHandle } from '../backend.js';

/** Whether a slot map (destination -> source) leaves every slot where it is. */
export function isIdentityMap(map: Int32Array): boolean {
  return map.every((s, u) => s === u);
}

/**
 * How applySlotMap moves a map's slots, baby-step giant-step: every source slot moving left by
 * d = source - destination is selected by a 0/1 mask, and d is split into a giant and a baby step
 * (d = g + b with b = d mod B), so the input is rotated once per baby step and each giant step's sum
 * once: |babies| + |giants| rotations instead of one per distinct shift. B minimizes the key switches
 * (`keySwitches(step)`: 1 per rotation unless the caller knows its keys), shift by shift for B = 1.
 */
export interface SlotMapPlan {
  /** giant step -> baby step -> the mask of the sources that move by giant + baby. */
  terms: Map<number, Map<number, Float64Array>>;
  babies: number[];
  giants: number[];
  /** Key switches of all its rotations. */
  keySwitches: number;
}

export function planSlotMap(map: Int32Array, slots: number, keySwitches: (step: number) => number = () => 1): SlotMapPlan {
  const byShift = new Map<number, number[]>();
  map.forEach((s, u) => {
    if (s < 0) return;
    const d = (((s - u) % slots) + slots) % slots;
    let sources = byShift.get(d);
    if (!sources) byShift.set(d, (sources = []));
    sources.push(s);
  });
  const shifts = [...byShift.keys()].sort((a, b) => a - b);
  const cost = new Map<number, number>();
  const ks = (step: number) => {
    if (step === 0) return 0;
    let c = cost.get(step);
    if (c === undefined) cost.set(step, (c = keySwitches(step)));
    return c;
  };
  const split = (B: number) => {
    const babies = new Set<number>();
    const giants = new Set<number>();
    for (const d of shifts) {
      babies.add(d % B);
      giants.add(d - (d % B));
    }
    let c = 0;
    for (const b of babies) c += ks(b);
    for (const g of giants) c += ks(g);
    return { B, c };
  };
  // B = 1 is one rotation per shift; larger B up to the widest shift, every power of two and every
  // value near the square root of the span (a few hundred candidates at most).
  const span = shifts.length > 0 ? shifts[shifts.length - 1]! + 1 : 1;
  const candidates = new Set<number>([1]);
  for (let B = 2; B <= span; B *= 2) candidates.add(B);
  const root = Math.ceil(Math.sqrt(span));
  for (let B = Math.max(2, root - 64); B <= Math.min(span, root + 64); B++) candidates.add(B);
  let best = split(1);
  for (const B of candidates) {
    const c = split(B);
    if (c.c < best.c) best = c;
  }
  const terms = new Map<number, Map<number, Float64Array>>();
  for (const d of shifts) {
    const b = d % best.B;
    const g = d - b;
    let byBaby = terms.get(g);
    if (!byBaby) terms.set(g, (byBaby = new Map()));
    // The mask acts after the baby rotation: it selects slot s - b of the rotated input.
    const m = new Float64Array(slots);
    for (const s of byShift.get(d)!) m[(((s - b) % slots) + slots) % slots] = 1;
    byBaby.set(b, m);
  }
  const babies = [...new Set(shifts.map((d) => d % best.B))];
  return { terms, babies, giants: [...terms.keys()], keySwitches: best.c };
}

/** Rotations applySlotMap makes for this map (0 for the identity): its cost in rotations. */
export function slotMapRotations(map: Int32Array, slots: number): number {
  if (isIdentityMap(map)) return 0;
  const plan = planSlotMap(map, slots);
  return plan.babies.filter((b) => b !== 0).length + plan.giants.filter((g) => g !== 0).length;
}

/**
 * Applies a public slot map (destination -> source, -1: zero) to a ciphertext, baby-step giant-step
 * (planSlotMap): out = sum over giant steps g of rot_g(sum over baby steps b of rot_b(ct) * mask_gb),
 * rescaled once. Consumes one level.
 */
export function applySlotMap(ev: CkksEvaluator, ct: CkksHandle, map: Int32Array): CkksHandle {
  return applySlotMapToEach(ev, [ct], map)[0]!;
}

/**
 * applySlotMap on several ciphertexts of one level with the same map (a cache carry moves every layer's
 * keys and values alike): the plan is made and each mask encoded once for all of them.
 */
export function applySlotMapToEach(ev: CkksEvaluator, cts: readonly CkksHandle[], map: Int32Array): CkksHandle[] {
  if (cts.length === 0) return [];
  const level = ev.levelOf(cts[0]!);
  if (level < 1) throw new FhecError('moving cache slots needs a level to spend, and the cache is at level 0');
  if (cts.some((c) => ev.levelOf(c) !== level)) throw new FhecError('internal: slot-map ciphertexts at different levels');
  const slots = slotsOf(ev.params);
  const plan = planSlotMap(map, slots, ev.keyStepsFor ? (step) => ev.keyStepsFor!(step).length : undefined);
  const prime = Number(ev.params.primes[level]!);
  const masks = new Map<Float64Array, CkksHandle>();
  const out: CkksHandle[] = [];
  try {
    for (const byBaby of plan.terms.values()) for (const mask of byBaby.values()) masks.set(mask, ev.encode(mask, level, prime));
    for (const ct of cts) out.push(moveOne(ev, ct, plan, masks));
  } catch (e) {
    for (const h of out) ev.free(h);
    throw e;
  } finally {
    for (const pt of masks.values()) ev.free(pt);
  }
  return out;
}

function moveOne(ev: CkksEvaluator, ct: CkksHandle, plan: SlotMapPlan, masks: ReadonlyMap<Float64Array, CkksHandle>): CkksHandle {
  const rotated = new Map<number, CkksHandle>();
  for (const b of plan.babies) rotated.set(b, b === 0 ? ct : ev.rotate(ct, b));
  const accumulate = (sum: CkksHandle | undefined, term: CkksHandle): CkksHandle => {
    if (!sum) return term;
    const next = ev.add(sum, term);
    ev.free(sum);
    ev.free(term);
    return next;
  };
  let sum: CkksHandle | undefined;
  try {
    for (const [g, byBaby] of plan.terms) {
      let inner: CkksHandle | undefined;
      for (const [b, mask] of byBaby) inner = accumulate(inner, ev.mulPlain(rotated.get(b)!, masks.get(mask)!));
      if (g !== 0) {
        const moved = ev.rotate(inner!, g);
        ev.free(inner!);
        inner = moved;
      }
      sum = accumulate(sum, inner!);
    }
  } finally {
    for (const [b, h] of rotated) if (b !== 0) ev.free(h);
  }
  if (!sum) throw new FhecError('the cache slot map moves no slot');
  const out = ev.rescale(sum);
  ev.free(sum);
  return out;
}
