// The evaluator's half of a client-aided refresh. Holding only public material, it
//   1. re-randomizes the ciphertext and adds a fresh integer mask polynomial r in the coefficient
//      domain (runtime/refresh/mask.ts: uniform over [-W, W], W = 2^k B' sized by the value's bound),
//   2. sends it to the key holder in a request (bytes) and gets a reply (bytes) holding
//      Enc(round(rho (m + r))) at the top level and the requested scale (rho: the scale change),
//   3. subtracts round(rho r) there, exactly: Enc(x) at the top level.
// Several ciphertexts can share one round trip (refreshMany). Every byte each way is counted. The key
// holder can also return the fresh value rotated (refreshRotated: the plan's rotations of a refresh result,
// rounds.ts), each copy unmasked with the unmask's own rotation (a permutation of its NTT words, exact):
// the evaluator then skips those rotations' key switches.
// The mask is sized from a bound on |x| per refresh point (the plan's, schedule.ts): a refresh with no
// bound is refused, never masked by a default.

import { FhecError } from '../../ir/errors.js';
import type { CkksEvaluator, CkksHandle, CkksRefresher, RefreshAhead, WhileWaiting } from '../backend.js';
import { topLevel } from '../../ir/ckks/params.js';
import type { RefreshTransport } from './key-holder.js';
import { maxAbsOf, type RefreshAudit } from './audit.js';
import { DEFAULT_MASK_POLICY, planMask, scaleRatio, type MaskPlan, type MaskPolicy } from './mask.js';
import { IntegerMask } from './integer-mask.js';
import { decodeRefreshReply, encodeRefreshRequest, type RefreshRequestItem } from './messages.js';
import { MaskStock, type RefreshShape } from './mask-stock.js';

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
  /** Left rotations of the fresh value the key holder returns as well (refreshRotated). */
  rotations?: number[];
}

/** A masked item as the round trip sees it: its bound, the level it comes back at, its point. */
export interface SizedRefreshItem {
  ct: CkksHandle;
  scale: number;
  level: number;
  bound: number;
  point: string;
  /** Rotations of the fresh value the key holder returns after it (none: absent or empty). */
  rotations?: number[];
}

/**
 * Masks the items, one round trip to the key holder, unmasks: the one implementation of the
 * coefficient-domain mask, shared by refreshes and KV-cache carries. `onMask` is told each item's
 * mask before it is sent (audits); returns the fresh ciphertexts (owned by the caller).
 */
export function exactRefreshRoundTrip(
  ev: CkksEvaluator,
  items: SizedRefreshItem[],
  policy: MaskPolicy,
  send: (items: RefreshRequestItem[]) => Uint8Array[],
  onMask?: (item: SizedRefreshItem, level: number, plan: MaskPlan) => void,
  stock?: MaskStock,
): CkksHandle[] {
  const masked = maskForRefresh(ev, items, policy, onMask, stock);
  return unmaskRefreshed(ev, masked.pending, send(masked.requestItems));
}

/** The same round trip with a key holder that answers asynchronously (over a network). */
export async function exactRefreshRoundTripAsync(
  ev: CkksEvaluator,
  items: SizedRefreshItem[],
  policy: MaskPolicy,
  send: (items: RefreshRequestItem[]) => Promise<Uint8Array[]>,
  onMask?: (item: SizedRefreshItem, level: number, plan: MaskPlan) => void,
  stock?: MaskStock,
): Promise<CkksHandle[]> {
  const masked = maskForRefresh(ev, items, policy, onMask, stock);
  return unmaskRefreshed(ev, masked.pending, await send(masked.requestItems));
}

/** What the evaluator keeps of a masked item until the reply: the mask, and the levels and scales to check and unmask with. */
export interface PendingRefresh {
  /** r (absent for a mask made on a helper thread, which then came with its unmask). */
  mask?: IntegerMask;
  /** Level and scale the fresh ciphertext must have. */
  level: number;
  scale: number;
  /** Scale of the ciphertext that was masked (the mask comes off at scale / sourceScale). */
  sourceScale: number;
  /** The unmask made ahead with the mask (mask-stock.ts): -round(rho r) as a plaintext at the target level. */
  unmask?: CkksHandle;
  /** Rotations the reply carries after the fresh ciphertext (each unmasked with the unmask rotated the same). */
  rotations?: number[];
}

