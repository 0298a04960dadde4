// The search behind the optimal refresh placement (refresh-placement.ts): a dynamic program over the
// program order whose state is the depth every live value (defined, read later) presents to its
// readers, with exact reductions and, past a state budget, a beam that keeps a known placement alive.
//
// A value is decided where it is defined (refresh it or not): all its readers come later, so the
// cheapest way on from a state depends on nothing but the state. Reductions that keep the optimum:
// - only candidate values branch (refresh-graph.ts refreshCandidates);
// - lookahead: from a value v that is not refreshed, some path through values that are never
//   refreshed (non-candidates) adds levels, so depth(v) <= cap[v] (the tightest limit on those paths
//   minus the levels on the way) is needed and a state breaking it is dropped (or v refreshed) at v
//   rather than ops later;
// - equal states merge, the cheaper kept (rows of bytes keyed by a Zobrist hash updated per byte);
// - covering: a path from a live value f first reaches a candidate (or an end) z through
//   non-candidates, with weight omega_f(z), and d(z) is the largest delta_f + omega_f(z) over the
//   live values. When another live value g has omega_g(z) >= omega_f(z) + k at every such z of f and
//   delta_f <= delta_g + k (strictly, if g is the later value: ties go to the earlier one), f's depth
//   decides nothing that g's does not, so it is set to 0 and states differing only there merge.
//   Covering has no cycles (a cycle would need total offset > 0), so every zeroed value has an
//   unzeroed coverer and all depths at every z are unchanged;
// - dominance: a state no cheaper and nowhere shallower than another is dropped (while the states
//   are few enough for the quadratic check);
// - bound: given a known placement of cost U, a state that already costs U is dropped.
// Past `beam` states it keeps the cheapest and shallowest ones and stops being exact. The known
// placement's own state is then put back at every step, so the result never costs more than it.

import { FhecError } from '../../../ir/errors.js';
import { depthsWith, refreshCandidates, type LevelGraph } from './refresh-graph.js';

export interface SearchOptions {
  /** Most states kept per step; past it the search is a beam and no longer exact. */
  beam: number;
  /** A feasible placement: the result never costs more (and exact searches prune with its cost). */
  incumbent?: ReadonlySet<number>;
  /** States up to which dominance is checked (quadratic); default 4000. */
  dominanceLimit?: number;
}

export interface SearchResult {
  refreshed: Set<number>;
  /** No state was dropped for the beam: the count is the optimum. */
  exact: boolean;
  /** Most states kept after a step. */
  peakStates: number;
  /** Most values live at once. */
  frontier: number;
}

/**
 * The largest depth v may have if it is not refreshed: its own limit, and each consumer's (a candidate
 * consumer may be refreshed, but its own limit holds either way) minus the levels on the way to it.
 */
export function forcedCap(g: LevelGraph, candidate: readonly boolean[]): Int32Array {
  const n = g.names.length;
  const cap = new Int32Array(n);
  for (let v = n - 1; v >= 0; v--) {
    let m = g.limit[v]!;
    for (const c of g.consumers[v]!) {
      if (g.initial[c]! >= 0) continue;
      const x = (candidate[c] ? g.limit[c]! : cap[c]!) - g.weight[c]!;
      if (x < m) m = x;
    }
    cap[v] = m;
  }
  return cap;
}

/**
 * For each node c, the one candidate (or end) z that c's operands reach through c and then
 * non-candidates only, and the weight on the way (c's own included). z = -1 where that is not one
 * place: c leads to several, or is read by an existing refresh (its own depth is then a constraint
 * of its own), or is an input or existing refresh (its operands' depth stops there).
 */
function firstCandidates(g: LevelGraph, candidate: readonly boolean[]): { z: Int32Array; w: Int32Array } {
  const n = g.names.length;
  const z = new Int32Array(n).fill(-1);
  const w = new Int32Array(n);
  for (let c = n - 1; c >= 0; c--) {
    if (g.initial[c]! >= 0) continue;
    const readers = g.consumers[c]!;
    if (candidate[c] || readers.length === 0) {
      z[c] = c;
      w[c] = g.weight[c]!;
      continue;
    }
    const target = z[readers[0]!]!;
    if (target < 0 || readers.some((x) => z[x] !== target || g.initial[x]! >= 0)) continue;
    z[c] = target;
    w[c] = g.weight[c]! + Math.max(...readers.map((x) => w[x]!));
  }
  return { z, w };
}

