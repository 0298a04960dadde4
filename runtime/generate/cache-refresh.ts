// Carrying the encrypted KV cache from one step to the next: a client-aided refresh that also moves
// slots. A step's present keys/values come out several levels down, and the next step wants them at
// the top level in its own layout (relayout.ts). The evaluator masks each ciphertext with fresh
// uniform noise r (as runtime/refresh does), the key holder decrypts x + r, applies the public slot
// map, encrypts at the requested level and scale and answers; the evaluator subtracts the mapped mask.
// The key holder sees only x + r; the evaluator never decrypts. The key holder takes nothing from the
// request on trust: every item must be the plan's next cache carry (schedule.ts), with the plan's
// layouts, level and scale, or the session ends.
//   request header: {kind: 'cache-refresh', id, step, items: [{point, from, to, level, scale}]}, blobs: masked ciphertexts
//   reply header:   {kind: 'cache-fresh', id}, blobs: fresh ciphertexts, same order

import { FhecError } from '../../ir/errors.js';
import type { SlotLayout } from '../../ir/fhe/types.js';
import type { CkksClient, CkksEvaluator, CkksHandle } from '../backend.js';
import { slotsOf } from '../../ir/ckks/params.js';
import { maxAbsOf, type RefreshAudit } from '../refresh/audit.js';
import { checkMaskFits, hidingBits, maskRadius, sampleMask, secureUniform } from '../refresh/mask.js';
import type { RefreshScheduleGuard } from '../refresh/schedule.js';
import { decodeMessage, encodeMessage } from './messages.js';
import { applyRelayout, relayoutMap, type RelayoutPiece } from './relayout.js';
import type { SyncChannel } from './transport.js';

export interface CacheRefreshItem {
  ct: CkksHandle;
  from: SlotLayout;
  to: SlotLayout;
  level: number;
  scale: number;
  /** Bound on |value| (the plan's), for the mask. */
  bound: number;
  /** The refresh point: the cache input of the step it fills. */
  name: string;
  /** A piece of a split cache: only the source's tokens that fall in the destination move. */
  piece?: RelayoutPiece;
}

interface RequestHeader {
  kind: 'cache-refresh';
  id: number;
  step: number;
  items: { point: string; from: SlotLayout; to: SlotLayout; level: number; scale: number; piece?: RelayoutPiece }[];
}

export interface CacheRefreshTraffic {
  roundTrips: number;
  ciphertexts: number;
  bytesToKeyHolder: number;
  bytesToEvaluator: number;
  ms: number;
}

/** The evaluator's half. */
export class CacheRefresher {
  readonly traffic: CacheRefreshTraffic = { roundTrips: 0, ciphertexts: 0, bytesToKeyHolder: 0, bytesToEvaluator: 0, ms: 0 };
  private nextId = 1;
  /** The session's current step, named in every request. */
  step = 0;

  constructor(
    private readonly ev: CkksEvaluator,
    private readonly channel: SyncChannel,
    private readonly maskBits = 16,
    private readonly uniform: (n: number) => Float64Array = secureUniform,
    private readonly audit?: RefreshAudit,
  ) {}