/**
 * The first half of a round trip: each item re-randomized and masked, serialized for the request; with
 * a stock, by a mask made ahead for its shape when one is ready (mask-stock.ts), else inline.
 * (Evaluation workers run it on their own ciphertexts, runtime/parallel/worker.ts.)
 */
export function maskForRefresh(
  ev: CkksEvaluator,
  items: SizedRefreshItem[],
  policy: MaskPolicy,
  onMask?: (item: SizedRefreshItem, level: number, plan: MaskPlan) => void,
  stock?: MaskStock,
): { requestItems: RefreshRequestItem[]; pending: PendingRefresh[] } {
  const params = ev.params;
  const n = params.ringDegree;
  const pending: PendingRefresh[] = [];
  const readyMasked: (CkksHandle | undefined)[] = [];
  const plans: MaskPlan[] = [];
  const masked: CkksHandle[] = [];
  let added: CkksHandle[] = [];
  stock?.collect(ev);
  try {
    for (const it of items) {
      const level = ev.levelOf(it.ct);
      const scale = ev.scaleOf(it.ct);
      const ready = stock?.take({ level, scale, bound: it.bound, toLevel: it.level, toScale: it.scale, size: ev.sizeOf(it.ct) }, policy);
      readyMasked.push(ready?.masked);
      const plan = ready?.plan ?? planMask(params, level, scale, it.bound, policy, it.point);
      pending.push({
        mask: ready ? ready.mask : IntegerMask.sample(n, plan.width, policy.random),
        level: it.level,
        scale: it.scale,
        sourceScale: scale,
        unmask: ready?.unmask,
        ...(it.rotations?.length ? { rotations: it.rotations } : {}),
      });
      plans.push(plan);
      policy.observe?.(it.point, level, it.bound, plan);
      onMask?.(it, level, plan);
    }
    const inline = items.flatMap((it, i) => (readyMasked[i] ? [] : [{ ct: it.ct, poly: pending[i]!.mask!, rerandomize: true }]));
    if (inline.length > 0) added = ev.addIntegerPolynomials(inline);
    let k = 0;
    items.forEach((it, i) => masked.push(readyMasked[i] ? ev.add(it.ct, readyMasked[i]!) : added[k++]!));
  } catch (e) {
    for (const h of new Set([...masked, ...added])) ev.free(h);
    for (const p of pending) if (p.unmask) ev.free(p.unmask);
    throw e;
  } finally {
    for (const h of readyMasked) if (h) ev.free(h);
  }
  try {
    const requestItems: RefreshRequestItem[] = items.map((it, i) => ({
      ciphertext: ev.saveCiphertext(masked[i]!),
      scale: it.scale,
      point: it.point,
      bound: it.bound,
      maskBits: plans[i]!.maskBits,
      ...(it.rotations?.length ? { rotations: it.rotations } : {}),
    }));
    return { requestItems, pending };
  } finally {
    for (const h of masked) ev.free(h);
  }
}

/**
 * The second half: the reply's fresh ciphertexts checked against the request, the masks taken off.
 * Returns them in the reply's order: per item its fresh value, then its rotations.
 */
