// Refresh rounds: the dependency level of each refresh among the refreshes. A refresh is in round k
// when the deepest chain of refreshes its input depends on has k of them: every refresh of one round
// can travel to the key holder in one message, and a plan needs as many round trips as it has rounds
// (not one per refresh). The plan records each refresh's round (runtime/plan/plan.ts, `round`), the
// compile summary and the parameter search count them.

import type { FheProgram } from './types.js';

export interface RefreshRounds {
  /** Round of each refresh op, in program order. */
  rounds: number[];
  /** Rounds in the program: 1 + the largest round, 0 without refreshes. */
  count: number;
}

export function refreshRounds(program: FheProgram): RefreshRounds {
  // after(v): the rounds that must have come back before v can be computed.
  const after = new Map<string, number>();
  const rounds: number[] = [];
  let count = 0;
  for (const op of program.ops) {
    let a = 0;
    for (const x of op.args) a = Math.max(a, after.get(x.name) ?? 0);
    if (op.kind === 'refresh') {
      rounds.push(a);
      count = Math.max(count, a + 1);
      a += 1;
    }
    if (op.result) after.set(op.result.name, a);
  }
  return { rounds, count };
}
