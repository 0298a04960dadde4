// Optimal refresh placement: the fewest refreshed values such that no value goes below level 0.
//
// Problem (see refresh-graph.ts for the level model): choose S minimizing |S| with
// d(v) = w(v) + max_{a in args(v)} (a in S ? 0 : d(a)) <= L for every value v. On general DAGs this is
// NP-hard (it contains minimum bootstrapping placement for Boolean circuits, Paindavoine and Vialla,
// SAC 2015), and a min-cut does not model it exactly: a refresh is paid per value, for all its
// consumers at once, and "at most L levels between refreshes" is a path constraint, not a cut.
//
// Algorithm: exact dynamic programming over the program order with the frontier as state. Walking
// the ops in order, the state is the depth every live value (defined, still read later) presents to
// its consumers; the decision for a value (refresh it or not) is made where it is defined, since all
// its consumers come later. Feasibility and cost of the rest of the program depend on nothing else, so
//   best(state after op i) = min over (state after op i-1, decision at op i) of cost
// is exact (a memo over (position, frontier depths), the DP over (node, level) of the literature
// generalized from trees and chains to any DAG). Pruning keeps it exact:
// - only candidate values branch (refresh-graph.ts: a value read once by an add, a rotation of a
//   value with other readers, ... are dominated by another value at no more cost);
// - states with equal frontier depths merge (the cheaper stays);
// - a state whose cost and depths are all >= another's is dropped (it can only do worse).
// Cost: O(ops x states x frontier). States <= (L+1)^(live candidate values); for chains, trees,
// series-parallel blocks, residual stacks and the polynomial evaluators they stay small (tens to
// thousands). If they pass `maxStates` the DP keeps the best states (beam) and says it is no
// longer exact; the result is then never worse than the greedy baseline, which is kept for comparison.

import { FhecError } from '../../ir/errors.js';
import type { FheProgram } from '../../ir/fhe/types.js';
import { greedyRefreshSet } from './refresh-greedy.js';
import { levelGraph, placementResult, refreshCandidates, type LevelGraph, type RefreshPlacement } from './refresh-graph.js';

export interface PlacementOptions {
  /** Levels between refreshes: the chain's top level. */
  levels: number;
  /** Most frontier states kept per step before the search stops being exact; default 200000. */
  maxStates?: number;
}

export interface OptimalSearch {
  /** null only when a cut-short search lost every feasible state (the caller falls back to greedy). */
  refreshed: Set<number> | null;
  /** True when no state was dropped for the budget: the count is the optimum. */
  exact: boolean;
  /** Largest number of frontier states at one step. */
  peakStates: number;
  /** Most values live at once. */
  frontier: number;
}

export interface OptimalPlacement extends RefreshPlacement {
  count: number;
  /** What the greedy baseline needs on the same program. */
  greedyCount: number;
  exact: boolean;
  peakStates: number;
  frontier: number;
}

/** Refreshed nodes as a persistent list: states share their history. */
interface Picks {
  node: number;
  next: Picks | null;
}

interface State {
  depths: Uint8Array;
  cost: number;
  picks: Picks | null;
}

const PRUNE_LIMIT = 4000;

function keyOf(depths: Uint8Array): string {
  let k = '';
  for (let i = 0; i < depths.length; i += 4096) k += String.fromCharCode(...depths.subarray(i, i + 4096));
  return k;
}

function dominates(a: State, b: State): boolean {
  if (a.cost > b.cost) return false;
  for (let i = 0; i < a.depths.length; i++) if (a.depths[i]! > b.depths[i]!) return false;
  return true;
}

/** Drops dominated states; states sorted by cost then total depth, so a dominator comes first. */
function pruneDominated(states: State[]): State[] {
  const sum = (s: State) => s.depths.reduce((x, y) => x + y, 0);
  const sorted = states.map((s) => ({ s, t: sum(s) })).sort((x, y) => x.s.cost - y.s.cost || x.t - y.t);
  const kept: State[] = [];
  for (const { s } of sorted) if (!kept.some((k) => dominates(k, s))) kept.push(s);
  return kept;
}

