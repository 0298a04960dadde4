// The key holder's half of a client-aided refresh: it receives a request (bytes), checks each item's
// mask (runtime/refresh/mask.ts: at least its minimum hiding), decrypts each masked ciphertext to its
// exact integer polynomial, stops on a value beyond its bound, encrypts the same polynomial anew at the
// top level and the requested scale, and answers with a reply (bytes). It never sees an unmasked
// intermediate: the evaluator masks before sending.

import type { CkksClient } from '../backend.js';
import { topLevel } from '../../ir/ckks/params.js';
import { DEFAULT_MASK_POLICY } from './mask.js';
import { authenticateMessage, checkAuthenticatedMessage, decodeRefreshRequest, encodeRefreshReply } from './messages.js';

/** Bytes in, bytes out: the only channel between evaluator and key holder. */
export type RefreshTransport = (request: Uint8Array) => Uint8Array;

export interface KeyHolderStats {
  requests: number;
  ciphertexts: number;
  /** Time spent decrypting and re-encrypting. */
  ms: number;
}

export interface ChannelOptions {
  /** Session key both parties hold: every message then carries an HMAC-SHA256 tag. */
  macKey?: Uint8Array;
  /** Fewest hiding bits per ciphertext the key holder accepts (default 40). */
  minHidingBits?: number;
}

export class RefreshKeyHolder {
  readonly stats: KeyHolderStats = { requests: 0, ciphertexts: 0, ms: 0 };

  constructor(
    private readonly client: CkksClient,
    private readonly channel: ChannelOptions = {},
  ) {}

  handle(request: Uint8Array): Uint8Array {
    const t0 = performance.now();
    const key = this.channel.macKey;
    const req = decodeRefreshRequest(key ? checkAuthenticatedMessage(request, key, 'request') : request);
    const top = topLevel(this.client.params);
    const minHidingBits = this.channel.minHidingBits ?? DEFAULT_MASK_POLICY.minHidingBits;
    const fresh = req.items.map((it) =>
      this.client.refreshExact(it.ciphertext, { level: top, scale: it.scale, point: it.point, bound: it.bound, maskBits: it.maskBits, minHidingBits }),
    );
    this.stats.requests++;
    this.stats.ciphertexts += req.items.length;
    this.stats.ms += performance.now() - t0;
    const reply = encodeRefreshReply({ id: req.id, ciphertexts: fresh });
    return key ? authenticateMessage(reply, key) : reply;
  }

  /** An in-process transport to this key holder (a network transport would carry the same bytes). */
  transport(): RefreshTransport {
    return (bytes) => this.handle(bytes);
  }
}
