// Work an evaluator's thread can do while it waits on the key holder (a refresh round or a cache
// carry in flight): the key holder's thread, or the remote client, decrypts and re-encrypts meanwhile.
// Each piece is short (one encode), and the work stops as soon as the answer is in, so it never delays
// the round by more than one piece.

import type { WhileWaiting } from '../backend.js';

export interface IdleWork {
  /** Whether anything is left to do (a round without idle work stays on the calling thread). */
  pending(): boolean;
  /** Does pieces of the work until `answered()` or nothing is left. */
  fill: WhileWaiting;
}

/** The works one after the other: the first with something left goes first. */
export function idleChain(works: readonly IdleWork[]): IdleWork {
  return {
    pending: () => works.some((w) => w.pending()),
    fill: (answered) => {
      for (const w of works) {
        if (answered()) return;
        if (w.pending()) w.fill(answered);
      }
    },
  };
}
