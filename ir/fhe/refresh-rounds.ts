// Refresh rounds: the dependency level of each refresh among the refreshes. A refresh is in round k
// (0-based) when the deepest chain of refreshes its input depends on has k of them: every refresh of
// one round can travel to the key holder in one message, and a plan needs as many round trips as it
// has rounds (the fewest any execution order can use; not one per refresh). The one computation of a
// refresh's round: the plan records it (runtime/plan/plan.ts, `round`), the executors stage their work
// on it (runtime/refresh/rounds.ts), the compile summary and the parameter search count it.

import type { FheProgram } from './types.js';

export interface RefreshRounds {
  /** Round of each refresh op, in program order. */
  rounds: number[];
  /** Rounds in the program: 1 + the largest round, 0 without refreshes. */
  count: number;
  /** Per op (program order): the rounds that must have come back before it can run (a refresh op is sent in round waits[i]). */
  waits: number[];
}

const cache = new WeakMap<FheProgram, RefreshRounds>();

/** The program's refresh rounds (computed once per program object). */
export function refreshRounds(program: FheProgram): RefreshRounds {
  const hit = cache.get(program);
  if (hit) return hit;
  // after(v): the rounds that must have come back before v is available.
  const after = new Map<string, number>();
  const rounds: number[] = [];
  const waits: number[] = [];
  let count = 0;
  for (const op of program.ops) {
    let a = 0;
    for (const x of op.args) a = Math.max(a, after.get(x.name) ?? 0);
    waits.push(a);
    if (op.kind === 'refresh') {
      rounds.push(a);
      count = Math.max(count, a + 1);
      a += 1;
    }
    if (op.result) after.set(op.result.name, a);
  }
  const out = { rounds, count, waits };
  cache.set(program, out);
  return out;
}
