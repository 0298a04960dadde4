// The key holder's half of a client-aided refresh: it receives a request (bytes), checks every item
// against the plan's refresh schedule (schedule.ts: the refresh point, the ciphertext's level and
// scale, the scale it asks for, the step, the request id) and the item's mask against the point's
// bound from the schedule (mask.ts: at least its minimum hiding), decrypts each masked ciphertext to
// its exact integer polynomial, stops on a value beyond its bound, encrypts the same polynomial anew
// at the planned level and scale (and, where the request asks for the plan's rotations of the value,
// the same polynomial rotated, each encrypted anew), and answers with a reply (bytes). It never sees an unmasked
// intermediate: the evaluator masks before sending. A request the schedule does not contain ends the
// session before anything in it is decrypted.

import { FhecError } from '../../ir/errors.js';
import type { CkksClient, WhileWaiting } from '../backend.js';
import { slotsOf, topLevel } from '../../ir/ckks/params.js';
import { DEFAULT_MASK_POLICY } from './mask.js';
import { decodeRefreshRequest, encodeRefreshReply } from './messages.js';
import type { RefreshPoint, RefreshScheduleGuard } from './schedule.js';

/**
 * Bytes in, bytes out: the only channel between evaluator and key holder. One request carries a whole
 * refresh round (messages.ts). An in-process key holder answers at once; one across a network answers
 * with a promise, which only the asynchronous paths (evaluation workers, refreshManyAsync) can wait for.
 * `whileWaiting` is work the evaluator's thread can do until the answer comes: a transport that blocks
 * for it (a key holder in another thread or process) runs it after sending; one that answers at once
 * ignores it (there is no wait to fill).
 */
export type RefreshTransport = (request: Uint8Array, whileWaiting?: WhileWaiting) => Uint8Array | Promise<Uint8Array>;

export interface KeyHolderStats {
  requests: number;
  ciphertexts: number;
  /** Rotated copies of fresh values returned besides them (the plan's rotations, asked for by the evaluator). */
  rotatedCopies: number;
  /** Time spent checking, decrypting and re-encrypting. */
  ms: number;
}

/**
 * `schedule`: the guard built from the plan. 'unchecked' re-encrypts whatever is asked, at any scale,
 * with the bound the request states: only for tests of the masking arithmetic itself, never for a plan
 * (a dishonest evaluator could then learn log2|x| from which requests fail).
 */
export type KeyHolderSchedule = RefreshScheduleGuard | 'unchecked';

/**
 * The bound an item's mask must be sized for: the schedule's. A request stating another is refused
 * (the evaluator and the key holder read the same plan, so they agree unless one of them is wrong).
 */
export function scheduledBound(point: RefreshPoint, requested: number): number {
  if (requested !== point.bound) {
    throw new FhecError(`refresh request sizes the mask of '${point.id}' for bound ${requested}, the plan's bound is ${point.bound}`, { node: `%${point.id}` });
  }
  return point.bound;
}

export class RefreshKeyHolder {
  readonly stats: KeyHolderStats = { requests: 0, ciphertexts: 0, rotatedCopies: 0, ms: 0 };

  constructor(
    private readonly client: CkksClient,
    private readonly schedule: KeyHolderSchedule,
    /** Fewest hiding bits per ciphertext accepted (default 40, mask.ts). */
    private readonly minHidingBits = DEFAULT_MASK_POLICY.minHidingBits,
  ) {}

  /** `whileWaiting`: the caller's work, run while a client with a refresh thread decrypts and re-encrypts. */
  handle(request: Uint8Array, whileWaiting?: WhileWaiting): Uint8Array {
    const t0 = performance.now();
    const req = decodeRefreshRequest(request);
    const top = topLevel(this.client.params);
    const guard = this.schedule === 'unchecked' ? undefined : this.schedule;
    let targets = req.items.map((it) => ({ level: top, scale: it.scale, bound: it.bound, rotations: it.rotations ?? [] }));
    if (guard) {
      guard.acceptRequest('refresh', req.id, req.step);
      const slots = slotsOf(this.client.params);
      targets = req.items.map((it) => {
        const ct = this.client.inspect(it.ciphertext);
        const rotations = it.rotations ?? [];
        const p = guard.acceptItem({ id: it.point, kind: 'refresh', level: ct.level, scale: ct.scale, size: ct.size, toLevel: top, toScale: it.scale, slots, rotations });
        return { level: p.toLevel, scale: it.scale, bound: scheduledBound(p, it.bound), rotations };
      });
    }
    const fresh = this.client.refreshExact(
      req.items.map((it, i) => ({ ciphertext: it.ciphertext, target: { ...targets[i]!, point: it.point, maskBits: it.maskBits, minHidingBits: this.minHidingBits } })),
      whileWaiting,
    );
    this.stats.requests++;
    this.stats.ciphertexts += req.items.length;
    this.stats.rotatedCopies += fresh.length - req.items.length;
    this.stats.ms += performance.now() - t0;
    return encodeRefreshReply({ id: req.id, ciphertexts: fresh });
  }

  /** An in-process transport to this key holder (a network transport would carry the same bytes). */
  transport(): RefreshTransport {
    return (bytes, whileWaiting) => this.handle(bytes, whileWaiting);
  }
}