export function unmaskRefreshed(ev: CkksEvaluator, items: PendingRefresh[], reply: Uint8Array[]): CkksHandle[] {
  const expected = items.reduce((s, it) => s + 1 + (it.rotations?.length ?? 0), 0);
  if (reply.length !== expected) {
    throw new FhecError(`refresh reply holds ${reply.length} ciphertexts, expected ${expected}`);
  }
  const fresh: CkksHandle[] = [];
  // Unmask plaintexts made here for items with rotations (an inline mask has none until now), freed at the end.
  const made: CkksHandle[] = [];
  try {
    let at = 0;
    const first = items.map((it) => {
      const k = at;
      at += 1 + (it.rotations?.length ?? 0);
      return k;
    });
    reply.forEach((bytes, i) => {
      const ct = ev.loadCiphertext(bytes);
      fresh.push(ct);
      const it = items[first.findLastIndex((k) => k <= i)]!;
      if (ev.levelOf(ct) !== it.level) throw new FhecError(`refresh reply ciphertext ${i} is at level ${ev.levelOf(ct)}, requested ${it.level}`);
      if (ev.scaleOf(ct) !== it.scale) throw new FhecError(`refresh reply ciphertext ${i} has scale ${ev.scaleOf(ct)}, requested ${it.scale}`);
    });
    const unmaskOf = (it: PendingRefresh) => it.mask!.negatedScaled(scaleRatio(it.scale, it.sourceScale));
    for (const [i, it] of items.entries()) if (!it.unmask && !it.mask) throw new Error(`internal: refresh ${i} has neither its mask nor its unmask`);
    // Items with rotations unmask with a plaintext (rotated per copy); the others add their integer
    // polynomial directly when it has no plaintext made ahead.
    const rotatedInline = items.flatMap((it, i) => (!it.unmask && it.rotations?.length ? [i] : []));
    const plains = new Map<number, CkksHandle>(items.flatMap((it, i) => (it.unmask ? [[i, it.unmask] as const] : [])));
    if (rotatedInline.length > 0) {
      if (!ev.integerPlaintexts || !ev.rotatePlaintext) throw new FhecError('this evaluator cannot unmask rotated refresh results (no plaintext rotation): ask the key holder for no rotations');
      const pts = ev.integerPlaintexts(rotatedInline.map((i) => ({ level: items[i]!.level, scale: items[i]!.scale, poly: unmaskOf(items[i]!) })));
      made.push(...pts);
      rotatedInline.forEach((i, k) => plains.set(i, pts[k]!));
    }
    const inline = items.flatMap((it, i) => (plains.has(i) ? [] : [{ ct: fresh[first[i]!]!, poly: unmaskOf(it) }]));
    const added = inline.length > 0 ? ev.addIntegerPolynomials(inline) : [];
    let k = 0;
    const out: CkksHandle[] = [];
    try {
      items.forEach((it, i) => {
        const plain = plains.get(i);
        if (!plain) {
          out.push(added[k++]!);
          return;
        }
        out.push(ev.addPlain(fresh[first[i]!]!, plain));
        (it.rotations ?? []).forEach((step, j) => {
          const rotated = ev.rotatePlaintext!(plain, step);
          try {
            out.push(ev.addPlain(fresh[first[i]! + 1 + j]!, rotated));
          } finally {
            ev.free(rotated);
          }
        });
      });
    } catch (e) {
      for (const h of out) ev.free(h);
      for (const h of added.slice(k)) ev.free(h);
      throw e;
    }
    return out;
  } finally {
    for (const ct of fresh) ev.free(ct);
    for (const h of made) ev.free(h);
    for (const it of items) if (it.unmask) ev.free(it.unmask);
  }
}

/** An audit hook for exactRefreshRoundTrip: one record per masked ciphertext. */
export function auditMasks(ev: CkksEvaluator, audit: RefreshAudit | undefined, step: number, kind: 'refresh' | 'carry'): ((it: SizedRefreshItem, level: number, plan: MaskPlan) => void) | undefined {
  if (!audit) return undefined;
  return (it, level, plan) =>
    audit.record({
      step,
      kind,
      point: it.point,
      level,
      scale: ev.scaleOf(it.ct),
      bound: it.bound,
      observedMax: ev.simulatedValues ? maxAbsOf(ev.simulatedValues(it.ct)) : null,
      hidingBits: plan.hidingBitsPerCiphertext,
    });
}

export interface RefresherOptions {
  mask?: Partial<MaskPolicy>;
  /** Records every refreshed ciphertext (--audit-refresh). */
  audit?: RefreshAudit;
  /** At most this many ciphertexts per message (default: a whole refresh round in one); see inMessages. */
  ciphertextsPerMessage?: number;
  /**
   * Ask the key holder for the plan's rotations of refresh results (refreshRotated; default off). Each
   * copy costs the evaluator a download of one fresh ciphertext instead of a key switch: worth it with
   * an in-process key holder or a fast link, not over a slow one.
   */
  keyHolderRotations?: boolean;
}

