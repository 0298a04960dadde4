// Multidirectional (numpy) broadcasting of possibly symbolic shapes.

import type { Dim } from '../graph/types.js';

/** Broadcast shapes; undefined if a rank is unknown; throws a message string on a definite mismatch. */
export function broadcastShapes(shapes: (Dim[] | undefined)[]): Dim[] | undefined {
  if (shapes.some((s) => s === undefined)) return undefined;
  const rank = Math.max(0, ...shapes.map((s) => s!.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let d: Dim = 1;
    for (const s of shapes) {
      const k = s!.length - rank + i;
      if (k < 0) continue;
      d = broadcastDim(d, s![k]!);
    }
    out.push(d);
  }
  return out;
}

function broadcastDim(a: Dim, b: Dim): Dim {
  if (a === 1) return b;
  if (b === 1) return a;
  if (a === b) return a;
  if (typeof a === 'number' && typeof b === 'number') {
    throw new BroadcastError(`cannot broadcast dims ${a} and ${b}`);
  }
  // One symbolic, one concrete (>1): the concrete one wins (the symbol must equal it or be 1).
  if (typeof a === 'number') return a;
  if (typeof b === 'number') return b;
  return null;
}

export class BroadcastError extends Error {}