export function optimalRefreshSet(g: LevelGraph, maxStates = 200_000): OptimalSearch {
  // Depths are stored as bytes; no CKKS chain comes near 255 levels.
  if (g.levels > 255) throw new FhecError(`level budget ${g.levels} is above the 255 the placement handles`);
  const n = g.names.length;
  const candidate = refreshCandidates(g);
  const lastUse = g.consumers.map((c) => (c.length ? Math.max(...c) : -1));
  let live: number[] = [];
  let states: State[] = [{ depths: new Uint8Array(0), cost: 0, picks: null }];
  let exact = true;
  let peakStates = 1;
  let frontier = 0;
  for (let v = 0; v < n; v++) {
    const pos = new Map(live.map((x, i) => [x, i]));
    const keeps = g.consumers[v]!.length > 0;
    const nextLive = live.filter((x) => lastUse[x]! > v);
    if (keeps) nextLive.push(v);
    const from = nextLive.map((x) => (x === v ? -1 : pos.get(x)!));
    frontier = Math.max(frontier, nextLive.length);
    const merged = new Map<string, State>();
    const offer = (s: State, own: number, cost: number, picks: Picks | null) => {
      const depths = new Uint8Array(from.length);
      for (let i = 0; i < from.length; i++) depths[i] = from[i]! < 0 ? own : s.depths[from[i]!]!;
      const key = keyOf(depths);
      const old = merged.get(key);
      if (!old || cost < old.cost) merged.set(key, { depths, cost, picks });
    };
    for (const s of states) {
      let raw = g.initial[v]!;
      if (raw < 0) {
        raw = 0;
        for (const a of g.args[v]!) raw = Math.max(raw, s.depths[pos.get(a)!]!);
        raw += g.weight[v]!;
      }
      if (raw > g.levels) continue;
      offer(s, raw, s.cost, s.picks);
      if (keeps && candidate[v] && raw > 0) offer(s, 0, s.cost + 1, { node: v, next: s.picks });
    }
    states = [...merged.values()];
    // Quadratic, so only while the state set is small enough for it to pay.
    if (states.length > 1 && states.length <= PRUNE_LIMIT) states = pruneDominated(states);
    if (states.length > maxStates) {
      // Beam: keep the cheapest, shallowest states; the result is then a heuristic.
      exact = false;
      const sum = (x: State) => x.depths.reduce((a, b) => a + b, 0);
      states = states.sort((x, y) => x.cost - y.cost || sum(x) - sum(y)).slice(0, maxStates);
    }
    peakStates = Math.max(peakStates, states.length);
    live = nextLive;
    if (states.length === 0) {
      if (exact) throw new Error(`internal: no feasible state at %${g.names[v]}`);
      return { refreshed: null, exact, peakStates, frontier };
    }
  }
  let best = states[0]!;
  for (const s of states) if (s.cost < best.cost) best = s;
  const refreshed = new Set<number>();
  for (let p = best.picks; p; p = p.next) refreshed.add(p.node);
  return { refreshed, exact, peakStates, frontier };
}

/** Inserts the fewest refreshes into an unmanaged program so it fits a chain with `levels` levels. */
export function placeRefreshes(program: FheProgram, options: PlacementOptions): OptimalPlacement {
  const g = levelGraph(program, options.levels);
  const greedy = greedyRefreshSet(g);
  const search = optimalRefreshSet(g, options.maxStates);
  const chosen = search.refreshed && search.refreshed.size <= greedy.size ? search.refreshed : greedy;
  return {
    ...placementResult(program, g, chosen),
    count: chosen.size,
    greedyCount: greedy.size,
    exact: search.exact,
    peakStates: search.peakStates,
    frontier: search.frontier,
  };
}
