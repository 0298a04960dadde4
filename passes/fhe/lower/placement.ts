// Where a tensor's elements sit in a ciphertext, slot by slot. The graph lowering tracks for every
// ciphertext which flat (row-major) element each slot holds, or that the slot is exactly zero, or that it
// holds something unknown (partial sums, values rotated in from elsewhere). Consumers state what they
// need the same way, with "anything" where they do not look. Pure data movement (Reshape, Transpose)
// then only relabels elements, and a relayout is needed only where a consumer's need is not met.

import type { FheValue } from '../../../ir/fhe/types.js';

/** The slot holds exactly zero. */
export const ZERO = -1;
/** The slot holds something unknown. */
export const GARBAGE = -2;
/** In a requirement: any value is fine here. */
export const ANY = -3;

/** holds[s] = flat element index (>= 0), ZERO or GARBAGE; one entry per slot. */
export type Holds = Int32Array;
/** want[s] = flat element index (>= 0), ZERO or ANY; one entry per slot. */
export type Want = Int32Array;

/** One ciphertext of an encrypted tensor and what its slots hold. */
export interface Block {
  ct: FheValue;
  holds: Holds;
}

/** Does a ciphertext holding `holds` meet the requirement `want`? */
export function satisfies(holds: Holds, want: Want): boolean {
  for (let s = 0; s < want.length; s++) {
    const w = want[s]!;
    if (w === ANY) continue;
    if (holds[s] !== w) return false;
  }
  return true;
}

/** The requirement "these slots hold these elements, the rest do not matter". */
export function wantFromHolds(holds: Holds): Want {
  const w = new Int32Array(holds.length);
  for (let s = 0; s < holds.length; s++) w[s] = holds[s]! >= 0 ? holds[s]! : ANY;
  return w;
}

/** Default placement of `count` elements: consecutive elements in consecutive slots, one block per `slots`. */
export function contiguousPlacement(count: number, slots: number): Want[] {
  const out: Want[] = [];
  for (let start = 0; start < count; start += slots) {
    const w = new Int32Array(slots).fill(ANY);
    const n = Math.min(slots, count - start);
    for (let s = 0; s < n; s++) w[s] = start + s;
    out.push(w);
  }
  return out;
}

/** The requirement on an operand whose element `index[e]` feeds output element e. */
export function mapWant(want: Want, index: Int32Array): Want {
  const w = new Int32Array(want.length);
  for (let s = 0; s < want.length; s++) w[s] = want[s]! >= 0 ? index[want[s]!]! : want[s]!;
  return w;
}

/** Slot s of the result holds slot s + step of the input (SEAL's left rotation). */
export function rotateHolds(h: Holds, step: number): Holds {
  const n = h.length;
  const out = new Int32Array(n);
  for (let s = 0; s < n; s++) out[s] = h[(((s + step) % n) + n) % n]!;
  return out;
}

/** Holds of the sum of two ciphertexts that carry data movement (no arithmetic on elements). */
export function addMovedHolds(a: Holds, b: Holds): Holds {
  const out = new Int32Array(a.length);
  for (let s = 0; s < a.length; s++) {
    const x = a[s]!;
    const y = b[s]!;
    out[s] = x === ZERO ? y : y === ZERO ? x : GARBAGE;
  }
  return out;
}

/** Step in (-slots/2, slots/2], the form the rotation keys use. */
export function normalizeRotation(step: number, slots: number): number {
  let s = ((step % slots) + slots) % slots;
  if (s > slots / 2) s -= slots;
  return s;
}
