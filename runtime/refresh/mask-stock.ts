// Refresh masks made ahead. A refresh's mask depends only on where it happens (the level and scale of
// the ciphertext, the bound of its point, the level and scale it comes back at), all known from the plan
// before the ciphertext exists. So while the key holder answers one round, the evaluator's thread can
// sample the next round's masks and make both ends of each: the masked zero (a fresh public-key
// encryption of the mask r at the ciphertext's level) and the unmask (round(rho r), negated, as a
// plaintext at the target level). The round itself then only adds: ct + Enc(r) before it is sent, the
// reply + (-round(rho r)) after. Same masks, same distribution, same re-randomization as masking inline
// (refresher.ts); a mask is used once, and a refresh with none ready is masked inline. With a mask
// supply (an evaluator's helper thread, runtime/seal/mask-supply.ts) the stock asks it for the masks of
// the rounds to come instead of making them, and keeps what has arrived.

import type { CkksEvaluator, CkksHandle, MaskRequest, MaskSupplier } from '../backend.js';
import { IntegerMask } from './integer-mask.js';
import { planMask, scaleRatio, type MaskPlan, type MaskPolicy } from './mask.js';

/** A refresh to come: its point, the ciphertext's level and scale, the point's bound, the level and scale it comes back at. */
export interface RefreshShape {
  point: string;
  level: number;
  scale: number;
  bound: number;
  toLevel: number;
  toScale: number;
  /** Polynomials of the masked ciphertext: 3 for an unrelinearized product (its mask re-randomizes the third). */
  size: number;
}

export interface PreparedMask {
  /** r, when this thread sampled it (a supplied mask's r stays on the thread that made it). */
  mask?: IntegerMask;
  plan: MaskPlan;
  /** Enc(r) at the shape's level and scale (re-randomizing: a fresh encryption). */
  masked: CkksHandle;
  /** -round(rho r) as a plaintext at the target level and scale. */
  unmask: CkksHandle;
}

/** At most this many masks ready per shape (each about two ciphertexts' memory). */
const MAX_PER_SHAPE = 16;

/** A mask serves a refresh of the same shape under the same hiding policy (planMask's inputs). */
function shapeKey(s: Omit<RefreshShape, 'point'>, policy: MaskPolicy): string {
  return `${s.level}/${s.scale}/${s.bound}/${s.toLevel}/${s.toScale}/${s.size}/${policy.hidingBits}/${policy.minHidingBits}`;
}

export class MaskStock {
  private readonly ready = new Map<string, PreparedMask[]>();
  /** Masks asked of the supply and not arrived yet, per shape; the plan of each shape asked for. */
  private readonly coming = new Map<string, number>();
  private readonly plans = new Map<string, MaskPlan>();
  /** Masks made on this thread, supplied by a helper thread, and used by refreshes. */
  readonly stats = { made: 0, supplied: 0, used: 0 };

  /** Whether this evaluator can make masks ahead (the simulator masks inline). */
  static supports(ev: CkksEvaluator): boolean {
    return ev.encryptIntegerPolynomials !== undefined && ev.integerPlaintexts !== undefined;
  }

