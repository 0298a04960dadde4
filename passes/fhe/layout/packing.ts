// Packing helpers that lowerings share: layouts for vectors (replicated so rotations act cyclically
// on the vector), rotate-and-sum reductions, masking, and replication by doubling.

import { FhecError } from '../../../ir/errors.js';
import type { FheBuilder } from '../../../ir/fhe/builder.js';
import type { FheValue, SlotLayout } from '../../../ir/fhe/types.js';

export function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/**
 * Layout of `tokens` vectors of `length`, each replicated with period nextPow2(length) across a block of
 * `stride` slots (the whole ciphertext for one token). Replication makes rotations cyclic on the vector.
 */
export function replicatedLayout(length: number, slots: number, tokens = 1, stride?: number): SlotLayout {
  const period = nextPow2(length);
  const s = stride ?? (tokens === 1 ? slots : slots / nextPow2(tokens));
  if (period > s || s * tokens > slots) {
    throw new FhecError(`${tokens} token(s) of ${length} values do not fit ${slots} slots with replication`);
  }
  return { length, tokens, stride: s, period, copies: s / period };
}

/** Layout of a plain (not replicated) result: `length` values at the start of each token block. */
export function plainLayout(length: number, tokens: number, stride: number): SlotLayout {
  return { length, tokens, stride, period: nextPow2(length), copies: 1 };
}

/** Rotation cost of the helpers below, for lowerings that report it. */
export interface HelperCost {
  rotations: number;
  galoisSteps: number[];
}

/**
 * Sums `count` (a power of two) groups spaced `spacing` slots apart into the first group:
 * slot u gets sum_{t<count} x[u + t*spacing]. log2(count) rotations.
 */
export function rotateAndSum(b: FheBuilder, x: FheValue, count: number, spacing: number, cost?: HelperCost): FheValue {
  if (count & (count - 1)) throw new FhecError(`rotate-and-sum needs a power-of-two count, got ${count}`);
  let acc = x;
  for (let shift = spacing; shift < count * spacing; shift *= 2) {
    acc = b.add(acc, b.rotate(acc, shift));
    if (cost) {
      cost.rotations++;
      cost.galoisSteps.push(shift);
    }
  }
  return acc;
}

/**
 * From a vector in slots [0, period) of each token block (zero elsewhere in the block), fills the block
 * with `copies` copies by doubling: log2(copies) rotations.
 */
export function replicate(b: FheBuilder, x: FheValue, period: number, copies: number, cost?: HelperCost): FheValue {
  let acc = x;
  for (let width = period; width < period * copies; width *= 2) {
    acc = b.add(acc, b.rotate(acc, -width));
    if (cost) {
      cost.rotations++;
      cost.galoisSteps.push(-width);
    }
  }
  return acc;
}
