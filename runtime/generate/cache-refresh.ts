// Carrying the encrypted KV cache from one step to the next: a client-aided refresh that also moves
// slots. A step's present keys/values come out several levels down, and the next step wants them at
// its own level and scale in its own layout (relayout.ts). The mask is the refresh's coefficient-domain
// mask (runtime/refresh/mask.ts, exactRefreshRoundTrip): a slot permutation does not commute with it,
// so the key holder does not move slots. The evaluator moves them itself, homomorphically, before
// masking: one masked product per distinct rotation of the public slot map (0/1 masks encoded at the
// scale of the prime it then rescales by, so the scale comes back unchanged up to that prime's ratio),
// rotations with its Galois keys, one level. An identity map costs nothing. The key holder sees only
// the masked polynomial, with the same hiding as any refresh; the evaluator never decrypts.
// A cache split over several ciphertexts moves by pieces (relayout.ts: each source ciphertext into each
// destination it overlaps, with token offsets), each piece a carry of its own, added up afterwards.
// The key holder takes nothing from the request on trust: every item must be the plan's next cache
// carry (schedule.ts), with the plan's layouts, piece, level, scale and bound, or the session ends.
//   request header: {kind: 'cache-refresh', id, step, items: [{point, from, to, piece?, level, scale, bound, maskBits}]},
//                   blobs: masked ciphertexts (already in the destination layout)
//   reply header:   {kind: 'cache-fresh', id}, blobs: fresh ciphertexts, same order

import { FhecError } from '../../ir/errors.js';
import type { SlotLayout } from '../../ir/fhe/types.js';
import type { CkksClient, CkksEvaluator, CkksHandle, WhileWaiting } from '../backend.js';
import type { IdleWork } from '../ckks/idle-work.js';
import { slotsOf } from '../../ir/ckks/params.js';
import { applySlotMapToEach, isIdentityMap } from '../ckks/slot-map.js';
import { DEFAULT_MASK_POLICY, type MaskPolicy } from '../refresh/mask.js';
import { auditMasks, exactRefreshRoundTrip, inMessages, inMessagesAsync, type SizedRefreshItem } from '../refresh/refresher.js';
import type { WorkerPool } from '../parallel/pool.js';
import type { RefreshRequestItem } from '../refresh/messages.js';
import type { RefreshAudit } from '../refresh/audit.js';
import { scheduledBound } from '../refresh/key-holder.js';
import type { RefreshScheduleGuard } from '../refresh/schedule.js';
import { decodeMessage, encodeMessage } from './messages.js';
import { relayoutMap, type RelayoutPiece } from './relayout.js';
import type { KeyHolderChannel } from './transport.js';

/** A carry item as evaluation workers take it: the ciphertext's bytes instead of a handle. */
export type CarrySource = Omit<CacheRefreshItem, 'ct'> & { bytes: Uint8Array };

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

interface RequestItem {
  from: SlotLayout;
  to: SlotLayout;
  piece?: RelayoutPiece;
  level: number;
  scale: number;
  point: string;
  bound: number;
  maskBits: number;
}

interface RequestHeader {
  kind: 'cache-refresh';
  id: number;
  step: number;
  items: RequestItem[];
}

export interface CacheRefreshTraffic {
  roundTrips: number;
  ciphertexts: number;
  bytesToKeyHolder: number;
  bytesToEvaluator: number;
  ms: number;
}

/** Whether carrying from `from` to `to` (a piece, or the whole cache) moves slots, and so costs the evaluator one level. */
export function carryMovesSlots(from: SlotLayout, to: SlotLayout, slots: number, piece?: RelayoutPiece): boolean {
  return !isIdentityMap(relayoutMap(from, to, slots, piece));
}

/** The evaluator's half. */
export class CacheRefresher {
  readonly traffic: CacheRefreshTraffic = { roundTrips: 0, ciphertexts: 0, bytesToKeyHolder: 0, bytesToEvaluator: 0, ms: 0 };
  private nextId = 1;
  private readonly policy: MaskPolicy;
  /** The session's current step, named in every request. */
  step = 0;

