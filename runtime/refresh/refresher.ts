// The evaluator's half of a client-aided refresh. Holding only public material, it
//   1. adds a fresh uniform mask r (runtime/refresh/mask.ts) encoded at the ciphertext's level and scale,
//   2. sends the masked ciphertext to the key holder in a request (bytes) and gets a reply (bytes)
//      holding Enc(x + r) at the top level and the requested scale,
//   3. subtracts r encoded at the top level and that scale: Enc(x) at the top level.
// Several ciphertexts can share one round trip (refreshMany). Every byte each way is counted.
// The mask is sized from a bound on |x| per refresh point (the plan's, schedule.ts): a refresh with no
// bound is refused, never masked by a default.

import { FhecError } from '../../ir/errors.js';
import type { CkksEvaluator, CkksHandle, CkksRefresher } from '../backend.js';
import { slotsOf, topLevel } from '../../ir/ckks/params.js';
import type { RefreshTransport } from './key-holder.js';
import { maxAbsOf, type RefreshAudit } from './audit.js';
import { checkMaskFits, DEFAULT_MASK_POLICY, hidingBits, maskRadius, sampleMask, type MaskPolicy } from './mask.js';
import { decodeRefreshReply, encodeRefreshRequest } from './messages.js';

export interface RefreshTraffic {
  /** Request/reply exchanges with the key holder. */
  roundTrips: number;
  /** Ciphertexts refreshed. */
  ciphertexts: number;
  bytesToKeyHolder: number;
  bytesToEvaluator: number;
  /** Wall time of the refreshes, the key holder's work and the transport included. */
  ms: number;
}

export interface RefreshItem {
  ct: CkksHandle;
  /** Scale of the refreshed ciphertext at the top level. */
  scale: number;
  /** The refresh point: the refreshed value's name, which also looks up its bound. */
  name?: string;
}

export interface RefresherOptions {
  mask?: Partial<MaskPolicy>;
  /** Records every refreshed ciphertext (--audit-refresh). */
  audit?: RefreshAudit;
}

/** Point name of a refresh made outside a plan (a hand-made call with no value name). */
const UNNAMED = 'value';

export class MaskedRefresher implements CkksRefresher {
  readonly traffic: RefreshTraffic = { roundTrips: 0, ciphertexts: 0, bytesToKeyHolder: 0, bytesToEvaluator: 0, ms: 0 };
  private readonly policy: MaskPolicy;
  private nextId = 1;
  /** The session's current step, named in every request (the key holder checks it). */
  step = 0;

  constructor(
    private readonly ev: CkksEvaluator,
    private readonly transport: RefreshTransport,
    private readonly options: RefresherOptions = {},
  ) {
    this.policy = { ...DEFAULT_MASK_POLICY, ...options.mask };
  }

  /** The bounds of the refresh points to come (a generation's next step plan), by refreshed value. */
  setBounds(bounds: ReadonlyMap<string, number>): void {
    this.policy.bounds = bounds;
  }

  /** The bound the mask of this refresh point is sized from; none is an error, never a default. */
  boundFor(name: string | undefined): number {
    const b = (name !== undefined ? this.policy.bounds?.get(name) : undefined) ?? this.policy.valueBound;
    if (b === undefined) {
      throw new FhecError(`refresh of %${name ?? UNNAMED} has no bound on |x| to size its mask: the plan carries none for it (recompile the plan)`, { node: `%${name ?? UNNAMED}` });
    }
    return b;
  }

  refresh(ct: CkksHandle, scale: number, name?: string): CkksHandle {
    return this.refreshMany([{ ct, scale, name }])[0]!;
  }

  /** Refreshes all items in one round trip. The inputs stay owned by the caller. */
  refreshMany(items: RefreshItem[]): CkksHandle[] {
    if (items.length === 0) return [];
    const t0 = performance.now();
    const { ev, policy } = this;
    const params = ev.params;
    const top = topLevel(params);
    const slots = slotsOf(params);
    const masks: Float64Array[] = [];
    const requestItems = items.map((it) => {
      const level = ev.levelOf(it.ct);
      const bound = this.boundFor(it.name);
      checkMaskFits(params, level, ev.scaleOf(it.ct), bound, policy.maskBits, it.name);
      this.options.audit?.record({
        step: this.step,
        kind: 'refresh',
        point: it.name ?? UNNAMED,
        level,
        scale: ev.scaleOf(it.ct),
        bound,
        observedMax: ev.simulatedValues ? maxAbsOf(ev.simulatedValues(it.ct)) : null,
        hidingBits: hidingBits(bound, policy.maskBits),
      });
      const r = sampleMask(slots, maskRadius(bound, policy.maskBits), policy.uniform);
      masks.push(r);
      const pt = ev.encode(r, level, ev.scaleOf(it.ct));
      const masked = ev.addPlain(it.ct, pt);
      ev.free(pt);
      const bytes = ev.saveCiphertext(masked);
      ev.free(masked);
      return { point: it.name ?? UNNAMED, ciphertext: bytes, scale: it.scale };
    });
    const id = this.nextId++;
    const request = encodeRefreshRequest({ id, step: this.step, items: requestItems });
    const replyBytes = this.transport(request);
    this.traffic.roundTrips++;
    this.traffic.bytesToKeyHolder += request.length;
    this.traffic.bytesToEvaluator += replyBytes.length;
    const reply = decodeRefreshReply(replyBytes);
    if (reply.id !== id) throw new FhecError(`refresh reply answers request ${reply.id}, expected ${id}`);
    if (reply.ciphertexts.length !== items.length) {
      throw new FhecError(`refresh reply holds ${reply.ciphertexts.length} ciphertexts, expected ${items.length}`);
    }
    const out = reply.ciphertexts.map((bytes, i) => {
      const fresh = ev.loadCiphertext(bytes);
      try {
        if (ev.levelOf(fresh) !== top) throw new FhecError(`refresh reply ciphertext ${i} is at level ${ev.levelOf(fresh)}, not the top level ${top}`);
        if (ev.scaleOf(fresh) !== items[i]!.scale) {
          throw new FhecError(`refresh reply ciphertext ${i} has scale ${ev.scaleOf(fresh)}, requested ${items[i]!.scale}`);
        }
        const unmask = ev.encode(masks[i]!.map((v) => -v), top, items[i]!.scale);
        const res = ev.addPlain(fresh, unmask);
        ev.free(unmask);
        return res;
      } finally {
        ev.free(fresh);
      }
    });
    this.traffic.ciphertexts += items.length;
    this.traffic.ms += performance.now() - t0;
    return out;
  }
}
