// Optimal refresh placement: the fewest refreshed values such that no value goes below level 0.
//
// Problem (see refresh-graph.ts for the level model): choose S minimizing |S| with
// d(v) = w(v) + max_{a in args(v)} (a in S ? 0 : d(a)) <= L for every value v. On general DAGs this is
// NP-hard (it contains minimum bootstrapping placement for Boolean circuits, Paindavoine and Vialla,
// SAC 2015), and a min-cut does not model it exactly: a refresh is paid per value, for all its
// consumers at once, and "at most L levels between refreshes" is a path constraint, not a cut.
//
// Algorithm (refresh-search.ts): dynamic programming over the program order with the frontier as
// state. Walking the ops in order, the state is the depth every live value (defined, still read
// later) presents to its readers; the decision for a value (refresh it or not) is made where it is
// defined, since all its readers come later. Feasibility and cost of the rest of the program depend
// on nothing else, so
//   best(state after op i) = min over (state after op i-1, decision at op i) of cost
// is exact (the DP over (node, level) of the literature generalized from trees and chains to any
// DAG). Reductions keep it exact: only candidate values branch, a lookahead drops states that cannot
// finish, equal states merge, depths that can no longer decide anything are cleared (covering),
// dominated states go, and states that already cost as much as the greedy placement go.
// States <= (L+1)^(live candidate values); for chains, trees, series-parallel blocks, residual
// stacks and small polynomial evaluators they stay small. A large Chebyshev evaluation keeps ~30
// basis values live whose depths really do vary independently (2^16 states and more), so past
// `maxStates` the DP keeps the cheapest, shallowest states (a beam) and says it is no longer exact.
// The greedy placement's own state is kept at every step, so the result is never worse than greedy.
//
// Measured on the lowered llama-byte-a (2 layers; node dist/bench/refresh-placement.js), maxStates
// 500: prefill of 8 tokens at N=16384 (L=6) 61 refreshes against greedy's 122, decode after 8 or 20
// tokens 37 against 106 / 107, prefill of 16 at N=32768 (L=18) 8 against 94, each in 0.5-2 s.
// Beams of 10000 (and of 200000 on a decode plan) find no fewer.

import type { FheProgram } from '../../../ir/fhe/types.js';
import { greedyRefreshSet } from './refresh-greedy.js';
import { levelGraph, placementResult, type LevelGraph, type RefreshPlacement } from './refresh-graph.js';
import { searchRefreshes } from './refresh-search.js';
import { foldIntoRefreshes, foldableProducts } from './refresh-fold.js';

export interface PlacementOptions {
  /** Levels between refreshes: the chain's top level. */
  levels: number;
  /**
   * Most frontier states kept per step before the search stops being exact and becomes a beam (never
   * worse than greedy); default 200000, which keeps small programs exact. Whole models: 500.
   */
  maxStates?: number;
  /** Lowest level each value may sit at (refresh-graph.ts); default 0 for all. */
  floor?: (name: string) => number;
  /** Fold splat constant products into the refreshes before them (refresh-fold.ts); default true. */
  fold?: boolean;
}

export interface OptimalSearch {
  refreshed: Set<number>;
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

const DEFAULT_MAX_STATES = 200_000;

/** The fewest refreshed nodes (or, past the budget, a beam's placement no worse than greedy's). */
function optimalRefreshSet(g: LevelGraph, maxStates = DEFAULT_MAX_STATES, greedy = greedyRefreshSet(g)): OptimalSearch {
  const search = searchRefreshes(g, { beam: maxStates, incumbent: greedy });
  if (search.refreshed.size > greedy.size) throw new Error('internal: the search lost the greedy placement');
  return search;
}

/**
 * Inserts the fewest refreshes into an unmanaged program so it fits a chain with `levels` levels; a
 * splat constant product that is the only reader of a refreshed value is then folded into that refresh
 * (refresh-fold.ts: it spends no level), and the rest is placed again around the folded refreshes.
 */
export function placeRefreshes(program: FheProgram, options: PlacementOptions): OptimalPlacement {
  const g = levelGraph(program, options.levels, options.floor);
  const greedy = greedyRefreshSet(g);
  const search = optimalRefreshSet(g, options.maxStates ?? DEFAULT_MAX_STATES, greedy);
  const folds = options.fold === false ? new Map<number, number>() : foldableProducts(program, new Set([...search.refreshed].map((v) => g.names[v]!)));
  if (folds.size === 0) {
    return {
      ...placementResult(program, g, search.refreshed),
      count: search.refreshed.size,
      greedyCount: greedy.size,
      exact: search.exact,
      peakStates: search.peakStates,
      frontier: search.frontier,
    };
  }
  // Each folded refresh stays where it was, and the products it absorbed spend no level any more: the
  // first placement without the folded values is still feasible, so the second costs no more.
  const folded = foldIntoRefreshes(program, folds);
  const g2 = levelGraph(folded, options.levels, options.floor);
  const again = optimalRefreshSet(g2, options.maxStates ?? DEFAULT_MAX_STATES);
  const placed = placementResult(folded, g2, again.refreshed);
  const foldedNames = [...folds.keys()].map((i) => program.ops[i]!.args[0]!.name);
  const index = new Map(g.names.map((n, i) => [n, i]));
  return {
    program: placed.program,
    refreshed: [...foldedNames, ...placed.refreshed].sort((a, b) => index.get(a)! - index.get(b)!),
    depth: placed.depth,
    count: folds.size + again.refreshed.size,
    greedyCount: greedy.size,
    exact: search.exact && again.exact,
    peakStates: Math.max(search.peakStates, again.peakStates),
    frontier: Math.max(search.frontier, again.frontier),
  };
}
