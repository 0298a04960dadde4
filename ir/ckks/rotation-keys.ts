// Which Galois keys to create for the rotation steps a circuit uses, within a key-memory budget.
// Each distinct step normally gets its own key (one key switch per rotation). When that does not fit,
// steps are composed from power-of-two keys (popcount key switches per rotation, at most log2(slots) keys).

import { FhecError } from '../errors.js';
import { keySwitchKeyBytes, slotsOf, type CkksParameters } from './params.js';

export interface RotationKeyPlan {
  /** The steps that get a Galois key. */
  keySteps: number[];
  /** For each requested step, the key steps applied one after another. */
  compose: Map<number, number[]>;
  /** Bytes the Galois keys take in memory. */
  galoisBytes: number;
  /** True when some rotations are composed from several keys. */
  composed: boolean;
}

/** Canonical form of a step: in (-slots/2, slots/2], the direction SEAL decomposes cheapest. */
export function normalizeStep(step: number, slots: number): number {
  let s = ((step % slots) + slots) % slots;
  if (s > slots / 2) s -= slots;
  return s;
}

/** Default budget: SEAL's wasm32 heap stops at 4 GiB; keep a gigabyte for ciphertexts and temporaries. */
export const DEFAULT_KEY_BUDGET_BYTES = 3 * 1024 ** 3;

export function planRotationKeys(p: CkksParameters, steps: Iterable<number>, budgetBytes = DEFAULT_KEY_BUDGET_BYTES): RotationKeyPlan {
  const slots = slotsOf(p);
  const perKey = keySwitchKeyBytes(p);
  const wanted = [...new Set([...steps].map((s) => normalizeStep(s, slots)).filter((s) => s !== 0))].sort((a, b) => a - b);
  if ((wanted.length + 1) * perKey <= budgetBytes) {
    return { keySteps: wanted, compose: new Map(wanted.map((s) => [s, [s]])), galoisBytes: wanted.length * perKey, composed: false };
  }
  // Compose every step from positive powers of two (left rotations), only the powers actually needed.
  const compose = new Map<number, number[]>();
  const used = new Set<number>();
  for (const s of wanted) {
    const pos = ((s % slots) + slots) % slots;
    const parts: number[] = [];
    for (let bit = 1; bit < slots; bit *= 2) if (pos & bit) parts.push(bit);
    parts.forEach((b) => used.add(b));
    compose.set(s, parts);
  }
  const keySteps = [...used].sort((a, b) => a - b);
  if ((keySteps.length + 1) * perKey > budgetBytes) {
    throw new FhecError(
      `even power-of-two Galois keys (${keySteps.length} x ${(perKey / 2 ** 20).toFixed(1)} MiB) exceed the key budget of ${(budgetBytes / 2 ** 20).toFixed(0)} MiB`,
    );
  }
  return { keySteps, compose, galoisBytes: keySteps.length * perKey, composed: true };
}

/**
 * The key steps that make up a rotation by `step`: its own key, or its binary decomposition over
 * power-of-two keys. Both backends use it, so a missing key fails the same way on each.
 */
export function decomposeRotation(step: number, slots: number, available: ReadonlySet<number>): number[] {
  const s = normalizeStep(step, slots);
  if (s === 0) return [];
  if (available.has(s)) return [s];
  const pos = ((s % slots) + slots) % slots;
  const parts: number[] = [];
  for (let bit = 1; bit < slots; bit *= 2) {
    if (!(pos & bit)) continue;
    const k = normalizeStep(bit, slots);
    if (!available.has(k)) throw new FhecError(`no Galois key for rotation step ${step} (nor for its part ${bit})`);
    parts.push(k);
  }
  return parts;
}
