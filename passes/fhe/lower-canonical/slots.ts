// Slot coordinates of the token-block layout (see activation.ts), for building masks and tables.

import type { SlotLayout } from '../../../ir/fhe/types.js';

export interface SlotPos {
  /** Token block. */
  t: number;
  /** Copy within the token block. */
  copy: number;
  /** Offset within the period (the element index when < length). */
  j: number;
}

export function slotPos(layout: SlotLayout, u: number): SlotPos {
  const t = Math.floor(u / layout.stride);
  const w = u - t * layout.stride;
  const copy = Math.floor(w / layout.period);
  return { t, copy, j: w - copy * layout.period };
}

/** A dense vector with f(pos) at every slot (pos.t >= tokens gets f too; callers decide). */
export function slotVector(slots: number, layout: SlotLayout, f: (p: SlotPos, u: number) => number): Float64Array {
  const v = new Float64Array(slots);
  for (let u = 0; u < slots; u++) v[u] = f(slotPos(layout, u), u);
  return v;
}

/** True when the slot holds an element of a real token (t < tokens, j < length). */
export function isReal(layout: SlotLayout, p: SlotPos): boolean {
  return p.t < layout.tokens && p.j < layout.length && p.copy < layout.copies;
}
