// The fewest refreshes by exhaustive search over every subset of every value, smallest first: the
// oracle the refresh placement tests compare the DP with (optionally under per-value floors).
import type { FheProgram } from '../../ir/fhe/types.js';
import { isFeasible, levelGraph } from '../../passes/fhe/refresh/refresh-graph.js';

/** Undefined when no subset is feasible. */
export function bruteForceRefreshes(program: FheProgram, levels: number, floor?: (name: string) => number): number | undefined {
  const g = levelGraph(program, levels, floor);
  const n = g.names.length;
  for (let size = 0; size <= n; size++) {
    const found = (function search(start: number, chosen: number[]): boolean {
      if (chosen.length === size) return isFeasible(g, new Set(chosen));
      for (let i = start; i < n; i++) if (search(i + 1, [...chosen, i])) return true;
      return false;
    })(0, []);
    if (found) return size;
  }
  return undefined;
}