  /** Refreshes and relayouts all items in one round trip; returns serialized ciphertexts. */
  refresh(items: CacheRefreshItem[]): Uint8Array[] {
    if (items.length === 0) return [];
    const t0 = performance.now();
    const { ev } = this;
    const slots = slotsOf(ev.params);
    const masks: Float64Array[] = [];
    const blobs = items.map((it) => {
      const level = ev.levelOf(it.ct);
      checkMaskFits(ev.params, level, ev.scaleOf(it.ct), it.bound, this.maskBits, it.name);
      this.audit?.record({
        step: this.step,
        kind: 'carry',
        point: it.name,
        level,
        scale: ev.scaleOf(it.ct),
        bound: it.bound,
        observedMax: ev.simulatedValues ? maxAbsOf(ev.simulatedValues(it.ct)) : null,
        hidingBits: hidingBits(it.bound, this.maskBits),
      });
      const r = sampleMask(slots, maskRadius(it.bound, this.maskBits), this.uniform);
      masks.push(r);
      const pt = ev.encode(r, level, ev.scaleOf(it.ct));
      const masked = ev.addPlain(it.ct, pt);
      ev.free(pt);
      const bytes = ev.saveCiphertext(masked);
      ev.free(masked);
      return bytes;
    });
    const id = this.nextId++;
    const header: RequestHeader = {
      kind: 'cache-refresh',
      id,
      step: this.step,
      items: items.map((it) => ({ point: it.name, from: it.from, to: it.to, level: it.level, scale: it.scale, ...(it.piece ? { piece: it.piece } : {}) })),
    };
    const request = encodeMessage(header, blobs);
    const replyBytes = this.channel(request);
    this.traffic.roundTrips++;
    this.traffic.bytesToKeyHolder += request.length;
    this.traffic.bytesToEvaluator += replyBytes.length;
    const reply = decodeMessage<{ kind: 'cache-fresh'; id: number }>(replyBytes, ['cache-fresh']);
    if (reply.header.id !== id) throw new FhecError(`cache refresh reply answers request ${reply.header.id}, expected ${id}`);
    if (reply.blobs.length !== items.length) throw new FhecError(`cache refresh reply holds ${reply.blobs.length} ciphertexts, expected ${items.length}`);
    const out = reply.blobs.map((bytes, i) => {
      const it = items[i]!;
      const fresh = ev.loadCiphertext(bytes);
      try {
        if (ev.levelOf(fresh) !== it.level || ev.scaleOf(fresh) !== it.scale) {
          throw new FhecError(`cache refresh reply ciphertext ${i} is at level ${ev.levelOf(fresh)} and scale ${ev.scaleOf(fresh)}, requested ${it.level} and ${it.scale}`);
        }
        const unmask = applyRelayout(relayoutMap(it.from, it.to, slots, it.piece), masks[i]!).map((v) => -v);
        const pt = ev.encode(unmask, it.level, it.scale);
        const res = ev.addPlain(fresh, pt);
        ev.free(pt);
        const saved = ev.saveCiphertext(res);
        ev.free(res);
        return saved;
      } finally {
        ev.free(fresh);
      }
    });
    this.traffic.ciphertexts += items.length;
    this.traffic.ms += performance.now() - t0;
    return out;
  }
}

/**
 * The key holder's half: check each item against the plan's schedule, decrypt the masked values, move
 * the slots by the plan's layouts, encrypt anew at the plan's level and scale.
 */
export function handleCacheRefresh(client: CkksClient, guard: RefreshScheduleGuard, request: Uint8Array): { reply: Uint8Array; ciphertexts: number } {
  const { header, blobs } = decodeMessage<RequestHeader>(request, ['cache-refresh']);
  if (!Array.isArray(header.items) || header.items.length !== blobs.length || !Number.isInteger(header.id) || !Number.isInteger(header.step)) {
    throw new FhecError('cache refresh request is malformed');
  }
  guard.acceptRequest('carry', header.id, header.step);
  const slots = slotsOf(client.params);
  const points = header.items.map((it, i) => {
    if (!it || typeof it !== 'object' || typeof it.point !== 'string') throw new FhecError('cache refresh request is malformed');
    const ct = client.inspect(blobs[i]!);
    return guard.acceptItem({ id: it.point, kind: 'carry', level: ct.level, scale: ct.scale, size: ct.size, toLevel: it.level, toScale: it.scale, slots, from: it.from, to: it.to, ...(it.piece ? { piece: it.piece } : {}) });
  });
  // Everything below comes from the plan's schedule, not from the request.
  const fresh = points.map((p, i) => {
    const masked = client.decrypt(blobs[i]!);
    return client.encrypt(applyRelayout(relayoutMap(p.from!, p.to!, slots, p.piece), masked), p.toLevel, p.toScale);
  });
  return { reply: encodeMessage({ kind: 'cache-fresh', id: header.id } as { kind: string }, fresh), ciphertexts: fresh.length };
}
