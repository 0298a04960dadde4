// Bytes a refresh puts on the wire with the SEAL backend, predicted from the parameters (the cost
// model counts them without running anything; test/refresh-protocol.test.ts checks them against the
// measured messages). SEAL serializes uncompressed residues as 8-byte words:
// - request: the masked ciphertext at level l, 2 polynomials x (l+1) primes x N words;
// - reply: the fresh top-level ciphertext encrypted with the secret key, sent as its seed plus one
//   polynomial: (L+1) primes x N words.
// Fixed overheads (measured on node-seal 7, ComprModeType.none): SEAL's headers, 113 bytes for a
// ciphertext and 194 for a seeded one; our envelope (runtime/ckks/wire.ts) and message framing: the
// request's step, and per item the scale, bound and mask bits (messages.ts) and the refresh point's name (its length in UTF-8, `pointBytes`; the
// value names of model plans are a few bytes, 8 is assumed when not given).

import { parametersId, topLevel, type CkksParameters } from '../../ir/ckks/params.js';
import { REQUEST_ITEM_FIXED } from './messages.js';

const SEAL_CIPHERTEXT_OVERHEAD = 113;
const SEAL_SEEDED_OVERHEAD = 194;
const MESSAGE_HEADER = 14;
const REQUEST_STEP = 4;
const REQUEST_ITEM = REQUEST_ITEM_FIXED;
const TYPICAL_POINT_BYTES = 8;
const REPLY_ITEM = 4;

export interface RefreshBytes {
  toKeyHolder: number;
  toEvaluator: number;
}

function envelopeBytes(p: CkksParameters): number {
  return 6 + new TextEncoder().encode(`seal|${parametersId(p)}`).length;
}

/** Bytes each way of one round trip refreshing ciphertexts at the given levels (one per entry). */
export function predictRefreshBytes(p: CkksParameters, levels: number[], pointBytes = TYPICAL_POINT_BYTES): RefreshBytes {
  const n = p.ringDegree;
  const env = envelopeBytes(p);
  const top = topLevel(p);
  let toKeyHolder = MESSAGE_HEADER + REQUEST_STEP;
  let toEvaluator = MESSAGE_HEADER;
  for (const l of levels) {
    toKeyHolder += REQUEST_ITEM + pointBytes + env + SEAL_CIPHERTEXT_OVERHEAD + 2 * (l + 1) * n * 8;
    toEvaluator += REPLY_ITEM + env + SEAL_SEEDED_OVERHEAD + (top + 1) * n * 8;
  }
  return { toKeyHolder, toEvaluator };
}
