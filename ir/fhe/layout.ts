// Slot layouts: where the elements of a [tokens, length] tensor sit in a ciphertext's slots.

import { FhecError } from '../errors.js';
import type { FheConstantData, SlotLayout } from './types.js';
import { diagonalSlots } from './diagonal.js';

/** Checks that the layout fits in `slots` and its copies do not overlap. */
export function checkLayout(layout: SlotLayout, slots: number): void {
  const { length, tokens, stride, period, copies } = layout;
  const ints = [length, tokens, stride, period, copies].every((v) => Number.isInteger(v) && v >= 1);
  if (!ints) throw new FhecError(`bad slot layout ${JSON.stringify(layout)}`);
  if (length > period || period * copies > stride || stride * tokens > slots) {
    throw new FhecError(`slot layout ${JSON.stringify(layout)} does not fit ${slots} slots`);
  }
}

/** Slot values for `data` (row-major [tokens, length]); unused slots are 0. */
export function packSlots(layout: SlotLayout, slots: number, data: ArrayLike<number>): Float64Array {
  checkLayout(layout, slots);
  if (data.length !== layout.length * layout.tokens) {
    throw new FhecError(`expected ${layout.length * layout.tokens} values for the layout, got ${data.length}`);
  }
  const out = new Float64Array(slots);
  for (let t = 0; t < layout.tokens; t++) {
    for (let r = 0; r < layout.copies; r++) {
      const base = t * layout.stride + r * layout.period;
      for (let j = 0; j < layout.length; j++) out[base + j] = data[t * layout.length + j]!;
    }
  }
  return out;
}

/** The tensor's values (row-major [tokens, length]) read from copy 0. */
export function unpackSlots(layout: SlotLayout, slots: ArrayLike<number>): Float64Array {
  const out = new Float64Array(layout.length * layout.tokens);
  for (let t = 0; t < layout.tokens; t++) {
    for (let j = 0; j < layout.length; j++) out[t * layout.length + j] = slots[t * layout.stride + j]!;
  }
  return out;
}

export function layoutsEqual(a: SlotLayout, b: SlotLayout): boolean {
  return a.length === b.length && a.tokens === b.tokens && a.stride === b.stride && a.period === b.period && a.copies === b.copies;
}

/** The slot vector of a plaintext constant (splat or dense); weight references must be resolved first. */
export function constantSlots(data: FheConstantData, slots: number, name: string, into?: Float64Array): Float64Array {
  if (data.kind === 'splat') return (into ?? new Float64Array(slots)).fill(data.value);
  if (data.kind === 'dense') {
    const v = into ?? new Float64Array(slots);
    v.set(data.values);
    if (into) v.fill(0, data.values.length);
    return v;
  }
  if (data.kind === 'diagonal') {
    const v = diagonalSlots(data.matrix, data.geometry, slots);
    if (!into) return v;
    into.set(v);
    return into;
  }
  if (data.kind === 'elided') throw new FhecError(`constant @${name} was elided when the program was printed: its values are not here`);
  throw new FhecError(`constant @${name} still refers to the weights file; load the plan with its weights`);
}
