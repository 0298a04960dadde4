// The evaluator's half of a client-aided refresh. Holding only public material, it
//   1. adds a fresh uniform mask r (runtime/refresh/mask.ts) encoded at the ciphertext's level and scale,
//   2. sends the masked ciphertext to the key holder in a request (bytes) and gets a reply (bytes)
//      holding Enc(x + r) at the top level and the requested scale,
//   3. subtracts r encoded at the top level and that scale: Enc(x) at the top level.
// Several ciphertexts can share one round trip (refreshMany). Every byte each way is counted.

import { FhecError } from '../../ir/errors.js';
import type { CkksEvaluator, CkksHandle, CkksRefresher } from '../backend.js';
import { slotsOf, topLevel } from '../../ir/ckks/params.js';
import type { ChannelOptions, RefreshTransport } from './key-holder.js';
import { checkMaskFits, DEFAULT_MASK_POLICY, maskRadius, sampleMask, type MaskPolicy } from './mask.js';
import { authenticateMessage, checkAuthenticatedMessage, decodeRefreshReply, encodeRefreshRequest } from './messages.js';

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
  /** The refreshed value's name, to look up a per-value bound. */
  name?: string;
}

export interface RefresherOptions extends ChannelOptions {
  mask?: Partial<MaskPolicy>;
}

export class MaskedRefresher implements CkksRefresher {
  readonly traffic: RefreshTraffic = { roundTrips: 0, ciphertexts: 0, bytesToKeyHolder: 0, bytesToEvaluator: 0, ms: 0 };
  private readonly policy: MaskPolicy;
  private nextId = 1;

  constructor(
    private readonly ev: CkksEvaluator,
    private readonly transport: RefreshTransport,
    private readonly options: RefresherOptions = {},
  ) {
    this.policy = { ...DEFAULT_MASK_POLICY, ...options.mask };
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
      const bound = (it.name !== undefined ? policy.bounds?.get(it.name) : undefined) ?? policy.valueBound;
      checkMaskFits(params, level, ev.scaleOf(it.ct), bound, policy.maskBits, it.name);
      const r = sampleMask(slots, maskRadius(bound, policy.maskBits), policy.uniform);
      masks.push(r);
      const pt = ev.encode(r, level, ev.scaleOf(it.ct));
      const masked = ev.addPlain(it.ct, pt);
      ev.free(pt);
      const bytes = ev.saveCiphertext(masked);
      ev.free(masked);
      return { ciphertext: bytes, scale: it.scale };
    });
    const id = this.nextId++;
    const key = this.options.macKey;
    const plainRequest = encodeRefreshRequest({ id, items: requestItems });
    const request = key ? authenticateMessage(plainRequest, key) : plainRequest;
    const replyBytes = this.transport(request);
    this.traffic.roundTrips++;
    this.traffic.bytesToKeyHolder += request.length;
    this.traffic.bytesToEvaluator += replyBytes.length;
    const reply = decodeRefreshReply(key ? checkAuthenticatedMessage(replyBytes, key, 'reply') : replyBytes);
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
