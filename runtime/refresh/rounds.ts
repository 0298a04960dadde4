// Refresh rounds: which refreshes of a program can travel to the key holder in one message. A refresh's
// round is one more than the highest round among the refreshes its input depends on (0 for a value no
// refresh feeds), so all refreshes of round r depend only on rounds < r and can be sent together once
// everything not waiting for round r has run. The number of rounds is the program's refresh dependency
// depth: the fewest messages any execution order can use. Derived from the program's DAG alone, so old
// plans batch too, and the evaluator and the key holder (schedule.ts) agree on the order without
// talking: round by round, program order within a round.

import type { FheProgram } from '../../ir/fhe/types.js';

export interface ExecutionStage {
  /** Non-refresh ops whose inputs are all available once the previous stage's refreshes came back, in program order. */
  ops: number[];
  /** Refresh ops sent together after `ops` (round = stage index + 1), in program order. */
  refreshes: number[];
}

export interface RefreshRounds {
  /** Stage s runs its ops, then sends its refreshes as round s + 1. The last stage has no refreshes. */
  stages: ExecutionStage[];
  /** Refresh op index -> its round (1-based). */
  roundOf: Map<number, number>;
  /** Rounds with at least one refresh. */
  count: number;
}

const cache = new WeakMap<FheProgram, RefreshRounds>();

/** The program's refresh rounds and the stage order that batches them (computed once per program object). */
export function refreshRounds(program: FheProgram): RefreshRounds {
  const hit = cache.get(program);
  if (hit) return hit;
  // depth[value]: the highest refresh round among the refreshes the value depends on.
  const depth = new Map<string, number>();
  const stages: ExecutionStage[] = [];
  const stage = (s: number): ExecutionStage => {
    while (stages.length <= s) stages.push({ ops: [], refreshes: [] });
    return stages[s]!;
  };
  const roundOf = new Map<number, number>();
  program.ops.forEach((op, i) => {
    let d = 0;
    for (const a of op.args) d = Math.max(d, depth.get(a.name) ?? 0);
    if (op.kind === 'refresh') {
      roundOf.set(i, d + 1);
      stage(d).refreshes.push(i);
      if (op.result) depth.set(op.result.name, d + 1);
    } else {
      stage(d).ops.push(i);
      if (op.result) depth.set(op.result.name, d);
    }
  });
  if (stages.length === 0 || stages[stages.length - 1]!.refreshes.length > 0) stages.push({ ops: [], refreshes: [] });
  const out: RefreshRounds = { stages, roundOf, count: stages.length - 1 };
  cache.set(program, out);
  return out;
}

/**
 * The order every executor runs a program's ops in (executeProgram with a batching refresher, the
 * emitted modules' ProgramRuntime, the worker pool): stage by stage, each stage's ops then its round of
 * refreshes. The key holder's schedule expects the refreshes in this order (schedule.ts).
 */
export function executionOrder(program: FheProgram): number[] {
  return refreshRounds(program).stages.flatMap((s) => [...s.ops, ...s.refreshes]);
}
