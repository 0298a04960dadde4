// The evaluator's half of a client-aided refresh. Holding only public material, it
//   1. re-randomizes the ciphertext and adds a fresh integer mask polynomial r in the coefficient
//      domain (runtime/refresh/mask.ts: uniform over [-W, W], W = 2^k B' sized by the value's bound),
//   2. sends it to the key holder in a request (bytes) and gets a reply (bytes) holding
//      Enc(round(rho (m + r))) at the top level and the requested scale (rho: the scale change),
//   3. subtracts round(rho r) there, exactly: Enc(x) at the top level.
// Several ciphertexts can share one round trip (refreshMany). Every byte each way is counted.

import { FhecError } from '../../ir/errors.js';
import type { CkksEvaluator, CkksHandle, CkksRefresher } from '../backend.js';
import { topLevel } from '../../ir/ckks/params.js';
import type { ChannelOptions, RefreshTransport } from './key-holder.js';
import { DEFAULT_MASK_POLICY, planMask, roundScaled, sampleIntegerMask, scaleRatio, type MaskPolicy } from './mask.js';
import {
  authenticateMessage,
  checkAuthenticatedMessage,
  decodeRefreshReply,
  encodeRefreshRequest,
  type RefreshReply,
  type RefreshRequest,
  type RefreshRequestItem,
} from './messages.js';

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
  /** The refreshed value's name (the refresh point), to look up a per-value bound. */
  name?: string;
  /** Bound on |x| for this item; else the policy's per-name bound or its default. */
  bound?: number;
}

/**
 * Masks the items, one round trip to the key holder, unmasks: the one implementation of the
 * coefficient-domain mask, shared by refreshes and KV-cache carries. `target` gives each item's
 * fresh level and scale; returns the fresh ciphertexts (owned by the caller).
 */
export function exactRefreshRoundTrip(
  ev: CkksEvaluator,
  items: (RefreshItem & { bound: number; level: number })[],
  policy: MaskPolicy,
  send: (request: RefreshRequest) => RefreshReply,
): CkksHandle[] {
  const params = ev.params;
  const n = params.ringDegree;
  const masks: bigint[][] = [];
  const requestItems: RefreshRequestItem[] = items.map((it, i) => {
    const level = ev.levelOf(it.ct);
    const point = it.name ?? `refresh ${i}`;
    const plan = planMask(params, level, ev.scaleOf(it.ct), it.bound, policy, point);
    policy.observe?.(point, level, it.bound, plan);
    const r = sampleIntegerMask(n, plan.width, policy.random);
    masks.push(r);
    const masked = ev.addIntegerPolynomial(it.ct, r, true);
    const bytes = ev.saveCiphertext(masked);
    ev.free(masked);
    return { ciphertext: bytes, scale: it.scale, point, bound: it.bound, maskBits: plan.maskBits };
  });
  const reply = send({ id: 0, items: requestItems });
  if (reply.ciphertexts.length !== items.length) {
    throw new FhecError(`refresh reply holds ${reply.ciphertexts.length} ciphertexts, expected ${items.length}`);
  }
  return reply.ciphertexts.map((bytes, i) => {
    const it = items[i]!;
    const fresh = ev.loadCiphertext(bytes);
    try {
      if (ev.levelOf(fresh) !== it.level) throw new FhecError(`refresh reply ciphertext ${i} is at level ${ev.levelOf(fresh)}, requested ${it.level}`);
      if (ev.scaleOf(fresh) !== it.scale) {
        throw new FhecError(`refresh reply ciphertext ${i} has scale ${ev.scaleOf(fresh)}, requested ${it.scale}`);
      }
      const ratio = scaleRatio(it.scale, ev.scaleOf(it.ct));
      return ev.addIntegerPolynomial(fresh, masks[i]!.map((v) => -roundScaled(v, ratio)));
    } finally {
      ev.free(fresh);
    }
  });
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
    const top = topLevel(ev.params);
    const sized = items.map((it) => ({
      ...it,
      level: top,
      bound: it.bound ?? (it.name !== undefined ? policy.bounds?.get(it.name) : undefined) ?? policy.valueBound,
    }));
    const out = exactRefreshRoundTrip(ev, sized, policy, (req) => {
      const id = this.nextId++;
      const key = this.options.macKey;
      const plainRequest = encodeRefreshRequest({ ...req, id });
      const request = key ? authenticateMessage(plainRequest, key) : plainRequest;
      const replyBytes = this.transport(request);
      this.traffic.roundTrips++;
      this.traffic.bytesToKeyHolder += request.length;
      this.traffic.bytesToEvaluator += replyBytes.length;
      const reply = decodeRefreshReply(key ? checkAuthenticatedMessage(replyBytes, key, 'reply') : replyBytes);
      if (reply.id !== id) throw new FhecError(`refresh reply answers request ${reply.id}, expected ${id}`);
      return reply;
    });
    this.traffic.ciphertexts += items.length;
    this.traffic.ms += performance.now() - t0;
    return out;
  }
}
