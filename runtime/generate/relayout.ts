// Moving a KV cache from one step's output layout to the next step's input layout. A prefill of S
// tokens or a decode after P tokens leaves its present keys/values in token blocks of one stride; the
// next decode step takes them in blocks of stride slots / nextPow2(P + 2), which changes whenever the
// context passes a power of two. The map is public (it follows from the two layouts): destination
// slot -> source slot, every copy of a destination block read from copy 0 of the source block; slots
// of no token stay zero, which the decode kernel relies on for the block it writes the new token into.
// A cache split over several ciphertexts (token groups, passes/fhe/lower-canonical/attention-decode.ts)
// moves by pieces: each (source, destination) pair with the tokens' first positions (fromStart,
// toStart) maps the source's tokens that fall in the destination, and the pieces are added.

import { FhecError } from '../../ir/errors.js';
import type { SlotLayout } from '../../ir/fhe/types.js';

import type { RelayoutPiece } from '../refresh/schedule.js';

export type { RelayoutPiece };

/** For each destination slot, the source slot it copies, or -1 (zero). */
export function relayoutMap(from: SlotLayout, to: SlotLayout, slots: number, piece?: RelayoutPiece): Int32Array {
  if (from.length !== to.length || (!piece && from.tokens !== to.tokens)) {
    throw new FhecError(`cannot carry a cache of ${from.tokens} x ${from.length} into a layout of ${to.tokens} x ${to.length}`);
  }
  const shift = piece ? piece.toStart - piece.fromStart : 0;
  const map = new Int32Array(slots).fill(-1);
  for (let t = 0; t < to.tokens; t++) {
    const src = t + shift;
    if (src < 0 || src >= from.tokens) continue;
    for (let c = 0; c < to.copies; c++) {
      for (let j = 0; j < to.length; j++) map[t * to.stride + c * to.period + j] = src * from.stride + j;
    }
  }
  return map;
}

/** Whether a piece moves any token (the source's tokens overlap the destination's). */
export function pieceOverlaps(from: SlotLayout, to: SlotLayout, piece: RelayoutPiece): boolean {
  return piece.fromStart < piece.toStart + to.tokens && piece.toStart < piece.fromStart + from.tokens;
}

export function applyRelayout(map: Int32Array, values: ArrayLike<number>): Float64Array {
  const out = new Float64Array(map.length);
  for (let u = 0; u < map.length; u++) if (map[u]! >= 0) out[u] = values[map[u]!]!;
  return out;
}
