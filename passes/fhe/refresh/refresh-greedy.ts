// The baseline refresh placement: "refresh when out of levels". Walk the program in order; when an op
// would go below level 0 (its depth would exceed L), refresh each operand that pushes it there, and go
// on. Each refreshed operand is refreshed once, for all its later consumers. It never looks ahead, so
// it refreshes late and wide (after a fan-out) where one earlier refresh would do.

import { FhecError } from '../../../ir/errors.js';
import type { FheProgram } from '../../../ir/fhe/types.js';
import { levelGraph, placementResult, type LevelGraph, type RefreshPlacement } from './refresh-graph.js';

/** The refreshed node indices the greedy rule picks. */
export function greedyRefreshSet(g: LevelGraph): Set<number> {
  const refreshed = new Set<number>();
  const d: number[] = [];
  const seen = (a: number): number => (refreshed.has(a) ? 0 : d[a]!);
  for (let v = 0; v < g.names.length; v++) {
    if (g.initial[v]! >= 0) {
      if (g.initial[v]! > g.limit[v]!) throw new FhecError(`%${g.names[v]} starts ${g.initial[v]} levels down, below its lowest level`);
      d.push(g.initial[v]!);
      continue;
    }
    const w = g.weight[v]!;
    if (w > g.limit[v]!) throw new FhecError(`%${g.names[v]} multiplies, and the chain has no level to spend above its lowest level`);
    // Each operand was within its own limit when defined, so refreshing it is always allowed.
    for (const a of g.args[v]!) if (seen(a) + w > g.limit[v]!) refreshed.add(a);
    d.push(w + Math.max(0, ...g.args[v]!.map(seen)));
  }
  return refreshed;
}

/** Inserts refreshes by the greedy rule into an unmanaged program for a chain with `levels` levels. */
export function placeRefreshesGreedy(program: FheProgram, levels: number, floor?: (name: string) => number): RefreshPlacement {
  const g = levelGraph(program, levels, floor);
  return placementResult(program, g, greedyRefreshSet(g));
}