  constructor(
    private readonly ev: CkksEvaluator,
    private readonly channel: KeyHolderChannel,
    mask: Partial<MaskPolicy> = {},
    private readonly audit?: RefreshAudit,
    /** At most this many ciphertexts per message (default: the whole carry in one; refresher.ts inMessages). */
    private readonly ciphertextsPerMessage?: number,
  ) {
    this.policy = { ...DEFAULT_MASK_POLICY, ...mask };
  }

  /** Moves, refreshes and returns all items in one round trip; returns serialized ciphertexts. */
  refresh(items: CacheRefreshItem[], idle?: IdleWork): Uint8Array[] {
    if (items.length === 0) return [];
    const t0 = performance.now();
    const moved = this.move(items);
    try {
      const fresh = exactRefreshRoundTrip(this.ev, moved, this.policy, (all) => inMessages(all, this.ciphertextsPerMessage, (req, at) => {
        const { id, request } = this.request(items.slice(at, at + req.length), req);
        const reply = this.channel(request, idle?.pending() ? idle.fill : undefined);
        if (reply instanceof Promise) throw new FhecError('this key holder answers asynchronously: run on evaluation workers (--workers), whose cache carries can wait');
        return this.reply(id, request, reply);
      }), auditMasks(this.ev, this.audit, this.step, 'carry'));
      return this.finish(items, fresh, t0);
    } finally {
      for (const m of moved) if (m.owned) this.ev.free(m.ct);
    }
  }

  /**
   * The same on evaluation workers (pool.ts carry): they move the slots and mask in parallel, each its
   * share of the items; this thread only sends the round trip (the key holder may answer asynchronously).
   */
  async refreshOnPool(items: CarrySource[], pool: WorkerPool): Promise<Uint8Array[]> {
    if (items.length === 0) return [];
    const t0 = performance.now();
    const slots = slotsOf(this.ev.params);
    const fresh = await pool.carry(
      items.map((it) => {
        const map = relayoutMap(it.from, it.to, slots, it.piece);
        return { bytes: it.bytes, ...(isIdentityMap(map) ? {} : { map }), level: it.level, scale: it.scale, bound: it.bound, point: it.name };
      }),
      slots,
      { hidingBits: this.policy.hidingBits, minHidingBits: this.policy.minHidingBits },
      async (masked) => {
        for (const m of masked) {
          this.audit?.record({ step: this.step, kind: 'carry', point: m.value, level: m.level, scale: m.scale, bound: m.request.bound, observedMax: null, hidingBits: m.hidingBits });
        }
        return inMessagesAsync(masked.map((m) => m.request), this.ciphertextsPerMessage, async (req, at) => {
          const { id, request } = this.request(items.slice(at, at + req.length), req);
          return this.reply(id, request, await this.channel(request));
        });
      },
    );
    this.traffic.ciphertexts += items.length;
    this.traffic.ms += performance.now() - t0;
    return fresh;
  }

  /** Each item in its destination layout (the evaluator moves the slots itself, before masking). */
  private move(items: CacheRefreshItem[]): (SizedRefreshItem & { owned: boolean })[] {
    const slots = slotsOf(this.ev.params);
    // Items that move alike (same layouts and piece, same level: every layer's keys and values) share
    // one slot-map plan and its encoded masks.
    const groups = new Map<string, number[]>();
    items.forEach((it, i) => {
      const key = JSON.stringify([it.from, it.to, it.piece ?? null, this.ev.levelOf(it.ct)]);
      const g = groups.get(key);
      if (g) g.push(i);
      else groups.set(key, [i]);
    });
    const moved = new Array<CkksHandle>(items.length);
    try {
      for (const idx of groups.values()) {
        const first = items[idx[0]!]!;
        const map = relayoutMap(first.from, first.to, slots, first.piece);
        const out = isIdentityMap(map) ? idx.map((i) => items[i]!.ct) : applySlotMapToEach(this.ev, idx.map((i) => items[i]!.ct), map);
        idx.forEach((i, k) => (moved[i] = out[k]!));
      }
    } catch (e) {
      moved.forEach((h, i) => h !== undefined && h !== items[i]!.ct && this.ev.free(h));
      throw e;
    }
    return items.map((it, i) => ({ ct: moved[i]!, owned: moved[i] !== it.ct, scale: it.scale, level: it.level, bound: it.bound, point: it.name }));
  }

