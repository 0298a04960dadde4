// Layout checks and slot-vector builders shared by the kernels (replicated token layouts, see
// passes/fhe/packing.ts: token t's values at t*stride + r*period + j for every copy r).

import { FhecError } from '../../../ir/errors.js';
import type { FheBuilder } from '../../../ir/fhe/builder.js';
import type { FheValue, SlotLayout } from '../../../ir/fhe/types.js';

export function checkReplicated(layout: SlotLayout, slots: number, what: string): void {
  const { length, tokens, stride, period, copies } = layout;
  if (period * copies !== stride || stride * tokens > slots || length > period || (period & (period - 1)) !== 0) {
    throw new FhecError(`${what}: layout ${JSON.stringify(layout)} is not a replicated token layout in ${slots} slots`);
  }
}

/** A slot vector with value(t, j) at every copy of element j of token t (0 elsewhere, or `fill`). */
export function perElement(layout: SlotLayout, slots: number, value: (token: number, j: number) => number, fill = 0): Float64Array {
  const v = new Float64Array(slots).fill(fill);
  for (let t = 0; t < layout.tokens; t++) {
    for (let r = 0; r < layout.copies; r++) {
      const base = t * layout.stride + r * layout.period;
      for (let j = 0; j < layout.period; j++) v[base + j] = value(t, j);
    }
  }
  return v;
}

/** sum_{s < count} rot(x, s * step): rotate-and-sum by doubling; step may be negative. */
export function rotateSum(b: FheBuilder, x: FheValue, count: number, step: number): FheValue {
  if (count & (count - 1)) throw new FhecError(`rotate-and-sum needs a power-of-two count, got ${count}`);
  let acc = x;
  for (let k = 1; k < count; k *= 2) acc = b.add(acc, b.rotate(acc, k * step));
  return acc;
}