/**
 * Sends `items` in messages of at most `perMessage` items each, one after another, and joins the
 * replies in order. The default sends them all in one message (one round trip per refresh round);
 * 1 is the unbatched protocol, one message per ciphertext, which the key holder accepts too (its
 * schedule checks the items' order and the request ids, not how requests group them): it exists to
 * measure what batching saves (bench/protocol.ts).
 */
export function inMessages<T>(items: T[], perMessage: number | undefined, send: (chunk: T[], offset: number) => Uint8Array[]): Uint8Array[] {
  const n = perMessage ?? items.length;
  if (!(n >= 1) || !Number.isInteger(n)) throw new FhecError(`ciphertexts per message must be a positive integer, got ${n}`);
  const out: Uint8Array[] = [];
  for (let i = 0; i < items.length; i += n) out.push(...send(items.slice(i, i + n), i));
  return out;
}

/** inMessages with a key holder that answers asynchronously. */
export async function inMessagesAsync<T>(items: T[], perMessage: number | undefined, send: (chunk: T[], offset: number) => Promise<Uint8Array[]>): Promise<Uint8Array[]> {
  const n = perMessage ?? items.length;
  if (!(n >= 1) || !Number.isInteger(n)) throw new FhecError(`ciphertexts per message must be a positive integer, got ${n}`);
  const out: Uint8Array[] = [];
  for (let i = 0; i < items.length; i += n) out.push(...(await send(items.slice(i, i + n), i)));
  return out;
}

/** Point name of a refresh made outside a plan (a hand-made call with no value name). */
const UNNAMED = 'value';

export class MaskedRefresher implements CkksRefresher {
  readonly traffic: RefreshTraffic = { roundTrips: 0, ciphertexts: 0, bytesToKeyHolder: 0, bytesToEvaluator: 0, ms: 0 };
  private readonly policy: MaskPolicy;
  /** Masks made ahead while the key holder answers (prepare). */
  private readonly stock = new MaskStock();
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

  /** Makes ahead the masks of refreshes to come (CkksRefresher.prepare); returns how many it made. */
  prepare(next: RefreshAhead[]): number {
    const top = topLevel(this.ev.params);
    const shapes: RefreshShape[] = next.map((it) => ({ point: it.name ?? UNNAMED, level: it.level, scale: it.scale, bound: this.boundFor(it.name), toLevel: top, toScale: it.toScale, size: it.size ?? 2 }));
    return this.stock.prepare(this.ev, shapes, this.policy);
  }

  /** Masks made ahead (on this thread, by a mask supply), and how many refreshes used one. */
  get preparedMasks(): { made: number; supplied: number; used: number } {
    return { ...this.stock.stats };
  }

  /** Frees the masks made ahead that no refresh used (a run that stopped early). */
  discardPrepared(): void {
    this.stock.clear(this.ev);
  }

  /** Refreshes all items in one round trip (CkksRefresher.refreshMany). The inputs stay owned by the caller. */
  refreshMany(items: RefreshItem[], whileWaiting?: WhileWaiting): CkksHandle[] {
    return this.roundTrip(items.map(({ rotations: _, ...it }) => it), whileWaiting);
  }

  /** Whether refreshRotated asks the key holder for rotations (the option is on and the evaluator can rotate unmasks). */
  get rotatesOnKeyHolder(): boolean {
    return this.options.keyHolderRotations === true && this.ev.rotatePlaintext !== undefined && this.ev.integerPlaintexts !== undefined;
  }

  /**
   * refreshMany where items also get their fresh value rotated by the key holder (CkksRefresher.refreshRotated):
   * per item, the fresh ciphertext and then one per step of its `rotations`, in that order.
   */
  refreshRotated(items: RefreshItem[], whileWaiting?: WhileWaiting): CkksHandle[][] {
    if (!this.rotatesOnKeyHolder) throw new Error('internal: refreshRotated without key-holder rotations (check rotatesOnKeyHolder)');
    const flat = this.roundTrip(items, whileWaiting);
    let at = 0;
    return items.map((it) => flat.slice(at, (at += 1 + (it.rotations?.length ?? 0))));
  }

