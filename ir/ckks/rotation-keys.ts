// Which Galois keys to create for the rotation steps a circuit uses, within a key-memory budget.
// Each distinct step normally gets its own key (one key switch per rotation). When that does not fit,
// steps are composed from signed power-of-two keys (the step's non-adjacent form: at most
// log2(slots)/2 + 1 key switches per rotation, at most 2 log2(slots) keys; a right rotation by 1 is one
// key switch, not log2(slots) left ones). The compiler's pricing, the plans' key lists and both
// backends' rotations all go through this file, so what was priced is what runs.

import { FhecError } from '../errors.js';
import type { FheChain } from '../fhe/types.js';
import { keySwitchKeyBytes, keySwitchKeyBytesFor, slotsOf, type CkksParameters } from './params.js';

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
  return planRotationKeysFor(slotsOf(p), keySwitchKeyBytes(p), steps, budgetBytes);
}

/** The same for a program typed against `chain` (its data primes; the keys also span the special prime). */
export function planChainRotationKeys(chain: FheChain, steps: Iterable<number>, budgetBytes = DEFAULT_KEY_BUDGET_BYTES): RotationKeyPlan {
  return planRotationKeysFor(chain.ringDegree / 2, keySwitchKeyBytesFor(chain.ringDegree, chain.primes.length + 1), steps, budgetBytes);
}

function planRotationKeysFor(slots: number, perKey: number, steps: Iterable<number>, budgetBytes: number): RotationKeyPlan {
  const wanted = [...new Set([...steps].map((s) => normalizeStep(s, slots)).filter((s) => s !== 0))].sort((a, b) => a - b);
  if ((wanted.length + 1) * perKey <= budgetBytes) {
    return { keySteps: wanted, compose: new Map(wanted.map((s) => [s, [s]])), galoisBytes: wanted.length * perKey, composed: false };
  }
  // Compose every step from signed powers of two (fewest key switches), or, when those keys do not fit
  // either, from left powers of two only (at most log2(slots) keys); only the powers actually needed.
  const composeWith = (parts: (s: number) => number[]) => {
    const compose = new Map(wanted.map((s) => [s, parts(s)]));
    return { compose, keySteps: [...new Set([...compose.values()].flat())].sort((a, b) => a - b) };
  };
  let { compose, keySteps } = composeWith((s) => signedPowerParts(s, slots));
  if ((keySteps.length + 1) * perKey > budgetBytes) ({ compose, keySteps } = composeWith((s) => leftPowerParts(s, slots)));
  if ((keySteps.length + 1) * perKey > budgetBytes) {
    throw new FhecError(
      `even power-of-two Galois keys (${keySteps.length} x ${(perKey / 2 ** 20).toFixed(1)} MiB) exceed the key budget of ${(budgetBytes / 2 ** 20).toFixed(0)} MiB`,
    );
  }
  return { keySteps, compose, galoisBytes: keySteps.length * perKey, composed: true };
}

/**
 * A rotation by `step` as rotations by signed powers of two: the non-adjacent form of the step modulo
 * the slot count (fewest nonzero digits; each part normalized, so -slots/2 reads as slots/2).
 */
export function signedPowerParts(step: number, slots: number): number[] {
  let n = ((step % slots) + slots) % slots;
  const parts: number[] = [];
  for (let bit = 1; n > 0 && bit < slots; bit *= 2, n = Math.floor(n / 2)) {
    if (n % 2 === 0) continue;
    const digit = n % 4 === 3 ? -1 : 1;
    parts.push(normalizeStep(digit * bit, slots));
    n -= digit;
  }
  return parts.filter((p) => p !== 0);
}

/**
 * The key steps that make up a rotation by `step`: its own key, or its decomposition over signed
 * power-of-two keys (planRotationKeys' composition), or over positive powers of two (what a key set of
 * left powers only, such as the KV-cache carry's, supports). Both backends use it, so a missing key
 * fails the same way on each.
 */
export function decomposeRotation(step: number, slots: number, available: ReadonlySet<number>): number[] {
  const s = normalizeStep(step, slots);
  if (s === 0) return [];
  if (available.has(s)) return [s];
  const signed = signedPowerParts(s, slots);
  if (signed.every((k) => available.has(k))) return signed;
  const left = leftPowerParts(s, slots);
  const missing = left.find((k) => !available.has(k));
  if (missing !== undefined) throw new FhecError(`no Galois key for rotation step ${step} (nor for its part ${missing})`);
  return left;
}

/** A rotation by `step` as left rotations by the powers of two in its binary form modulo the slot count. */
export function leftPowerParts(step: number, slots: number): number[] {
  const pos = ((step % slots) + slots) % slots;
  const parts: number[] = [];
  for (let bit = 1; bit < slots; bit *= 2) if (pos & bit) parts.push(normalizeStep(bit, slots));
  return parts;
}
