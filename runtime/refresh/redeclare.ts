/**
 * A refresh with a factor c (`refresh %x times c`) masks its operand declared at scale / c: the same integer
 * polynomial, so the key holder's rescaling to the requested scale multiplies the value by c for free. This is
 * the one place such copies are made and freed (the in-process executor and the evaluation workers both use it).
 */

import type { CkksEvaluator, CkksHandle } from '../backend.js';

export interface Redeclared {
  /** The ciphertexts to mask, in the order given: the operand itself when it has no factor, else its copy. */
  cts: CkksHandle[];
  /** Frees the copies (never the operands). */
  free(): void;
}

/** Declares each ciphertext with a factor at its scale / factor; copies already made are freed if one fails. */
export function redeclareForFactors(ev: CkksEvaluator, items: { ct: CkksHandle; factor: number | undefined }[]): Redeclared {
  const copies: CkksHandle[] = [];
  const free = (): void => {
    for (const h of copies.splice(0)) ev.free(h);
  };
  try {
    const cts = items.map(({ ct, factor }) => {
      if (factor === undefined || factor === 1) return ct;
      const copy = ev.withScale(ct, ev.scaleOf(ct) / factor);
      copies.push(copy);
      return copy;
    });
    return { cts, free };
  } catch (e) {
    free();
    throw e;
  }
}
