// CKKS per-operation benchmark through fhec's backend interface (node-seal; the measurement is
// runtime/ckks/measure-costs.ts, shared with `fhec calibrate-costs`), and the executor overhead of a
// whole plan: plan wall time / sum over its ops of the median time of that op at that level.
// Call runCkksOpsBench() (bench/index.ts can add it); prints a table and writes bench/out/ckks-ops.json.

import * as fs from 'node:fs';
import { FheBuilder } from '../ir/fhe/builder.js';
import type { FheProgram } from '../ir/fhe/types.js';
import { manageScales } from '../passes/fhe/manage/manage-scales.js';
import { lowerMatVec } from '../passes/fhe/layout/matvec.js';
import { replicatedLayout } from '../passes/fhe/layout/packing.js';
import type { CkksEvaluator } from '../runtime/backend.js';
import { encryptInputs, executeProgram, keyRequestFor } from '../runtime/ckks/execute.js';
import { describeParameters, fheChain, selectParameters, topLevel, type CkksParameters } from '../ir/ckks/params.js';
import type { CostTable } from '../ir/ckks/cost-table.js';
import { DEFAULT_LINK, measureRingCosts } from '../runtime/ckks/measure-costs.js';
import { predictLatency } from '../passes/fhe/analysis/predict-latency.js';
import { sealBackend } from '../runtime/seal/backend.js';

/** A plan shaped like a model layer: a 64 x 64 linear map, then x * x (ct x ct) and a rotation. */
function samplePlan(params: CkksParameters): FheProgram {
  const slots = params.ringDegree / 2;
  const b = new FheBuilder('bench', slots);
  const layout = replicatedLayout(64, slots);
  const x = b.input('x', layout);
  const mat = { rows: 64, cols: 64, at: (r: number, c: number) => Math.sin(r * 64 + c) / 8 };
  const y = lowerMatVec(b, mat, [{ value: x, layout, colStart: 0 }]).outputs[0]!.value;
  const z = b.add(b.mul(y, y), b.rotate(y, 1));
  b.output('y', z, layout);
  return manageScales(b.build(), { chain: fheChain(params), topScale: params.scale });
}

export interface CkksOpsBench {
  parameters: string;
  /** Median ms per op kind and level. */
  ops: Record<string, Record<number, number>>;
  plan: {
    ops: number;
    /** Median wall time of the whole plan. */
    wallMs: number;
    /** Time spent inside the ops during that run. */
    inOpsMs: number;
    /** Executor overhead: plan time / time of its ops (same run). */
    overhead: number;
    /** Sum of the isolated per-op medians (hot caches, one op at a time). */
    sumOfOpMediansMs: number;
    /** Plan time / sum of isolated medians: includes cache effects and machine noise. */
    overheadVsMedians: number;
  };
}

export async function runCkksOpsBench(params: CkksParameters = selectParameters({ depth: 2 })): Promise<CkksOpsBench> {
  const program = samplePlan(params);
  // Per-op medians: the same measurement `fhec calibrate-costs` makes, on the standard chain.
  // Wall clock here, like the plan timings below it is compared with.
  const levels = Array.from({ length: topLevel(params) + 1 }, (_, l) => l);
  const costs = await measureRingCosts(sealBackend, params, { levels, reps: 7, clock: 'wall' });
  const ops: Record<string, Record<number, number>> = {};
  for (const [op, byLevel] of Object.entries(costs.ops)) {
    if (op === 'save' || op === 'load') continue;
    ops[op] = Object.fromEntries(Object.entries(byLevel).map(([l, ms]) => [Number(l), ms]));
  }
  const client = await sealBackend.createClient(params, keyRequestFor(program));
  const ev: CkksEvaluator = await sealBackend.createEvaluator(params, client.evaluationKeys());
  // Executor overhead on the sample plan.
  const inputs = encryptInputs(program, client, { x: Float64Array.from({ length: 64 }, (_, i) => Math.cos(i) / 2) });
  // The sum of the isolated medians of the plan's ops (without its input load and output save),
  // priced the way passes/fhe/predict-latency.ts prices a plan.
  const table: CostTable = {
    format: 'fhec-cost-table',
    version: 1,
    provenance: { machine: 'this run', cpus: 1, date: new Date().toISOString(), nodeSeal: '', node: process.version, reps: 7, quick: false },
    link: DEFAULT_LINK,
    ringDegrees: [costs],
  };
  const predicted = predictLatency(program, table);
  const expected = predicted.totalMs - (predicted.byKind.get('input')?.ms ?? 0) - (predicted.byKind.get('output')?.ms ?? 0);
  // The executor's own cost: wall time over the time spent inside the ops of the same run.
  const runs: { wall: number; inOps: number }[] = [];
  executeProgram(program, ev, inputs);
  for (let i = 0; i < 7; i++) {
    const r = executeProgram(program, ev, inputs);
    let inOps = 0;
    for (const v of r.ops.values()) inOps += v.ms;
    runs.push({ wall: r.totalMs, inOps });
  }
  runs.sort((a, b) => a.wall / a.inOps - b.wall / b.inOps);
  const mid = runs[3]!;
  const walls = runs.map((r) => r.wall).sort((a, b) => a - b);
  const wall = walls[3]!;
  const result: CkksOpsBench = {
    parameters: describeParameters(params),
    ops,
    plan: {
      ops: program.ops.length,
      wallMs: wall,
      inOpsMs: mid.inOps,
      overhead: mid.wall / mid.inOps,
      sumOfOpMediansMs: expected,
      overheadVsMedians: wall / expected,
    },
  };
  ev.dispose();
  client.dispose();
  printCkksOpsBench(result);
  fs.mkdirSync('bench/out', { recursive: true });
  fs.writeFileSync('bench/out/ckks-ops.json', JSON.stringify(result, null, 1));
  return result;
}

export function printCkksOpsBench(r: CkksOpsBench): void {
  const levels = [...new Set(Object.values(r.ops).flatMap((m) => Object.keys(m).map(Number)))].sort((a, b) => b - a);
  console.log(`\n## CKKS ops on node-seal through fhec's backend (median of 7 runs, ms): ${r.parameters}`);
  console.log(`| op | ${levels.map((l) => `level ${l}`).join(' | ')} |`);
  console.log(`|---|${levels.map(() => '---').join('|')}|`);
  for (const [op, m] of Object.entries(r.ops)) {
    console.log(`| ${op} | ${levels.map((l) => (m[l] === undefined ? '' : m[l]!.toFixed(3))).join(' | ')} |`);
  }
  const p = r.plan;
  console.log(
    `\nplan of ${p.ops} ops: ${p.wallMs.toFixed(1)} ms; executor overhead ${p.overhead.toFixed(3)} (plan time / its op times); ` +
      `vs the sum of isolated op medians (${p.sumOfOpMediansMs.toFixed(1)} ms): ${p.overheadVsMedians.toFixed(2)}`,
  );
}