/** States: a row of one byte per frontier slot, with cost, refresh-pick chain, 64-bit key and depth sum. */
class Pool {
  size = 0;
  cap = 0;
  rows = new Uint8Array(0);
  words = new Uint32Array(0);
  cost = new Int32Array(0);
  pick = new Int32Array(0);
  h1 = new Int32Array(0);
  h2 = new Int32Array(0);
  /** Sum of the row's depths (the beam's second key). */
  total = new Int32Array(0);
  constructor(readonly width: number) {
    this.reserve(256);
  }
  reserve(min: number): void {
    if (min <= this.cap) return;
    let cap = Math.max(this.cap, 256);
    while (cap < min) cap *= 2;
    const rows = new Uint8Array(cap * this.width);
    rows.set(this.rows);
    this.rows = rows;
    this.words = new Uint32Array(rows.buffer);
    const grow = (a: Int32Array) => {
      const b = new Int32Array(cap);
      b.set(a);
      return b;
    };
    this.cost = grow(this.cost);
    this.pick = grow(this.pick);
    this.h1 = grow(this.h1);
    this.h2 = grow(this.h2);
    this.total = grow(this.total);
    this.cap = cap;
  }
  copy(from: Pool, i: number, j: number): void {
    const W = this.width;
    this.rows.set(from.rows.subarray(i * W, i * W + W), j * W);
    this.cost[j] = from.cost[i]!;
    this.pick[j] = from.pick[i]!;
    this.h1[j] = from.h1[i]!;
    this.h2[j] = from.h2[i]!;
    this.total[j] = from.total[i]!;
  }
}

/** Open addressing over pool indices by hash; equal rows merge, keeping the cheaper. */
class StateTable {
  private table = new Int32Array(1024);
  private mask = 1023;
  reset(expected: number): void {
    let size = 1024;
    while (size < expected * 2) size *= 2;
    // Clearing costs the table's size: shrink it again after a peak.
    if (size > this.table.length || size * 8 < this.table.length) {
      this.table = new Int32Array(size);
      this.mask = size - 1;
    } else this.table.fill(0);
  }
  /** Enters row p.size (just written) as a new state, or merges it into an equal earlier one. */
  commit(p: Pool): void {
    const i = p.size;
    const words = p.width >> 2;
    for (let t = p.h1[i]! & this.mask; ; t = (t + 1) & this.mask) {
      const j = this.table[t]! - 1;
      if (j < 0) {
        this.table[t] = i + 1;
        p.size++;
        return;
      }
      if (p.h1[j] !== p.h1[i] || p.h2[j] !== p.h2[i]) continue;
      let same = true;
      for (let k = 0, a = i * words, b = j * words; k < words && same; k++) same = p.words[a + k] === p.words[b + k];
      if (!same) continue;
      if (p.cost[i]! < p.cost[j]!) {
        p.cost[j] = p.cost[i]!;
        p.pick[j] = p.pick[i]!;
      }
      return;
    }
  }
}

/** Bytes of a 32-bit word with their top bit set: (b | HIGH) - a keeps each top bit iff every a_i <= b_i. */
const HIGH = 0x80808080 | 0;
/** Once beaming, each state is compared with this many of the shallowest kept states of its cost. */
const DOMINANCE_PROBES = 16;