  /**
   * Makes one mask per shape (up to the per-shape cap), or asks the evaluator's mask supply for those
   * neither ready nor coming; returns how many it made or asked for.
   */
  prepare(ev: CkksEvaluator, shapes: readonly RefreshShape[], policy: MaskPolicy): number {
    if (!MaskStock.supports(ev) || shapes.length === 0) return 0;
    const supply = MaskStock.supplyOf(ev, policy);
    if (supply) return this.request(ev, supply, shapes, policy);
    const want = new Map<string, number>();
    const todo: { key: string; shape: RefreshShape; plan: MaskPlan; mask: IntegerMask }[] = [];
    for (const shape of shapes) {
      const key = shapeKey(shape, policy);
      const n = (want.get(key) ?? 0) + 1;
      want.set(key, n);
      if ((this.ready.get(key)?.length ?? 0) + n > MAX_PER_SHAPE) continue;
      const plan = planMask(ev.params, shape.level, shape.scale, shape.bound, policy, shape.point);
      todo.push({ key, shape, plan, mask: IntegerMask.sample(ev.params.ringDegree, plan.width, policy.random) });
    }
    if (todo.length === 0) return 0;
    const masked = ev.encryptIntegerPolynomials!(todo.map(({ shape, mask }) => ({ level: shape.level, scale: shape.scale, poly: mask, size: shape.size })));
    let unmask: CkksHandle[];
    try {
      unmask = ev.integerPlaintexts!(todo.map(({ shape, mask }) => ({ level: shape.toLevel, scale: shape.toScale, poly: mask.negatedScaled(scaleRatio(shape.toScale, shape.scale)) })));
    } catch (e) {
      for (const h of masked) ev.free(h);
      throw e;
    }
    todo.forEach(({ key, plan, mask }, i) => {
      const list = this.ready.get(key) ?? [];
      this.ready.set(key, list);
      list.push({ mask, plan, masked: masked[i]!, unmask: unmask[i]! });
    });
    this.stats.made += todo.length;
    return todo.length;
  }

  /** The evaluator's mask supply, unless it has stopped or the policy draws r from its own source (tests). */
  private static supplyOf(ev: CkksEvaluator, policy: MaskPolicy): MaskSupplier | undefined {
    return ev.maskSupply && !ev.maskSupply.failed && policy.random === undefined ? ev.maskSupply : undefined;
  }

  private request(ev: CkksEvaluator, supply: MaskSupplier, shapes: readonly RefreshShape[], policy: MaskPolicy): number {
    this.collect(ev);
    const want = new Map<string, { count: number; shape: RefreshShape }>();
    for (const shape of shapes) {
      const key = shapeKey(shape, policy);
      const w = want.get(key);
      if (w) w.count++;
      else want.set(key, { count: 1, shape });
    }
    const asks: MaskRequest[] = [];
    for (const [key, { count, shape }] of want) {
      const have = (this.ready.get(key)?.length ?? 0) + (this.coming.get(key) ?? 0);
      if (have >= count) continue;
      let plan = this.plans.get(key);
      if (!plan) this.plans.set(key, (plan = planMask(ev.params, shape.level, shape.scale, shape.bound, policy, shape.point)));
      const ratio = scaleRatio(shape.toScale, shape.scale);
      for (let i = have; i < Math.min(count, MAX_PER_SHAPE); i++) asks.push({ key, level: shape.level, scale: shape.scale, width: plan.width, toLevel: shape.toLevel, toScale: shape.toScale, ratio, size: shape.size });
      this.coming.set(key, (this.coming.get(key) ?? 0) + Math.max(0, Math.min(count, MAX_PER_SHAPE) - have));
    }
    supply.request(asks);
    return asks.length;
  }

  /** Keeps the supplied masks that have arrived (none is waited for). */
  collect(ev: CkksEvaluator): void {
    if (!ev.maskSupply) return;
    for (const m of ev.maskSupply.collect()) {
      this.coming.set(m.key, Math.max(0, (this.coming.get(m.key) ?? 0) - 1));
      const plan = this.plans.get(m.key);
      const list = this.ready.get(m.key) ?? [];
      if (!plan || list.length >= MAX_PER_SHAPE) {
        ev.free(m.masked);
        ev.free(m.unmask);
        continue;
      }
      this.ready.set(m.key, list);
      list.push({ plan, masked: m.masked, unmask: m.unmask });
      this.stats.supplied++;
    }
  }

  /** A mask made for this shape and policy, taken (the caller frees its handles), or undefined. */
  take(shape: Omit<RefreshShape, 'point'>, policy: MaskPolicy): PreparedMask | undefined {
    const got = this.ready.get(shapeKey(shape, policy))?.shift();
    if (got) this.stats.used++;
    return got;
  }

  /** Frees every mask still ready. */
  clear(ev: CkksEvaluator): void {
    for (const list of this.ready.values()) {
      for (const m of list) {
        ev.free(m.masked);
        ev.free(m.unmask);
      }
    }
    this.ready.clear();
  }
}