  private roundTrip(items: RefreshItem[], whileWaiting?: WhileWaiting): CkksHandle[] {
    if (items.length === 0) return [];
    const t0 = performance.now();
    let idle = whileWaiting;
    const out = exactRefreshRoundTrip(this.ev, this.sized(items), this.policy, (all) => inMessages(all, this.options.ciphertextsPerMessage, (requestItems) => {
      const { id, request } = this.request(requestItems);
      // The idle work fills the first wait of the round only.
      const reply = this.transport(request, idle);
      idle = undefined;
      if (reply instanceof Promise) throw new FhecError('this key holder answers asynchronously: run the program on evaluation workers (--workers), whose refresh rounds can wait');
      return this.reply(id, request, reply);
    }), auditMasks(this.ev, this.options.audit, this.step, 'refresh'), this.stock);
    this.traffic.ciphertexts += items.length;
    this.traffic.ms += performance.now() - t0;
    return out;
  }

  /** refreshMany through a transport that may answer asynchronously (a key holder across a network). */
  async refreshManyAsync(items: RefreshItem[]): Promise<CkksHandle[]> {
    if (items.length === 0) return [];
    const t0 = performance.now();
    const out = await exactRefreshRoundTripAsync(this.ev, this.sized(items.map(({ rotations: _, ...it }) => it)), this.policy, (all) => inMessagesAsync(all, this.options.ciphertextsPerMessage, async (requestItems) => {
      const { id, request } = this.request(requestItems);
      return this.reply(id, request, await this.transport(request));
    }), auditMasks(this.ev, this.options.audit, this.step, 'refresh'), this.stock);
    this.traffic.ciphertexts += items.length;
    this.traffic.ms += performance.now() - t0;
    return out;
  }

  /** The mask hiding policy, without functions (evaluation workers mask with it and the OS's CSPRNG). */
  get hiding(): { hidingBits: number; minHidingBits: number } {
    return { hidingBits: this.policy.hidingBits, minHidingBits: this.policy.minHidingBits };
  }

  /**
   * One round of items masked elsewhere (evaluation workers, with maskForRefresh): audited, sent in one
   * request, counted; returns the reply's fresh ciphertexts in order.
   */
  async exchangeMasked(items: { request: RefreshRequestItem; level: number; scale: number; hidingBits: number }[]): Promise<Uint8Array[]> {
    if (items.length === 0) return [];
    const t0 = performance.now();
    for (const it of items) {
      const r = it.request;
      this.options.audit?.record({ step: this.step, kind: 'refresh', point: r.point, level: it.level, scale: it.scale, bound: r.bound, observedMax: null, hidingBits: it.hidingBits });
    }
    const out = await inMessagesAsync(items, this.options.ciphertextsPerMessage, async (chunk) => {
      const { id, request } = this.request(chunk.map((it) => it.request));
      return this.reply(id, request, await this.transport(request));
    });
    this.traffic.ciphertexts += items.length;
    this.traffic.ms += performance.now() - t0;
    return out;
  }

  private sized(items: RefreshItem[]): SizedRefreshItem[] {
    const top = topLevel(this.ev.params);
    return items.map((it) => ({ ct: it.ct, scale: it.scale, level: top, bound: this.boundFor(it.name), point: it.name ?? UNNAMED, ...(it.rotations?.length ? { rotations: it.rotations } : {}) }));
  }

  private request(items: RefreshRequestItem[]): { id: number; request: Uint8Array } {
    const id = this.nextId++;
    return { id, request: encodeRefreshRequest({ id, step: this.step, items }) };
  }

  private reply(id: number, request: Uint8Array, replyBytes: Uint8Array): Uint8Array[] {
    this.traffic.roundTrips++;
    this.traffic.bytesToKeyHolder += request.length;
    this.traffic.bytesToEvaluator += replyBytes.length;
    const reply = decodeRefreshReply(replyBytes);
    if (reply.id !== id) throw new FhecError(`refresh reply answers request ${reply.id}, expected ${id}`);
    return reply.ciphertexts;
  }
}
