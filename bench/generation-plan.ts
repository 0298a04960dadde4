// `node dist/bench/index.js plan [--max-context C] [--max-windows W]`: what compiling a generation plan
// for model A costs, and what one decode token of it asks of the key holder. It compiles a
// `--max-context C` plan (the parameter search runs on the decode plan at past C - 1, then the prefill
// plan, then one decode plan per bucket of past length, all ahead), counts the step plans it holds and
// prints each decode plan's pasts, compile time and predicted seconds per token (a bucket's plan serves
// its shorter pasts at the cost of its longest), and from the searched decode plan counts per decode token: refreshes, refresh rounds
// (one more for the KV-cache carry), relinearizations (and those whose result only feeds a refresh:
// what a refresh that absorbs relinearize and rescale would save), and the bytes refreshes exchange;
// predicted seconds in-process and over a 50 ms / 100 Mbit link.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { compileGenerationPlan } from '../compiler/generation-plan.js';
import { defaultCostTable, parseLink, withLink } from '../ir/ckks/cost-table.js';
import { refreshRounds } from '../ir/fhe/refresh-rounds.js';
import type { FheProgram } from '../ir/fhe/types.js';
import { programKeys } from '../passes/fhe/parameters/parameter-search.js';
import { predictLatency } from '../passes/fhe/analysis/predict-latency.js';
import { makeParameters } from '../ir/ckks/params.js';

const MODEL = path.join('models', 'llama-byte-a', 'model.onnx');
const CALIBRATION = path.join('models', 'llama-byte-a', 'calibration.txt');
const WAN = 'rtt=50ms,bandwidth=100Mbit';

export interface PlanBench {
  maxContext: number;
  maxWindows?: number;
  compileSeconds: number;
  /** Step plans in the plan directory after the compile. */
  stepPlans: number;
  /** Decode plans (one per bucket of past length, compiled ahead). */
  decodePlans: { from: number; to: number; seconds: number; refreshes: number; rounds: number; predictedSeconds?: number }[];
  ringDegree: number;
  bitSizes: number[];
  decode: {
    past: number;
    refreshes: number;
    /** Refresh rounds of the step plus one for the cache carry. */
    rounds: number;
    relinearizations: number;
    /** Relinearizations whose result reaches nothing but a refresh (through a rescale at most). */
    relinearizationsOnlyRefreshed: number;
    refreshMiB: number;
    predictedSeconds: number;
    predictedSecondsWan: number;
    /** The longest chain of dependent ops of those predictions (predict-latency.ts criticalPathMs): what threads cannot shorten. */
    criticalPathSeconds: number;
    criticalPathSecondsWan: number;
  };
}

/** Relinearizations whose result is read only by refreshes, directly or through rescales read only by refreshes. */
export function relinearizationsOnlyRefreshed(program: FheProgram): { total: number; onlyRefreshed: number } {
  const readers = new Map<string, string[]>();
  const kind = new Map<string, string>();
  for (const op of program.ops) {
    if (op.result) kind.set(op.result.name, op.kind);
    for (const a of op.args) {
      if (!readers.has(a.name)) readers.set(a.name, []);
      if (op.result) readers.get(a.name)!.push(op.result.name);
      else readers.get(a.name)!.push(`<${op.kind}>`);
    }
  }
  const onlyRefreshed = (v: string): boolean => {
    const r = readers.get(v) ?? [];
    return r.length > 0 && r.every((u) => kind.get(u) === 'refresh' || (kind.get(u) === 'rescale' && onlyRefreshed(u)));
  };
  let total = 0;
  let only = 0;
  for (const op of program.ops) {
    if (op.kind !== 'relinearize') continue;
    total++;
    if (onlyRefreshed(op.result!.name)) only++;
  }
  return { total, onlyRefreshed: only };
}

