// Bytes a refresh puts on the wire with the SEAL backend, predicted from the parameters (the cost
// model counts them without running anything; test/refresh-protocol.test.ts checks them against the
// measured messages). SEAL serializes uncompressed residues as 8-byte words:
// - request: the masked ciphertext at level l, 2 polynomials x (l+1) primes x N words;
// - reply: the fresh top-level ciphertext encrypted with the secret key, sent as its seed plus one
//   polynomial: (L+1) primes x N words.
// Fixed overheads (measured on node-seal 7, ComprModeType.none): SEAL's headers, 113 bytes for a
// ciphertext and 194 for a seeded one; our envelope (runtime/ckks/wire.ts) and message framing, and
// the 32-byte HMAC tag of each message when the channel is authenticated.

import { parametersId, topLevel, type CkksParameters } from '../../ir/ckks/params.js';

const SEAL_CIPHERTEXT_OVERHEAD = 113;
const SEAL_SEEDED_OVERHEAD = 194;
const MESSAGE_HEADER = 14;
// f64 scale, f64 bound, u16 mask bits, u16 name length, u32 ciphertext length (plus the name).
const REQUEST_ITEM = 24;
const REPLY_ITEM = 4;

export interface RefreshBytes {
  toKeyHolder: number;
  toEvaluator: number;
}

function envelopeBytes(p: CkksParameters): number {
  return 6 + new TextEncoder().encode(`seal|${parametersId(p)}`).length;
}

/**
 * Bytes each way of one round trip refreshing ciphertexts at the given levels (one per entry), named
 * by their refresh points (the refresher's default names when not given).
 */
export function predictRefreshBytes(p: CkksParameters, levels: number[], authenticated = false, points = levels.map((_, i) => `refresh ${i}`)): RefreshBytes {
  const n = p.ringDegree;
  const env = envelopeBytes(p);
  const top = topLevel(p);
  let toKeyHolder = MESSAGE_HEADER + (authenticated ? 32 : 0);
  let toEvaluator = MESSAGE_HEADER + (authenticated ? 32 : 0);
  for (const [i, l] of levels.entries()) {
    toKeyHolder += REQUEST_ITEM + new TextEncoder().encode(points[i]!).length + env + SEAL_CIPHERTEXT_OVERHEAD + 2 * (l + 1) * n * 8;
    toEvaluator += REPLY_ITEM + env + SEAL_SEEDED_OVERHEAD + (top + 1) * n * 8;
  }
  return { toKeyHolder, toEvaluator };
}
