// Execution stages: the order that sends each round of refreshes (ir/fhe/refresh-rounds.ts, the one
// computation of a refresh's round) to the key holder in one message. Stage r runs every op waiting on
// r rounds, then sends round r's refreshes together. Derived from the program's DAG alone, so old plans
// batch too, and the evaluator and the key holder (schedule.ts) agree on the order without talking:
// round by round, program order within a round.

import type { FheProgram } from '../../ir/fhe/types.js';
import { refreshRounds } from '../../ir/fhe/refresh-rounds.js';

export interface ExecutionStage {
  /** Non-refresh ops whose inputs are all available once the previous stage's refreshes came back, in program order. */
  ops: number[];
  /** Refresh ops sent together after `ops` (round = stage index + 1), in program order. */
  refreshes: number[];
}

export interface RefreshStages {
  /** Stage s runs its ops, then sends its refreshes as round s + 1. The last stage has no refreshes. */
  stages: ExecutionStage[];
  /** Rounds with at least one refresh. */
  count: number;
}

const cache = new WeakMap<FheProgram, RefreshStages>();

/** The program's stages that batch its refresh rounds (computed once per program object). */
export function refreshStages(program: FheProgram): RefreshStages {
  const hit = cache.get(program);
  if (hit) return hit;
  const { waits, count } = refreshRounds(program);
  const stages: ExecutionStage[] = Array.from({ length: count + 1 }, () => ({ ops: [], refreshes: [] }));
  program.ops.forEach((op, i) => {
    const s = stages[waits[i]!]!;
    if (op.kind === 'refresh') s.refreshes.push(i);
    else s.ops.push(i);
  });
  const out: RefreshStages = { stages, count };
  cache.set(program, out);
  return out;
}

/**
 * The order every executor runs a program's ops in (ProgramRuntime, which runs executeProgram and the
 * emitted plan modules; the emitted arithmetic modules; the worker pool): stage by stage, each stage's
 * ops then its round of refreshes. The key holder's schedule expects the refreshes in this order (schedule.ts).
 */
export function executionOrder(program: FheProgram): number[] {
  return refreshStages(program).stages.flatMap((s) => [...s.ops, ...s.refreshes]);
}

/**
 * The ops of a stage its round of refreshes waits on: the refreshes' operands' producers within the
 * stage, transitively. The rest of the stage can run while the key holder answers the round (the
 * one-thread runtime does so; a run trace's stage split, runtime/trace/stage-split.ts, counts them apart).
 */
export function roundInputs(program: FheProgram, stage: ExecutionStage): Set<number> {
  const inStage = new Map<string, number>();
  for (const i of stage.ops) {
    const r = program.ops[i]!.result;
    if (r) inStage.set(r.name, i);
  }
  const out = new Set<number>();
  const todo = [...stage.refreshes];
  while (todo.length > 0) {
    for (const a of program.ops[todo.pop()!]!.args) {
      const j = inStage.get(a.name);
      if (j !== undefined && !out.has(j)) {
        out.add(j);
        todo.push(j);
      }
    }
  }
  return out;
}

/** A rotate op of a refresh's result, which the key holder can answer in the refresh's reply. */
export interface RefreshRotation {
  /** The rotate op's index in the program. */
  op: number;
  step: number;
}

const rotationCache = new WeakMap<FheProgram, Map<number, RefreshRotation[]>>();

/**
 * Per refresh op (by index), the rotate ops whose operand is its fresh result, one per distinct step in
 * program order: the rotations the key holder may return with the refresh (messages.ts), since it holds
 * the masked value in NTT form and permutes it for the price of a copy (runtime/seal/galois.ts), where
 * the evaluator pays a key switch. The evaluator and the key holder's schedule (schedule.ts) both derive
 * them from the program, so they agree without talking. A second rotate by the same step (not expected
 * after CSE) stays the evaluator's.
 */
export function refreshRotations(program: FheProgram): Map<number, RefreshRotation[]> {
  const hit = rotationCache.get(program);
  if (hit) return hit;
  const refreshOf = new Map<string, number>();
  program.ops.forEach((op, i) => {
    if (op.kind === 'refresh' && op.result) refreshOf.set(op.result.name, i);
  });
  const out = new Map<number, RefreshRotation[]>();
  program.ops.forEach((op, i) => {
    if (op.kind !== 'rotate' || op.step === undefined || op.step === 0) return;
    const r = refreshOf.get(op.args[0]!.name);
    if (r === undefined) return;
    const list = out.get(r) ?? [];
    if (list.some((x) => x.step === op.step)) return;
    list.push({ op: i, step: op.step });
    out.set(r, list);
  });
  rotationCache.set(program, out);
  return out;
}