  private request(items: Pick<CacheRefreshItem, 'from' | 'to' | 'piece' | 'level'>[], req: RefreshRequestItem[]): { id: number; request: Uint8Array } {
    const id = this.nextId++;
    const header: RequestHeader = {
      kind: 'cache-refresh',
      id,
      step: this.step,
      items: req.map((r, i) => {
        const it = items[i]!;
        return { point: r.point, from: it.from, to: it.to, ...(it.piece ? { piece: it.piece } : {}), level: it.level, scale: r.scale, bound: r.bound, maskBits: r.maskBits };
      }),
    };
    return { id, request: encodeMessage(header, req.map((r) => r.ciphertext)) };
  }

  private reply(id: number, request: Uint8Array, replyBytes: Uint8Array): Uint8Array[] {
    this.traffic.roundTrips++;
    this.traffic.bytesToKeyHolder += request.length;
    this.traffic.bytesToEvaluator += replyBytes.length;
    const reply = decodeMessage<{ kind: 'cache-fresh'; id: number }>(replyBytes, ['cache-fresh']);
    if (reply.header.id !== id) throw new FhecError(`cache refresh reply answers request ${reply.header.id}, expected ${id}`);
    return reply.blobs;
  }

  private finish(items: CacheRefreshItem[], fresh: CkksHandle[], t0: number): Uint8Array[] {
    const out = fresh.map((h) => {
      const bytes = this.ev.saveCiphertext(h);
      this.ev.free(h);
      return bytes;
    });
    this.traffic.ciphertexts += items.length;
    this.traffic.ms += performance.now() - t0;
    return out;
  }
}

function isRequestItem(x: unknown): x is RequestItem {
  const r = x as RequestItem;
  return (
    typeof r === 'object' && r !== null &&
    typeof r.from === 'object' && r.from !== null && typeof r.to === 'object' && r.to !== null &&
    (r.piece === undefined || (typeof r.piece === 'object' && r.piece !== null && Number.isInteger(r.piece.fromStart) && Number.isInteger(r.piece.toStart))) &&
    Number.isInteger(r.level) && typeof r.scale === 'number' && typeof r.point === 'string' &&
    typeof r.bound === 'number' && Number.isInteger(r.maskBits)
  );
}

/**
 * The key holder's half: check each item against the plan's schedule (the carry point, its layouts and
 * piece, the ciphertext's level and scale after the evaluator's slot move, the level and scale asked
 * for, the mask's bound), then the exact re-encryption of each masked ciphertext (no slot moves).
 */
export function handleCacheRefresh(
  client: CkksClient,
  guard: RefreshScheduleGuard,
  request: Uint8Array,
  minHidingBits = DEFAULT_MASK_POLICY.minHidingBits,
  whileWaiting?: WhileWaiting,
): { reply: Uint8Array; ciphertexts: number } {
  const { header, blobs } = decodeMessage<RequestHeader>(request, ['cache-refresh']);
  if (!Array.isArray(header.items) || header.items.length !== blobs.length || !header.items.every(isRequestItem) || !Number.isInteger(header.id) || !Number.isInteger(header.step)) {
    throw new FhecError('cache refresh request is malformed');
  }
  guard.acceptRequest('carry', header.id, header.step);
  const slots = slotsOf(client.params);
  const points = header.items.map((it, i) => {
    const ct = client.inspect(blobs[i]!);
    return guard.acceptItem({ id: it.point, kind: 'carry', level: ct.level, scale: ct.scale, size: ct.size, toLevel: it.level, toScale: it.scale, slots, from: it.from, to: it.to, ...(it.piece ? { piece: it.piece } : {}) });
  });
  // Level and bound come from the plan's schedule, not from the request (the scale was checked close to the plan's).
  const fresh = client.refreshExact(
    header.items.map((it, i) => {
      const p = points[i]!;
      return { ciphertext: blobs[i]!, target: { level: p.toLevel, scale: it.scale, point: it.point, bound: scheduledBound(p, it.bound), maskBits: it.maskBits, minHidingBits } };
    }),
    whileWaiting,
  );
  return { reply: encodeMessage({ kind: 'cache-fresh', id: header.id } as { kind: string }, fresh), ciphertexts: fresh.length };
}