export function searchRefreshes(g: LevelGraph, options: SearchOptions): SearchResult {
  const L = g.levels;
  // Depths are bytes below 128 (the word-parallel comparison uses the top bit).
  if (L > 127) throw new FhecError(`level budget ${L} is above the 127 levels the placement handles`);
  const beam = Math.max(1, Math.floor(options.beam));
  const dominanceLimit = options.dominanceLimit ?? 4000;
  const n = g.names.length;
  const candidate = refreshCandidates(g);
  const cap = forcedCap(g, candidate);
  const first = firstCandidates(g, candidate);

  // Slots: a live value holds one byte of every row from its definition to its last reader.
  const lastUse = new Int32Array(n).fill(-1);
  for (let v = 0; v < n; v++) for (const c of g.consumers[v]!) if (c > lastUse[v]!) lastUse[v] = c;
  const slot = new Int32Array(n).fill(-1);
  const dying: number[][] = [];
  const free: number[] = [];
  let width = 0;
  for (let v = 0; v < n; v++) {
    if (lastUse[v]! >= 0) slot[v] = free.length ? free.pop()! : width++;
    const d = g.args[v]!.filter((a) => lastUse[a] === v);
    dying.push(d);
    for (const a of d) free.push(slot[a]!);
  }
  const W = Math.max(4, (width + 3) & ~3);
  const K = L + 1;
  // Zobrist keys per (slot, depth); depth 0 has key 0, so a cleared slot adds nothing.
  const Z1 = new Int32Array(W * K);
  const Z2 = new Int32Array(W * K);
  let seed = 0x2545f491;
  const random = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return seed | 0;
  };
  for (let s = 0; s < W; s++) {
    for (let d = 1; d < K; d++) {
      Z1[s * K + d] = random();
      Z2[s * K + d] = random();
    }
  }

  // Refresh picks: an arena of (node, previous pick) links that states share.
  let pickNode = new Int32Array(1024);
  let pickPrev = new Int32Array(1024);
  let picks = 0;
  const addPick = (node: number, prev: number): number => {
    if (picks === pickNode.length) {
      const a = new Int32Array(picks * 2);
      a.set(pickNode);
      pickNode = a;
      const b = new Int32Array(picks * 2);
      b.set(pickPrev);
      pickPrev = b;
    }
    pickNode[picks] = node;
    pickPrev[picks] = prev;
    return picks++;
  };

  // The incumbent's own state, followed alongside.
  const incumbent = options.incumbent;
  const incDepth = incumbent ? depthsWith(g, incumbent) : null;
  const incRow = new Uint8Array(W);
  let incCost = 0;
  let incPick = -1;
  const upper = incumbent ? incumbent.size : Infinity;

  let cur = new Pool(W);
  let nxt = new Pool(W);
  cur.size = 1;
  cur.pick[0] = -1;
  const table = new StateTable();
  let exact = true;
  let peakStates = 1;
  // Covering: live values in definition order, and where the remaining readers of each lead.
  const live: number[] = [];
  const targets = new Map<number, Map<number, number>>();
  // Scratch for ranking and dominance.
  let keys = new Float64Array(0);
  let order = new Int32Array(0);
  // Set while the states are in rank order (after a dominance check), so a cut needs no new sort.
  let ranked = false;
  let scratch = new Int32Array(0);

  for (let v = 0; v < n; v++) {
    const argSlots = g.args[v]!.map((a) => slot[a]!);
    const sv = slot[v]!;
    const keeps = sv >= 0;
    const branch = keeps && candidate[v]!;
    const dead = dying[v]!.map((a) => slot[a]!);
    // New dominance needs a branch, or the death of a slot in which states differ.
    let deadVaried = false;
    for (const s of dead) for (let i = 1; i < cur.size && !deadVaried; i++) deadVaried = cur.rows[i * W + s] !== cur.rows[s];
    if (branch) expand(v, argSlots, sv, dead);
    else {
      advance(v, argSlots, sv, dead);
      // Rows that differed only in a dead slot are now equal.
      if (deadVaried) remerge();
    }
    if (dead.length) {
      let k = 0;
      for (const x of live) if (lastUse[x] !== v) live[k++] = x;
      live.length = k;
    }
    if (keeps) live.push(v);

    const covered = cover(v, keeps);
    // While exact, after any change that can make a state dominated; once beaming, before a cut.
    const changed = branch || deadVaried || covered;
    ranked = false;
    if (cur.size > 1 && cur.size <= dominanceLimit && (exact ? changed : cur.size > beam)) prune();
    if (cur.size > beam) {
      exact = false;
      truncate();
    }
    if (incDepth) followIncumbent(v, keeps, sv, dead);
    if (cur.size > peakStates) peakStates = cur.size;
    // Only the bound empties the states: nothing beats the incumbent.
    if (cur.size === 0) {
      if (!incumbent) throw new Error(`internal: no feasible state at %${g.names[v]}`);
      return { refreshed: new Set(incumbent), exact, peakStates, frontier: width };
    }
  }

  let best = 0;
  for (let i = 1; i < cur.size; i++) if (cur.cost[i]! < cur.cost[best]!) best = i;
  const refreshed = new Set<number>();
  for (let p = cur.pick[best]!; p >= 0; p = pickPrev[p]!) refreshed.add(pickNode[p]!);
  return { refreshed, exact, peakStates, frontier: width };

  /** Raw depth of v in state i (its operands' deepest plus its weight, or its fixed initial depth). */
  function rawDepth(v: number, argSlots: number[], i: number): number {
    const init = g.initial[v]!;
    if (init >= 0) return init;
    let raw = 0;
    const base = i * W;
    for (const s of argSlots) if (cur.rows[base + s]! > raw) raw = cur.rows[base + s]!;
    return raw + g.weight[v]!;
  }

  /** A value that is never refreshed: each state moves on in place (or is dropped). */
  function advance(v: number, argSlots: number[], sv: number, dead: number[]): void {
    const limit = sv >= 0 ? cap[v]! : g.limit[v]!;
    const rows = cur.rows;
    let k = 0;
    for (let i = 0; i < cur.size; i++) {
      const raw = rawDepth(v, argSlots, i);
      if (raw > limit || cur.cost[i]! >= upper) continue;
      if (k !== i) cur.copy(cur, i, k);
      const base = k * W;
      for (const s of dead) {
        const d = rows[base + s]!;
        cur.h1[k] ^= Z1[s * K + d]!;
        cur.h2[k] ^= Z2[s * K + d]!;
        cur.total[k] -= d;
        rows[base + s] = 0;
      }
      if (sv >= 0) {
        rows[base + sv] = raw;
        cur.h1[k] ^= Z1[sv * K + raw]!;
        cur.h2[k] ^= Z2[sv * K + raw]!;
        cur.total[k] += raw;
      }
      k++;
    }
    cur.size = k;
  }

  /** A candidate: each state branches into keeping v and refreshing it (one more refresh). */
  function expand(v: number, argSlots: number[], sv: number, dead: number[]): void {
    const limit = cap[v]!;
    const own = g.limit[v]!;
    const expected = cur.size * 2 + 2;
    table.reset(expected);
    nxt.reserve(expected);
    nxt.size = 0;
    const rows = cur.rows;
    for (let i = 0; i < cur.size; i++) {
      const base = i * W;
      const raw = rawDepth(v, argSlots, i);
      if (raw > own) continue;
      const cost = cur.cost[i]!;
      const stay = raw <= limit && cost < upper;
      const refresh = raw > 0 && cost + 1 < upper;
      if (!stay && !refresh) continue;
      let h1 = cur.h1[i]!;
      let h2 = cur.h2[i]!;
      let total = cur.total[i]!;
      for (const s of dead) {
        h1 ^= Z1[s * K + rows[base + s]!]!;
        h2 ^= Z2[s * K + rows[base + s]!]!;
        total -= rows[base + s]!;
      }
      for (let b = 0; b < 2; b++) {
        if (b === 0 ? !stay : !refresh) continue;
        const depth = b === 0 ? raw : 0;
        const j = nxt.size;
        const nb = j * W;
        nxt.rows.set(rows.subarray(base, base + W), nb);
        for (const s of dead) nxt.rows[nb + s] = 0;
        nxt.rows[nb + sv] = depth;
        nxt.h1[j] = h1 ^ Z1[sv * K + depth]!;
        nxt.h2[j] = h2 ^ Z2[sv * K + depth]!;
        nxt.total[j] = total + depth;
        nxt.cost[j] = cost + b;
        nxt.pick[j] = b === 0 ? cur.pick[i]! : addPick(v, cur.pick[i]!);
        table.commit(nxt);
      }
    }
    [cur, nxt] = [nxt, cur];
  }

  /** Where f's readers after v lead: first candidate z -> largest weight (Infinity: never covered). */
  function targetsAfter(f: number, v: number): Map<number, number> {
    const m = new Map<number, number>();
    const cons = g.consumers[f]!;
    for (let k = cons.length - 1; k >= 0 && cons[k]! > v; k--) {
      const c = cons[k]!;
      if (g.initial[c]! >= 0) continue;
      const z = first.z[c]!;
      if (z < 0) m.set(-1 - c, Infinity);
      else if ((m.get(z) ?? -1) < first.w[c]!) m.set(z, first.w[c]!);
    }
    return m;
  }

  /** The largest k with omega_g(z) >= omega_f(z) + k at every target z of f, or null. */
  function offset(tf: Map<number, number>, tg: Map<number, number>): number | null {
    let k = Infinity;
    for (const [z, om] of tf) {
      const o = tg.get(z);
      if (o === undefined || om === Infinity) return null;
      if (o - om < k) k = o - om;
    }
    return k <= -K ? null : k;
  }

  /**
   * Covering (see the header): zeroes depths that decide nothing; says whether a state changed. Only
   * pairs that can have changed at v are looked at (a reader of f was v, so f's targets shrank; or
   * the coverer is v): zeroing is final, and other depths do not change.
   */
  function cover(v: number, keeps: boolean): boolean {
    for (const a of dying[v]!) targets.delete(a);
    const touched: number[] = [];
    for (const a of g.args[v]!) if (targets.has(a)) touched.push(a);
    if (keeps) touched.push(v);
    for (const f of touched) targets.set(f, targetsAfter(f, v));
    if (cur.size <= 1) return false;
    // Pairs: zero slot fs[p] when its depth <= depth of slot gs[p] + ks[p].
    const fs: number[] = [];
    const gs: number[] = [];
    const ks: number[] = [];
    const pair = (f: number, h: number) => {
      const k = offset(targets.get(f)!, targets.get(h)!);
      if (k === null) return;
      fs.push(slot[f]!);
      gs.push(slot[h]!);
      ks.push(h > f ? k - 1 : k);
    };
    for (const f of touched) {
      if (targets.get(f)!.size === 0) {
        // Read only by existing refreshes from here on: its depth (already checked) matters no more.
        fs.push(slot[f]!);
        gs.push(slot[f]!);
        ks.push(K);
        continue;
      }
      for (const h of live) if (h !== f) pair(f, h);
    }
    if (keeps) for (const f of live) if (f !== v && !touched.includes(f)) pair(f, v);
    if (fs.length === 0) return false;
    let any = false;
    const rows = cur.rows;
    const zero = new Int32Array(fs.length);
    for (let i = 0; i < cur.size; i++) {
      const base = i * W;
      let nz = 0;
      // Decide on the depths as they are, then zero.
      for (let p = 0; p < fs.length; p++) {
        const df = rows[base + fs[p]!]!;
        if (df !== 0 && df <= rows[base + gs[p]!]! + ks[p]!) zero[nz++] = fs[p]!;
      }
      if (nz === 0) continue;
      for (let z = 0; z < nz; z++) {
        const s = zero[z]!;
        const d = rows[base + s]!;
        if (d === 0) continue;
        cur.h1[i] ^= Z1[s * K + d]!;
        cur.h2[i] ^= Z2[s * K + d]!;
        cur.total[i] -= d;
        rows[base + s] = 0;
      }
      any = true;
    }
    if (any) remerge();
    return any;
  }

  /** Merges states whose rows became equal (in place: rows move down only after a merge). */
  function remerge(): void {
    const m = cur.size;
    table.reset(m);
    cur.size = 0;
    for (let i = 0; i < m; i++) {
      if (i !== cur.size) cur.copy(cur, i, cur.size);
      table.commit(cur);
    }
  }

  /**
   * Orders the states by cost, then total depth (order[j] is the j-th state): a numeric sort of one
   * float per state packing (cost, total, index) when that is exact.
   */
  function rank(): Int32Array {
    const m = cur.size;
    if (order.length < m) {
      order = new Int32Array(cur.cap);
      keys = new Float64Array(cur.cap);
    }
    const sums = cur.total;
    const span = W * L + 1;
    const slots = 2 ** Math.ceil(Math.log2(m + 1));
    let maxCost = 0;
    for (let i = 0; i < m; i++) if (cur.cost[i]! > maxCost) maxCost = cur.cost[i]!;
    if ((maxCost + 1) * span * slots <= Number.MAX_SAFE_INTEGER) {
      for (let i = 0; i < m; i++) keys[i] = (cur.cost[i]! * span + sums[i]!) * slots + i;
      keys.subarray(0, m).sort();
      for (let j = 0; j < m; j++) order[j] = keys[j]! % slots;
    } else {
      for (let i = 0; i < m; i++) order[i] = i;
      order.subarray(0, m).sort((a, b) => cur.cost[a]! - cur.cost[b]! || sums[a]! - sums[b]! || a - b);
    }
    return order;
  }

  function keepOnly(order: Int32Array, count: number): void {
    nxt.reserve(count);
    for (let j = 0; j < count; j++) nxt.copy(cur, order[j]!, j);
    nxt.size = count;
    [cur, nxt] = [nxt, cur];
  }

  /**
   * Drops every state that another kept state is no dearer and nowhere deeper than. Once the beam
   * has cut, only states of equal cost are compared (nearly all dominance is there, at a fraction
   * of the work).
   */
  function prune(): void {
    const m = cur.size;
    const order = rank();
    const sums = cur.total;
    const words = W >> 2;
    const w32 = cur.words;
    if (scratch.length < m + words) scratch = new Int32Array(cur.cap + words);
    const kept = scratch.subarray(0, m);
    const varying = scratch.subarray(m, m + words);
    // Only the words in which states differ need comparing.
    let nv = 0;
    for (let q = 0; q < words; q++) {
      for (let i = 1; i < m; i++) {
        if (w32[i * words + q] !== w32[q]) {
          varying[nv++] = q;
          break;
        }
      }
    }
    let nk = 0;
    let group = 0;
    let groupCost = -1;
    for (let j = 0; j < m; j++) {
      const s = order[j]!;
      if (cur.cost[s] !== groupCost) {
        groupCost = cur.cost[s]!;
        group = nk;
      }
      const bs = s * words;
      const ss = sums[s]!;
      let dominated = false;
      const end = exact ? nk : Math.min(nk, group + DOMINANCE_PROBES);
      for (let t = exact ? 0 : group; t < end && !dominated; t++) {
        const k = kept[t]!;
        // A dominating row has a smaller sum (equal rows are merged). Kept states come by cost,
        // then sum, so within s's own cost group a sum that large ends the search.
        if (sums[k]! >= ss) {
          if (t >= group) break;
          continue;
        }
        const bk = k * words;
        let le = true;
        for (let r = 0; r < nv && le; r++) {
          const q = varying[r]!;
          le = ((((w32[bs + q]! | HIGH) >>> 0) - w32[bk + q]!) & HIGH) === HIGH;
        }
        dominated = le;
      }
      if (!dominated) kept[nk++] = s;
    }
    // Kept states stay in rank order, which a cut right after can use.
    if (nk < m || nk > beam) {
      keepOnly(kept, nk);
      ranked = true;
    }
  }

  function truncate(): void {
    if (ranked) cur.size = beam;
    else keepOnly(rank(), beam);
  }

  /** Tracks the incumbent's state after v; once the beam has cut, puts it back if it was lost. */
  function followIncumbent(v: number, keeps: boolean, sv: number, dead: number[]): void {
    for (const s of dead) incRow[s] = 0;
    const refreshedHere = incumbent!.has(v);
    if (refreshedHere) {
      incCost++;
      incPick = addPick(v, incPick);
    }
    if (keeps) incRow[sv] = refreshedHere ? 0 : incDepth![v]!;
    if (exact) return;
    let a = 0;
    let b = 0;
    let total = 0;
    for (let s = 0; s < W; s++) {
      a ^= Z1[s * K + incRow[s]!]!;
      b ^= Z2[s * K + incRow[s]!]!;
      total += incRow[s]!;
    }
    const words = W >> 2;
    const inc32 = new Uint32Array(incRow.buffer);
    for (let i = 0; i < cur.size; i++) {
      if (cur.h1[i] !== a || cur.h2[i] !== b) continue;
      let same = true;
      for (let k = 0; k < words && same; k++) same = cur.words[i * words + k] === inc32[k];
      if (!same) continue;
      if (cur.cost[i]! > incCost) {
        cur.cost[i] = incCost;
        cur.pick[i] = incPick;
      }
      return;
    }
    const j = cur.size;
    cur.reserve(j + 1);
    cur.rows.set(incRow, j * W);
    cur.h1[j] = a;
    cur.h2[j] = b;
    cur.total[j] = total;
    cur.cost[j] = incCost;
    cur.pick[j] = incPick;
    cur.size++;
  }
}
