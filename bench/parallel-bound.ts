// `node dist/bench/index.js parallel-bound --plan STEP.json [--workers 2,4]`: the most W evaluation workers
// could gain on a step plan, from the plan alone. Each op is priced with the shipped cost table, as the
// parameter search prices it (passes/fhe/analysis/predict-latency.ts). The executors run stage by stage
// (runtime/refresh/rounds.ts), each stage ending with its round of refreshes, which the key holder answers
// alone; so a stage on W workers takes at least max(its critical path, its work / W), moves between workers
// counted free. Encodes are left out (a steady decode step finds its weight plaintexts cached). The bound
// is the one-thread time over the sum of those stage times plus the refreshes: counted whole (serial), or
// with the evaluator's half of each round trip (masking, unmasking: the cost table does not split it, half
// is assumed) spread over the workers, as the pool does.

import { FhecError } from '../ir/errors.js';
import { defaultCostTable } from '../ir/ckks/cost-table.js';
import { refreshRounds } from '../ir/fhe/refresh-rounds.js';
import { predictLatency } from '../passes/fhe/analysis/predict-latency.js';
import { programKeys } from '../passes/fhe/parameters/parameter-search.js';
import { loadPlan } from '../runtime/plan/plan.js';

export interface ParallelBound {
  plan: string;
  stages: number;
  /** Predicted ms of the ops other than encodes and refreshes, and of the refreshes. */
  opsMs: number;
  refreshMs: number;
  /** Sum over stages of the longest chain of ops. */
  criticalPathMs: number;
  /**
   * Op time that the refresh round ending its own stage does not need (its first use is a later stage's,
   * or only the outputs'): the most work that could run while that round is answered.
   */
  overlappableMs: number;
  byWorkers: { workers: number; boundMs: number; speedup: number; maskingSpreadMs: number; maskingSpreadSpeedup: number }[];
}

export function parallelBoundOptions(argv: string[]): { plan: string; workers: number[] } {
  const at = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const plan = at('--plan');
  if (!plan) throw new FhecError('the parallel-bound bench needs --plan STEP.json (a step plan: a decode plan of a generation plan\'s folder, or a model plan)');
  const workers = (at('--workers') ?? '2,4').split(',').map(Number);
  if (workers.some((w) => !Number.isInteger(w) || w < 1)) throw new FhecError(`--workers lists positive integers, got ${at('--workers')}`);
  return { plan, workers };
}

export function runParallelBound(o: { plan: string; workers: number[] }): ParallelBound {
  const { program, params } = loadPlan(o.plan);
  const ms = new Float64Array(program.ops.length);
  const { rotationKeySteps } = programKeys(program, params);
  predictLatency(program, defaultCostTable(), { rotationKeySteps, onOp: (i, _kind, t) => (ms[i]! += t) });
  const { waits, count } = refreshRounds(program);
  const done = new Map<string, number>();
  const stageOf = new Map<string, number>();
  program.ops.forEach((op, i) => op.result && stageOf.set(op.result.name, waits[i]!));
  const stages = Array.from({ length: count + 1 }, () => ({ work: 0, path: 0, refresh: 0 }));
  program.ops.forEach((op, i) => {
    const s = stages[waits[i]!]!;
    if (op.kind === 'refresh') {
      s.refresh += ms[i]!;
      done.set(op.result!.name, 0);
      return;
    }
    // Finish times within the stage, from its start; encodes (cached) and the previous rounds' results are ready at 0.
    const cost = op.kind === 'encode' ? 0 : ms[i]!;
    const start = Math.max(0, ...op.args.map((a) => (stageOf.get(a.name) === waits[i] ? done.get(a.name) ?? 0 : 0)));
    if (op.result) done.set(op.result.name, start + cost);
    s.work += cost;
    s.path = Math.max(s.path, start + cost);
  });
  // Each op's deadline: the first round whose sending needs it (a refresh reading it, or an op with a deadline).
  const producer = new Map<string, number>();
  program.ops.forEach((op, i) => op.result && producer.set(op.result.name, i));
  const deadline = new Array<number>(program.ops.length).fill(Infinity);
  for (let i = program.ops.length - 1; i >= 0; i--) {
    const op = program.ops[i]!;
    const d = op.kind === 'refresh' ? waits[i]! : deadline[i]!;
    for (const a of op.args) {
      const p = producer.get(a.name);
      if (p !== undefined) deadline[p] = Math.min(deadline[p]!, d);
    }
  }
  let overlappableMs = 0;
  program.ops.forEach((op, i) => {
    if (op.kind !== 'refresh' && op.kind !== 'encode' && waits[i]! < count && deadline[i]! > waits[i]!) overlappableMs += ms[i]!;
  });
  const opsMs = stages.reduce((a, s) => a + s.work, 0);
  const refreshMs = stages.reduce((a, s) => a + s.refresh, 0);
  const one = opsMs + refreshMs;
  return {
    plan: o.plan,
    stages: stages.length,
    opsMs,
    refreshMs,
    criticalPathMs: stages.reduce((a, s) => a + s.path, 0),
    overlappableMs,
    byWorkers: [1, ...o.workers.filter((w) => w > 1)].map((w) => {
      const boundMs = stages.reduce((a, s) => a + Math.max(s.path, s.work / w) + s.refresh, 0);
      const maskingSpreadMs = stages.reduce((a, s) => a + Math.max(s.path, s.work / w) + s.refresh / 2 + s.refresh / 2 / w, 0);
      return { workers: w, boundMs, speedup: one / boundMs, maskingSpreadMs, maskingSpreadSpeedup: one / maskingSpreadMs };
    }),
  };
}

export function printParallelBound(r: ParallelBound): void {
  console.log(`\n## Most W workers can gain on ${r.plan} (shipped cost table; encodes cached, moves free)`);
  console.log(`${r.stages} stages; ops ${(r.opsMs / 1000).toFixed(2)} s, refreshes ${(r.refreshMs / 1000).toFixed(2)} s, critical paths of the stages ${(r.criticalPathMs / 1000).toFixed(2)} s`);
  console.log(`ops no refresh round of their own stage needs (could run while it is answered): ${(r.overlappableMs / 1000).toFixed(2)} s (${((100 * r.overlappableMs) / r.opsMs).toFixed(1)}% of the ops)`);
  console.log('| workers | at least (s), round trips serial | speed-up at most | at least (s), masking spread over the workers | speed-up at most |');
  console.log('|---:|---:|---:|---:|---:|');
  for (const w of r.byWorkers) console.log(`| ${w.workers} | ${(w.boundMs / 1000).toFixed(2)} | ${w.speedup.toFixed(2)}x | ${(w.maskingSpreadMs / 1000).toFixed(2)} | ${w.maskingSpreadSpeedup.toFixed(2)}x |`);
}
