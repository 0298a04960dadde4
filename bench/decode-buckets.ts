// `node dist/bench/index.js buckets --plan GEN.json --past P [--backend sim|seal] [--windows N]`: what
// serving past P from its bucket's decode plan (compiled for the bucket's longest past, blocks past P
// masked) costs against a decode plan compiled for P alone, in the same run. The exact plan is compiled
// here with the generation plan's parameters; both run teacher-forced on the same held-out windows
// (eval-dev.txt), alternating window by window, and the table gives each plan's ops, refreshes,
// agreement with the plaintext model, logit error and decode seconds per token (the plan's run alone).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { measureDecodeAccuracy } from '../compiler/accuracy.js';
import { GenerationPlanStore } from '../compiler/generation-plan.js';
import { compileModel, writeModelPlan } from '../compiler/model-plan.js';
import { loadModelPlan, type ModelPlan } from '../runtime/model-session.js';
import { sealBackend } from '../runtime/seal/backend.js';
import { simBackend } from '../runtime/sim/backend.js';

const DEV = path.join('..', 'shared', 'models', 'eval-dev.txt');

export interface BucketBenchOptions {
  plan: string;
  past: number;
  backend: 'sim' | 'seal';
  windows: number;
}

export interface BucketBenchRow {
  plan: string;
  ops: number;
  refreshes: number;
  agreement: number;
  maxAbsError: number;
  secondsPerToken: number;
}

export function bucketBenchOptions(argv: string[]): BucketBenchOptions {
  const get = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const plan = get('--plan');
  const past = Number(get('--past'));
  if (!plan || !Number.isInteger(past)) throw new Error('usage: buckets --plan GEN.json --past P [--backend sim|seal] [--windows N]');
  return { plan, past, backend: get('--backend') === 'seal' ? 'seal' : 'sim', windows: Number(get('--windows') ?? 2) };
}

export async function runBucketBench(o: BucketBenchOptions): Promise<{ options: BucketBenchOptions; bucket: string; rows: BucketBenchRow[] }> {
  const store = new GenerationPlanStore(o.plan);
  const m = store.manifest;
  const bucket = m.decodeBuckets?.find((b) => b.from <= o.past && o.past <= b.to);
  if (!bucket) throw new Error(`the plan has no decode bucket for past ${o.past}`);
  const fromBucket = store.load({ kind: 'decode', past: o.past }).plan;
  const model = path.resolve(path.dirname(o.plan), m.model);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-bucket-bench-'));
  const exactFile = path.join(dir, `decode-${o.past}.json`);
  const c = compileModel(model, {
    calibration: path.resolve(path.dirname(o.plan), m.calibration),
    decode: o.past,
    ringDegree: m.compile.ringDegree,
    ...(m.compile.levels !== undefined ? { levels: m.compile.levels } : {}),
    ...(m.compile.maxWindows ? { maxWindows: m.compile.maxWindows } : {}),
  });
  writeModelPlan(exactFile, c);
  const exact = loadModelPlan(exactFile);
  const backend = o.backend === 'seal' ? sealBackend : simBackend;
  const plans: [string, ModelPlan][] = [[`bucket ${bucket.from}..${bucket.to} at past ${o.past}`, fromBucket], [`exact past ${o.past}`, exact]];
  const acc = plans.map(() => ({ agree: 0, positions: 0, maxAbsError: 0, runMs: 0 }));
  // Alternating window by window: both plans see the same machine load.
  for (let w = 0; w < o.windows; w++) {
    for (const [i, [, plan]] of plans.entries()) {
      const f = await measureDecodeAccuracy(model, plan, backend, DEV, { windows: 1, skip: w });
      const a = acc[i]!;
      a.agree += f.agree;
      a.positions += f.positions;
      a.maxAbsError = Math.max(a.maxAbsError, f.maxAbsError);
      a.runMs += f.runMs ?? 0;
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
  const rows = plans.map(([name, plan], i) => {
    const a = acc[i]!;
    return {
      plan: name,
      ops: plan.plan.program.ops.length,
      refreshes: plan.plan.program.ops.filter((op) => op.kind === 'refresh').length,
      agreement: a.positions ? a.agree / a.positions : 0,
      maxAbsError: a.maxAbsError,
      secondsPerToken: a.positions ? a.runMs / a.positions / 1000 : NaN,
    };
  });
  return { options: o, bucket: `${bucket.from}..${bucket.to}`, rows };
}

export function printBucketBench(r: Awaited<ReturnType<typeof runBucketBench>>): void {
  console.log(`\n## decode at past ${r.options.past} from its bucket's plan (${r.bucket}) vs an exact plan, ${r.options.backend}, ${r.options.windows} windows of eval-dev.txt`);
  console.log(`| plan | ops | refreshes | greedy agreement | max logit error | decode s per token |`);
  console.log(`|---|---:|---:|---:|---:|---:|`);
  for (const x of r.rows) console.log(`| ${x.plan} | ${x.ops} | ${x.refreshes} | ${(100 * x.agreement).toFixed(0)}% | ${x.maxAbsError.toFixed(3)} | ${x.secondsPerToken.toFixed(2)} |`);
  const [b, e] = r.rows;
  if (b && e) console.log(`\nbucket / exact decode time: ${(b.secondsPerToken / e.secondsPerToken).toFixed(2)}`);
}