export function runPlanBench(options: { maxContext?: number; maxWindows?: number } = {}): PlanBench {
  const C = options.maxContext ?? 128;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-plan-bench-'));
  const out = path.join(dir, 'gen.json');
  const t0 = performance.now();
  const c = compileGenerationPlan(MODEL, out, { calibration: CALIBRATION, maxContext: C, ...(options.maxWindows ? { maxWindows: options.maxWindows } : {}) });
  const compileSeconds = (performance.now() - t0) / 1000;
  const stepsDir = path.join(dir, c.manifest.steps);
  const stepPlans = fs.readdirSync(stepsDir).filter((f) => /^(prefill-\d+|decode-\d+(-\d+)?)\.json$/.test(f)).length;
  const step = c.searchStep!;
  const p = c.manifest.params;
  const params = makeParameters({ ringDegree: p.ringDegree, bitSizes: p.bitSizes, scale: p.scale });
  const { rotationKeySteps } = programKeys(step.managed, params);
  const local = predictLatency(step.managed, defaultCostTable(), { rotationKeySteps });
  const wan = predictLatency(step.managed, withLink(defaultCostTable(), parseLink(WAN)), { rotationKeySteps });
  const relin = relinearizationsOnlyRefreshed(step.managed);
  fs.rmSync(dir, { recursive: true, force: true });
  return {
    maxContext: C,
    ...(options.maxWindows ? { maxWindows: options.maxWindows } : {}),
    compileSeconds,
    stepPlans,
    decodePlans: c.decodePlans.map((d) => ({ from: d.from, to: d.to, seconds: d.ms / 1000, refreshes: d.refreshes, rounds: d.rounds, ...(d.predictedMs !== undefined ? { predictedSeconds: d.predictedMs / 1000 } : {}) })),
    ringDegree: p.ringDegree,
    bitSizes: p.bitSizes,
    decode: {
      past: step.past,
      refreshes: step.refreshes,
      rounds: refreshRounds(step.managed).count + 1,
      relinearizations: relin.total,
      relinearizationsOnlyRefreshed: relin.onlyRefreshed,
      refreshMiB: local.refreshBytes / 2 ** 20,
      predictedSeconds: local.totalMs / 1000,
      predictedSecondsWan: wan.totalMs / 1000,
      criticalPathSeconds: local.criticalPathMs / 1000,
      criticalPathSecondsWan: wan.criticalPathMs / 1000,
    },
  };
}

export function printPlanBench(r: PlanBench): void {
  console.log(`\n## generation plan for model A, --max-context ${r.maxContext}${r.maxWindows ? ` --max-windows ${r.maxWindows}` : ''}`);
  console.log(`| compile (s) | step plans held | of them decode plans (by buckets of past length) | N | chain |`);
  console.log(`|---:|---:|---:|---:|---|`);
  console.log(`| ${r.compileSeconds.toFixed(1)} | ${r.stepPlans} | ${r.decodePlans.length} | ${r.ringDegree} | [${r.bitSizes.join(', ')}] |`);
  console.log(`\n| decode plan for pasts | compile (s) | refreshes | rounds (carry included) | predicted s per token |`);
  console.log(`|---|---:|---:|---:|---:|`);
  for (const d of r.decodePlans) console.log(`| ${d.from}..${d.to} | ${d.seconds.toFixed(1)} | ${d.refreshes} | ${d.rounds} | ${d.predictedSeconds?.toFixed(2) ?? '-'} |`);
  const d = r.decode;
  console.log(`\nper decode token (decode plan at past ${d.past}, predicted with the shipped cost table):`);
  console.log(`| refreshes | rounds (carry included) | relinearizations | of them only refreshed | refresh MiB | predicted s in-process | predicted s, ${WAN} |`);
  console.log(`|---:|---:|---:|---:|---:|---:|---:|`);
  console.log(`| ${d.refreshes} | ${d.rounds} | ${d.relinearizations} | ${d.relinearizationsOnlyRefreshed} | ${d.refreshMiB.toFixed(1)} | ${d.predictedSeconds.toFixed(2)} | ${d.predictedSecondsWan.toFixed(2)} |`);
  console.log(
    `critical path of that step (its longest chain of dependent ops, each priced as above): ${d.criticalPathSeconds.toFixed(2)} s in-process, ` +
      `${d.criticalPathSecondsWan.toFixed(2)} s with ${WAN}: evaluation threads can make the step at most ${(d.predictedSeconds / d.criticalPathSeconds).toFixed(2)}x and ` +
      `${(d.predictedSecondsWan / d.criticalPathSecondsWan).toFixed(2)}x as fast`,
  );
}

export function planBenchOptions(argv: string[]): { maxContext?: number; maxWindows?: number } {
  const get = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? Number(argv[i + 1]) : undefined;
  };
  const maxContext = get('--max-context');
  const maxWindows = get('--max-windows');
  return { ...(maxContext ? { maxContext } : {}), ...(maxWindows ? { maxWindows } : {}) };
}
