// The key holder's half of a client-aided refresh: it receives a request (bytes), checks every item
// against the plan's refresh schedule (schedule.ts: the refresh point, the ciphertext's level and
// scale, the scale it asks for, the step, the request id), decrypts each masked ciphertext, encrypts
// the same slot values anew at the top level and the planned scale, and answers with a reply (bytes).
// It never sees an unmasked intermediate: the evaluator masks before sending. A request the schedule
// does not contain ends the session before anything in it is decrypted.

import type { CkksClient } from '../backend.js';
import { slotsOf, topLevel } from '../../ir/ckks/params.js';
import { decodeRefreshRequest, encodeRefreshReply } from './messages.js';
import type { RefreshScheduleGuard } from './schedule.js';

/** Bytes in, bytes out: the only channel between evaluator and key holder. */
export type RefreshTransport = (request: Uint8Array) => Uint8Array;

export interface KeyHolderStats {
  requests: number;
  ciphertexts: number;
  /** Time spent checking, decrypting and re-encrypting. */
  ms: number;
}

/**
 * `schedule`: the guard built from the plan. 'unchecked' re-encrypts whatever is asked, at any scale:
 * only for tests of the masking arithmetic itself, never for a plan (a dishonest evaluator could then
 * learn log2|x| from which requests fail).
 */
export type KeyHolderSchedule = RefreshScheduleGuard | 'unchecked';

export class RefreshKeyHolder {
  readonly stats: KeyHolderStats = { requests: 0, ciphertexts: 0, ms: 0 };

  constructor(
    private readonly client: CkksClient,
    private readonly schedule: KeyHolderSchedule,
  ) {}

  handle(request: Uint8Array): Uint8Array {
    const t0 = performance.now();
    const req = decodeRefreshRequest(request);
    const top = topLevel(this.client.params);
    const guard = this.schedule === 'unchecked' ? undefined : this.schedule;
    if (guard) {
      guard.acceptRequest('refresh', req.id, req.step);
      const slots = slotsOf(this.client.params);
      for (const it of req.items) {
        const ct = this.client.inspect(it.ciphertext);
        guard.acceptItem({ id: it.point, kind: 'refresh', level: ct.level, scale: ct.scale, size: ct.size, toLevel: top, toScale: it.scale, slots });
      }
    }
    const fresh = req.items.map((it) => this.client.reencrypt(it.ciphertext, top, it.scale));
    this.stats.requests++;
    this.stats.ciphertexts += req.items.length;
    this.stats.ms += performance.now() - t0;
    return encodeRefreshReply({ id: req.id, ciphertexts: fresh });
  }

  /** An in-process transport to this key holder (a network transport would carry the same bytes). */
  transport(): RefreshTransport {
    return (bytes) => this.handle(bytes);
  }
}
