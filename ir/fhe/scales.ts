// Canonical scales: the scale a managed ciphertext has at each level. The top scale is chosen; below it
// Delta_{l-1} = Delta_l * Delta_l / q_l, which is exactly what SEAL computes when it rescales the product
// of two canonical ciphertexts, so products and rescales never drift from the canonical scales.

import type { FheChain } from './types.js';

export function canonicalScales(chain: FheChain, topScale: number): number[] {
  const top = chain.primes.length - 1;
  const s = new Array<number>(top + 1);
  s[top] = topScale;
  for (let l = top; l >= 1; l--) s[l - 1] = (s[l]! * s[l]!) / Number(chain.primes[l]!);
  return s;
}
