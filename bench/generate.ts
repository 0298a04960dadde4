// End-to-end generation benchmark: per-token latency of encrypted greedy generation on the real SEAL
// backend (a prefill of the whole prompt, then decode steps with the encrypted KV cache), and, in the
// same run on the same model and tokens, the plaintext latency of onnxruntime fp32 (CPU, with its own
// KV cache) and of fhec's float64 reference interpreter, so the FHE slowdown is measured side by side.
// Step plans are all compiled before anything is timed (their compile time is reported apart).
// Call runGenerateBench() (bench/index.ts does, `node dist/bench/index.js generate`); writes
// bench/out/generate.json. Options: --decode-steps N / FHEC_BENCH_DECODE_STEPS, --prompt TEXT /
// FHEC_BENCH_PROMPT, --ort-reps N, --ref-reps N.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { compileGenerationPlan, GenerationPlanStore } from '../compiler/generation-plan.js';
import { importOnnx } from '../compiler/onnx/import.js';
import { describeParameters, topLevel, type CkksParameters } from '../ir/ckks/params.js';
import { timeMedian } from '../runtime/ckks/measure-costs.js';
import type { Graph } from '../ir/graph/types.js';
import { Tensor } from '../ir/tensor.js';
import { argmax } from '../runtime/generate/client.js';
import { loadClientModel } from '../runtime/generate/manifest.js';
import { generationSteps, shapeName, type StepShape } from '../runtime/generate/plan-source.js';
import { generateInProcess } from '../runtime/generate/session.js';
import { runGraph } from '../runtime/reference/interpreter.js';
import { sealBackend } from '../runtime/seal/backend.js';
import { TraceRecorder } from '../runtime/trace/run-trace.js';
import { decodeStepsSplit, formatStageSplit, type StageSplit } from '../runtime/trace/stage-split.js';

// The project root: the nearest folder above this file with a package.json (this file runs compiled from
// dist/bench/ and, for `npm run figures`, as source from bench/).
const ROOT = ((): string => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
})();
const MODEL = path.join(ROOT, 'models/llama-byte-a/model.onnx');
const CALIBRATION = path.join(ROOT, 'models/llama-byte-a/calibration.txt');

export interface GenerateBenchOptions {
  /** Prompt (UTF-8 bytes = tokens); the whole prompt is the prefill. Default "The cat sat on a" (16 tokens). */
  prompt?: string;
  /** Decode steps after the prefill (each feeds back one generated token). Default 3. */
  decodeSteps?: number;
  /** Timed repetitions of each plaintext step (median taken). */
  ortReps?: number;
  refReps?: number;
  machine?: string;
  /** Worker counts of the SEAL runs (one generation each, same plans and prompt). Default 1 and 2. */
  workers?: number[];
  /**
   * One worker with the refresh-mask thread (`fhec generate --mask-thread`), without, or both
   * (default: both, with first; the other worker counts run without).
   */
  maskThread?: 'on' | 'off' | 'both';
  /**
   * The key holder returns the plan's rotations of refresh results (`fhec generate --key-holder-rotations`),
   * not (the default), or both: the one-worker run with the mask thread once more with them (default both).
   */
  keyHolderRotations?: 'on' | 'off' | 'both';
}

/** Options from argv (`--decode-steps N`, `--prompt TEXT`, `--ort-reps N`, `--ref-reps N`) and env. */
export function generateBenchOptions(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): GenerateBenchOptions {
  const flag = (name: string): string | undefined => {
    for (let i = 0; i < argv.length; i++) {
      if (argv[i] === `--${name}`) return argv[i + 1];
      if (argv[i]!.startsWith(`--${name}=`)) return argv[i]!.slice(name.length + 3);
    }
    return undefined;
  };
  const int = (v: string | undefined, what: string): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${what} must be a non-negative integer, got ${v}`);
    return n;
  };
  return {
    prompt: flag('prompt') ?? env['FHEC_BENCH_PROMPT'],
    decodeSteps: int(flag('decode-steps') ?? env['FHEC_BENCH_DECODE_STEPS'], '--decode-steps'),
    ortReps: int(flag('ort-reps'), '--ort-reps'),
    refReps: int(flag('ref-reps'), '--ref-reps'),
    ...(flag('workers') ? { workers: flag('workers')!.split(',').map((w) => int(w, '--workers')!) } : {}),
    ...(flag('mask-thread') ? { maskThread: onOffBoth('--mask-thread', flag('mask-thread')!) } : {}),
    ...(flag('key-holder-rotations') ? { keyHolderRotations: onOffBoth('--key-holder-rotations', flag('key-holder-rotations')!) } : {}),
  };
}

function onOffBoth(name: string, v: string): 'on' | 'off' | 'both' {
  if (v !== 'on' && v !== 'off' && v !== 'both') throw new Error(`${name} is on, off or both, got ${v}`);
  return v;
}

export interface StepBench {
  step: string;
  /** Tokens fed in by this step. */
  tokens: number;
  seal: {
    /** Client wall time of the step: embed, encrypt, evaluator (incl. key-holder round trips), decrypt, argmax. */
    ms: number;
    evaluatorMs: number;
    clientMs: number;
    ops: number;
    rotations: number;
    refreshes: number;
    cacheRefreshes: number;
  };
  /** Median ms over the repetitions. */
  ortMs: number;
  referenceMs: number;
  slowdownVsOrt: number;
  slowdownVsReference: number;
}

export interface GenerateBench {
  date: string;
  machine?: string;
  model: string;
  backend: string;
  parameters: string;
  prompt: string;
  promptTokens: number;
  decodeSteps: number;
  ort: { version: string; threads: number; reps: number };
  referenceReps: number;
  compile: {
    /** `compileGenerationPlan` (manifest, embedding table, the prefill plan). */
    generationPlanMs: number;
    /** Decode plans, compiled before the timed run. */
    decodePlans: { step: string; ms: number }[];
    /**
     * The generation plan's decode buckets as compiled, with the latency the shipped cost table predicts
     * per token and its critical path (the longest chain of dependent ops: what threads cannot shorten).
     */
    buckets: { from: number; to: number; predictedMs?: number; criticalPathMs?: number }[];
  };
  /** Key generation and key transfer (once per generation, not part of any token). */
  setupMs: number;
  /**
   * Contention during the SEAL run: the 1-minute load average when it started, and the process's CPU
   * time per wall second over it (about 1 when SEAL, single-threaded, had a core to itself).
   */
  contention: { loadAverage: number; cores: number; cpuPerWallSecond: number };
  steps: StepBench[];
  prefill: { sealMs: number; ortMs: number; referenceMs: number; slowdownVsOrt: number; slowdownVsReference: number };
  /** Means over the decode steps. */
  decode?: { sealMs: number; ortMs: number; referenceMs: number; slowdownVsOrt: number; slowdownVsReference: number };
  totals: {
    ops: number;
    rotations: number;
    refreshes: number;
    cacheRefreshes: number;
    keyHolder: { roundTrips: number; bytesSent: number; bytesReceived: number; ms: number };
    evaluatorChannel: { roundTrips: number; bytesSent: number; bytesReceived: number };
    peakRssBytes: number;
  };
  generated: { seal: number[]; ort: number[]; reference: number[]; text: string; sealEqualsOrt: boolean; referenceEqualsOrt: boolean };
  /** Median wall time of one rotation at the plan's N and top level, measured in this run. */
  rotationMs: number;
  /** One SEAL generation per worker count (the first is the one the steps above describe). */
  byWorkers: WorkersRun[];
}

export interface WorkersRun {
  workers: number;
  /** Refresh masks made ahead on a helper thread (runtime/seal/mask-supply.ts). */
  maskThread: boolean;
  /** The key holder returned the plan's rotations of refresh results (one evaluator thread only). */
  keyHolderRotations: boolean;
  prefillMs: number;
  /** Mean decode seconds per token, and in rotations of rotationMs. */
  decodeMs?: number;
  rotationEquivalentsPerToken?: number;
  /** Per decode token: messages to the key holder (refresh rounds + the cache carry), ciphertexts they carried, bytes each way. */
  keyHolderPerToken?: { rounds: number; ciphertexts: number; bytesToKeyHolder: number; bytesToEvaluator: number };
  /** Per decode token: ciphertexts moved between workers and their bytes. */
  movedPerToken?: { count: number; bytes: number };
  /** Per decode token, from a trace of this run (one evaluator thread): ops a round waits on, other ops, the rounds (runtime/trace/stage-split.ts). */
  byStage?: StageSplit;
  loadAverage: number;
  generated: number[];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Model inputs of one step (prefill from position 0, or one token after `past` cached ones), as plain arrays. */
interface StepFeed {
  ids: number[];
  past: number;
}

/** Greedy generation of one plaintext engine with its KV cache; each step timed `reps` times on the same inputs. */
interface PlainEngine<Cache> {
  run(feed: StepFeed, cache: Cache | undefined): Promise<{ logits: ArrayLike<number>; cache: Cache }>;
}

async function timeGreedy<Cache>(engine: PlainEngine<Cache>, prompt: number[], decodeSteps: number, reps: number): Promise<{ tokens: number[]; ms: number[] }> {
  const tokens: number[] = [];
  const ms: number[] = [];
  let cache: Cache | undefined;
  const V = 256;
  for (let s = 0; s <= decodeSteps; s++) {
    const feed: StepFeed = s === 0 ? { ids: prompt, past: 0 } : { ids: [tokens[s - 1]!], past: prompt.length + s - 1 };
    const out = await engine.run(feed, cache); // also the warm-up of this shape
    const times: number[] = [];
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      await engine.run(feed, cache);
      times.push(performance.now() - t0);
    }
    ms.push(median(times));
    const n = feed.ids.length;
    tokens.push(argmax(Array.prototype.slice.call(out.logits, (n - 1) * V, n * V) as number[]));
    cache = out.cache;
  }
  return { tokens, ms };
}

const LAYERS = ['0', '1'];
const PAST_NAMES = LAYERS.flatMap((l) => [`past_key_values.${l}.key`, `past_key_values.${l}.value`]);
const present = (past: string): string => past.replace('past_key_values', 'present');

function ortEngine(session: ort.InferenceSession): PlainEngine<Record<string, ort.Tensor>> {
  const int64 = (xs: number[]) => new ort.Tensor('int64', BigInt64Array.from(xs.map(BigInt)), [1, xs.length]);
  return {
    async run(feed, cache) {
      const n = feed.ids.length;
      const feeds: Record<string, ort.Tensor> = {
        input_ids: int64(feed.ids),
        attention_mask: int64(new Array<number>(feed.past + n).fill(1)),
        position_ids: int64(feed.ids.map((_, i) => feed.past + i)),
      };
      for (const p of PAST_NAMES) feeds[p] = cache ? cache[present(p)]! : new ort.Tensor('float32', new Float32Array(0), [1, 2, 0, 16]);
      const out = await session.run(feeds);
      return { logits: out['logits']!.data as Float32Array, cache: out };
    },
  };
}

function referenceEngine(graph: Graph): PlainEngine<Record<string, Tensor>> {
  return {
    async run(feed, cache) {
      const n = feed.ids.length;
      const inputs: Record<string, Tensor> = {
        input_ids: Tensor.from('int64', [1, n], feed.ids),
        attention_mask: Tensor.from('int64', [1, feed.past + n], new Array<number>(feed.past + n).fill(1)),
        position_ids: Tensor.from('int64', [1, n], feed.ids.map((_, i) => feed.past + i)),
      };
      for (const p of PAST_NAMES) inputs[p] = cache ? cache[present(p)]! : Tensor.zeros('float32', [1, 2, 0, 16]);
      const out = runGraph(graph, inputs);
      return { logits: out['logits']!.data, cache: out };
    },
  };
}

export async function runGenerateBench(opts: GenerateBenchOptions = {}): Promise<GenerateBench> {
  const prompt = opts.prompt ?? 'The cat sat on a';
  const D = opts.decodeSteps ?? 3;
  const ortReps = opts.ortReps ?? 50;
  const refReps = opts.refReps ?? 10;
  const promptIds = Array.from(Buffer.from(prompt, 'utf8'));
  if (promptIds.length === 0) throw new Error('the bench prompt is empty');
  const newTokens = D + 1; // the last generated token is never fed back
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-bench-generate-'));
  try {
    // Compile: the generation plan with a prefill of the whole prompt, then every decode plan the run needs.
    const planFile = path.join(dir, 'plan.json');
    process.stderr.write(`generate bench: compiling the generation plan (prefill ${promptIds.length}, ${D} decode plans)...\n`);
    const t0 = performance.now();
    const compiled = compileGenerationPlan(MODEL, planFile, { calibration: CALIBRATION, maxContext: promptIds.length + D, prefill: [promptIds.length] });
    const buckets = compiled.decodePlans.map((d) => ({ from: d.from, to: d.to, ...(d.predictedMs !== undefined ? { predictedMs: d.predictedMs } : {}), ...(d.criticalPathMs !== undefined ? { criticalPathMs: d.criticalPathMs } : {}) }));
    const generationPlanMs = performance.now() - t0;
    const warm = new GenerationPlanStore(planFile);
    const shapes: StepShape[] = generationSteps(warm, promptIds.length, newTokens);
    for (const s of shapes) warm.describe(s); // compiles the missing decode plans and writes their interfaces
    const decodePlans = warm.compiled.map((c) => ({ step: shapeName(c.shape), ms: c.ms }));

    // Plaintext baselines on the same model, same step shapes.
    process.stderr.write(`generate bench: onnxruntime fp32 (${ortReps} reps per step) and the reference interpreter (${refReps} reps)...\n`);
    const session = await ort.InferenceSession.create(MODEL, { executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1 });
    const ortEng = ortEngine(session);
    await timeGreedy(ortEng, promptIds, D, 3); // warm-up of the whole sequence
    const ortRun = await timeGreedy(ortEng, promptIds, D, ortReps);
    await session.release();
    const refRun = await timeGreedy(referenceEngine(importOnnx(MODEL).graph), promptIds, D, refReps);

    // Encrypted generation on SEAL (a fresh store: every step plan is on disk, so nothing compiles).
    process.stderr.write(`generate bench: SEAL generation, prefill ${promptIds.length} + ${D} decode steps (about ${Math.round(50 + 43 * D)} s on 2 cores)...\n`);
    const store = new GenerationPlanStore(planFile);
    const workerCounts = opts.workers ?? [1, 2];
    const zs = opts.maskThread ?? 'both';
    const kr = opts.keyHolderRotations ?? 'both';
    // One worker: with the mask thread first, then without; more workers: without. Key-holder rotations
    // as fhec generate has them by default (off), and with 'both' the first run once more with them.
    const configs = workerCounts.flatMap((workers) =>
      (workers === 1 ? (zs === 'both' ? [true, false] : [zs === 'on']) : [false]).flatMap((maskThread, k) =>
        (workers === 1 && k === 0 && kr === 'both' ? [false, true] : [kr === 'on']).map((keyHolderRotations) => ({ workers, maskThread, keyHolderRotations: workers === 1 && keyHolderRotations })),
      ),
    );
    const byWorkers: WorkersRun[] = [];
    let first: { run: Awaited<ReturnType<typeof generateInProcess>>; loadAverage: number; cpuPerWallSecond: number } | undefined;
    for (const { workers, maskThread, keyHolderRotations } of configs) {
      process.stderr.write(
        `generate bench: SEAL generation with ${workers} worker${workers > 1 ? 's' : ''}${maskThread ? ' and the mask thread' : ''}${workers === 1 ? `, key-holder rotations ${keyHolderRotations ? 'on' : 'off'}` : ''} (load average ${os.loadavg()[0]!.toFixed(1)})\n`,
      );
      const loadAverage = os.loadavg()[0]!;
      const cpu0 = process.cpuUsage();
      const wall0 = performance.now();
      const recorder = new TraceRecorder();
      const run = await generateInProcess(store, sealBackend, loadClientModel(planFile), prompt, newTokens, {
        workers,
        maskSupply: maskThread,
        trace: recorder,
        keyHolderThread: true, // as fhec generate runs
        keyHolderRotations,
        onStep: (done, total, rec) => process.stderr.write(`  ${shapeName(rec.shape)}: ${(rec.ms / 1000).toFixed(2)} s (${done}/${total})\n`),
      });
      const cpu = process.cpuUsage(cpu0);
      if (store.compiled.length > 0) throw new Error(`internal: ${store.compiled.length} step plans compiled during the timed run`);
      first ??= { run, loadAverage, cpuPerWallSecond: (cpu.user + cpu.system) / 1000 / (performance.now() - wall0) };
      const traced = workersRun(workers, maskThread, keyHolderRotations, run, loadAverage);
      // Where the decode steps' time went between refresh rounds, from this run's trace.
      // (One evaluator thread only: with workers the ops' times overlap, so their sums say nothing of the chain.)
      const steps = run.result.steps;
      const split = workers > 1 ? undefined : decodeStepsSplit(steps, recorder.steps, (i) => store.load(steps[i]!.shape).plan.plan.program);
      if (split) traced.byStage = split;
      byWorkers.push(traced);
    }
    const { run, loadAverage, cpuPerWallSecond } = first!;
    const rotationMs = await timeRotation(store.params);
    for (const w of byWorkers) if (w.decodeMs !== undefined) w.rotationEquivalentsPerToken = w.decodeMs / rotationMs;

    const r = run.result;
    const steps: StepBench[] = r.steps.map((s, i) => {
      const ops = Object.values(s.evaluator.ops).reduce((a, o) => a + o.count, 0);
      const ortMs = ortRun.ms[i]!;
      const referenceMs = refRun.ms[i]!;
      return {
        step: shapeName(s.shape),
        tokens: s.tokens.length,
        seal: {
          ms: s.ms,
          evaluatorMs: s.evaluator.ms,
          clientMs: s.clientMs,
          ops,
          rotations: s.evaluator.ops['rotate']?.count ?? 0,
          refreshes: s.evaluator.refreshes,
          cacheRefreshes: s.evaluator.cacheRefreshes,
        },
        ortMs,
        referenceMs,
        slowdownVsOrt: s.ms / ortMs,
        slowdownVsReference: s.ms / referenceMs,
      };
    });
    const summary = (xs: StepBench[]) => {
      const mean = (f: (x: StepBench) => number) => xs.reduce((a, x) => a + f(x), 0) / xs.length;
      const sealMs = mean((x) => x.seal.ms);
      const ortMs = mean((x) => x.ortMs);
      const referenceMs = mean((x) => x.referenceMs);
      return { sealMs, ortMs, referenceMs, slowdownVsOrt: sealMs / ortMs, slowdownVsReference: sealMs / referenceMs };
    };
    const same = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => x === b[i]);
    const result: GenerateBench = {
      date: new Date().toISOString(),
      machine: opts.machine,
      model: path.relative(ROOT, MODEL),
      backend: run.label,
      parameters: describeParameters(store.params),
      prompt,
      promptTokens: promptIds.length,
      decodeSteps: D,
      ort: { version: ort.env.versions.common, threads: 1, reps: ortReps },
      referenceReps: refReps,
      compile: { generationPlanMs, decodePlans, buckets },
      setupMs: r.setupMs,
      contention: { loadAverage, cores: os.cpus().length, cpuPerWallSecond },
      steps,
      prefill: summary(steps.slice(0, 1)),
      ...(D > 0 ? { decode: summary(steps.slice(1)) } : {}),
      totals: {
        ops: steps.reduce((a, s) => a + s.seal.ops, 0),
        rotations: steps.reduce((a, s) => a + s.seal.rotations, 0),
        refreshes: run.refreshes,
        cacheRefreshes: run.cacheRefreshes,
        keyHolder: { ...run.keyHolderChannel, ms: r.keyHolder.ms },
        evaluatorChannel: { ...run.evaluatorChannel },
        peakRssBytes: run.peakRss,
      },
      generated: {
        seal: r.generated,
        ort: ortRun.tokens,
        reference: refRun.tokens,
        text: r.text,
        sealEqualsOrt: same(r.generated, ortRun.tokens),
        referenceEqualsOrt: same(refRun.tokens, ortRun.tokens),
      },
      rotationMs,
      byWorkers,
    };
    fs.mkdirSync('bench/out', { recursive: true });
    fs.writeFileSync('bench/out/generate.json', JSON.stringify(result, null, 1));
    return result;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** What one SEAL generation shows per decode token. */
function workersRun(workers: number, maskThread: boolean, keyHolderRotations: boolean, run: Awaited<ReturnType<typeof generateInProcess>>, loadAverage: number): WorkersRun {
  const steps = run.result.steps;
  const dec = steps.slice(1);
  const out: WorkersRun = { workers, maskThread, keyHolderRotations, prefillMs: steps[0]!.ms, loadAverage, generated: run.result.generated };
  if (dec.length === 0) return out;
  const mean = (f: (e: (typeof dec)[number]['evaluator']) => number) => dec.reduce((a, d) => a + f(d.evaluator), 0) / dec.length;
  out.decodeMs = dec.reduce((a, d) => a + d.ms, 0) / dec.length;
  out.keyHolderPerToken = {
    rounds: mean((e) => e.keyHolder.rounds),
    ciphertexts: mean((e) => e.refreshes + e.cacheRefreshes),
    bytesToKeyHolder: mean((e) => e.keyHolder.bytesToKeyHolder),
    bytesToEvaluator: mean((e) => e.keyHolder.bytesToEvaluator),
  };
  if (dec.every((d) => d.evaluator.parallel)) out.movedPerToken = { count: mean((e) => e.parallel!.moved.count), bytes: mean((e) => e.parallel!.moved.bytes) };
  return out;
}

/** Median wall time of one rotation (by 1, its own key) of a top-level ciphertext on these parameters. */
async function timeRotation(params: CkksParameters): Promise<number> {
  const client = await sealBackend.createClient(params, { galoisSteps: [1], relin: false });
  const ev = await sealBackend.createEvaluator(params, client.evaluationKeys());
  try {
    const ct = ev.loadCiphertext(client.encrypt([1, 2, 3], topLevel(params), params.scale));
    const ms = timeMedian(() => ev.free(ev.rotate(ct, 1)), 9, 'wall');
    ev.free(ct);
    return ms;
  } finally {
    ev.dispose();
    client.dispose();
  }
}

const sec = (ms: number) => (ms / 1000).toFixed(2);
const msf = (ms: number) => (ms < 1 ? ms.toFixed(3) : ms < 100 ? ms.toFixed(2) : ms.toFixed(0));
const times = (x: number) => Math.round(x).toLocaleString('en-US');
const mib = (b: number) => `${(b / 1048576).toFixed(0)} MiB`;
const quoted = (ids: number[]) => JSON.stringify(Buffer.from(ids).toString('latin1'));

export function printGenerateBench(r: GenerateBench): void {
  console.log(`\n## Encrypted generation on SEAL vs plaintext: ${r.model}${r.machine ? ` (${r.machine})` : ''}`);
  console.log(`${r.backend}; ${r.parameters}`);
  console.log(
    `prompt ${JSON.stringify(r.prompt)} (${r.promptTokens} tokens, one prefill), ${r.decodeSteps} decode steps with the encrypted KV cache; ` +
      `plaintext: onnxruntime ${r.ort.version} fp32 CPU (${r.ort.threads} thread, median of ${r.ort.reps}), fhec reference interpreter float64 (median of ${r.referenceReps})`,
  );
  console.log(`| step | tokens in | SEAL (s) | ops | rotations | ORT fp32 (ms) | reference f64 (ms) | SEAL / ORT | SEAL / reference |`);
  console.log(`|---|---:|---:|---:|---:|---:|---:|---:|---:|`);
  for (const s of r.steps) {
    console.log(
      `| ${s.step} | ${s.tokens} | ${sec(s.seal.ms)} | ${s.seal.ops.toLocaleString('en-US')} | ${s.seal.rotations.toLocaleString('en-US')} | ${msf(s.ortMs)} | ${msf(s.referenceMs)} | ${times(s.slowdownVsOrt)}x | ${times(s.slowdownVsReference)}x |`,
    );
  }
  const row = (name: string, x: NonNullable<GenerateBench['decode']>) =>
    console.log(`| **${name}** | | **${sec(x.sealMs)}** | | | **${msf(x.ortMs)}** | **${msf(x.referenceMs)}** | **${times(x.slowdownVsOrt)}x** | **${times(x.slowdownVsReference)}x** |`);
  if (r.decode) row('decode mean', r.decode);
  const g = r.generated;
  console.log(
    `\ngenerated bytes: SEAL ${quoted(g.seal)}, onnxruntime greedy ${quoted(g.ort)}: ${g.sealEqualsOrt ? 'EQUAL' : 'DIFFERENT'}` +
      ` (reference interpreter ${g.referenceEqualsOrt ? 'equal' : 'different'})`,
  );
  const t = r.totals;
  console.log(
    `not in the latencies: key setup ${sec(r.setupMs)} s; compile: generation plan ${sec(r.compile.generationPlanMs)} s, ` +
      `${r.compile.decodePlans.length} decode plans ${sec(r.compile.decodePlans.reduce((a, c) => a + c.ms, 0))} s`,
  );
  console.log(
    `SEAL run: ${t.ops.toLocaleString('en-US')} ops, ${t.rotations.toLocaleString('en-US')} rotations, ${t.refreshes} refreshed + ${t.cacheRefreshes} KV-cache ciphertexts; ` +
      `key holder ${t.keyHolder.roundTrips} round trips (${mib(t.keyHolder.bytesSent)} to it, ${mib(t.keyHolder.bytesReceived)} back, its work ${sec(t.keyHolder.ms)} s, inside the step times); ` +
      `client -> evaluator ${mib(t.evaluatorChannel.bytesSent)}; peak RSS ${mib(t.peakRssBytes)}`,
  );
  console.log(`\none rotation at N=${r.parameters.match(/N\s*=\s*(\d+)/)?.[1] ?? '?'}, top level: ${msf(r.rotationMs)} ms (median, this run)`);
  console.log(`| workers | mask thread | key-holder rotations | prefill of ${r.promptTokens} (s) | decode (s/token) | rotation-equivalents per token | key holder round trips per token | ciphertexts per token | to key holder per token | back per token | moved between workers per token | load average | bytes equal ORT |`);
  console.log(`|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|`);
  for (const w of r.byWorkers) {
    const k = w.keyHolderPerToken;
    console.log(
      `| ${w.workers} | ${w.maskThread ? 'yes' : 'no'} | ${w.keyHolderRotations ? 'yes' : 'no'} | ${sec(w.prefillMs)} | ${w.decodeMs !== undefined ? sec(w.decodeMs) : '-'} | ${w.rotationEquivalentsPerToken !== undefined ? times(w.rotationEquivalentsPerToken) : '-'} | ` +
        `${k ? k.rounds.toFixed(1) : '-'} | ${k ? k.ciphertexts.toFixed(1) : '-'} | ${k ? mib(k.bytesToKeyHolder) : '-'} | ${k ? mib(k.bytesToEvaluator) : '-'} | ` +
        `${w.movedPerToken ? `${w.movedPerToken.count.toFixed(0)} (${mib(w.movedPerToken.bytes)})` : '-'} | ${w.loadAverage.toFixed(1)} | ${w.generated.join(',') === r.generated.ort.join(',') ? 'yes' : 'NO'} |`,
    );
  }
  for (const b of r.compile.buckets ?? []) {
    if (b.predictedMs === undefined || b.criticalPathMs === undefined) continue;
    console.log(
      `decode plan for pasts ${b.from}..${b.to}, shipped cost table: predicted ${sec(b.predictedMs)} s per token, critical path ${sec(b.criticalPathMs)} s ` +
        `(its longest chain of dependent ops: any number of evaluation threads makes it at most ${(b.predictedMs / b.criticalPathMs).toFixed(2)}x as fast)`,
    );
  }
  for (const w of r.byWorkers) {
    if (w.byStage) console.log(`${w.workers} worker${w.workers > 1 ? 's' : ''}${w.maskThread ? ' with the mask thread' : ''}${w.keyHolderRotations ? ' and key-holder rotations' : ''}, decode steps by refresh stage, mean per token: ${formatStageSplit(w.byStage)}`);
  }
  const one = r.byWorkers.find((w) => w.workers === 1 && !w.maskThread);
  const withKr = r.byWorkers.find((w) => w.workers === 1 && w.maskThread && w.keyHolderRotations);
  const withoutKr = r.byWorkers.find((w) => w.workers === 1 && w.maskThread && !w.keyHolderRotations);
  if (withKr?.decodeMs && withoutKr?.decodeMs) {
    console.log(
      `key-holder rotations (1 worker, mask thread): decode ${(withoutKr.decodeMs / withKr.decodeMs).toFixed(2)}x as fast (${sec(withoutKr.decodeMs)} s without, ${sec(withKr.decodeMs)} s with, per token), ` +
        `prefill ${(withoutKr.prefillMs / withKr.prefillMs).toFixed(2)}x; back from the key holder per token ${withKr.keyHolderPerToken ? mib(withKr.keyHolderPerToken.bytesToEvaluator) : '-'} with, ${withoutKr.keyHolderPerToken ? mib(withoutKr.keyHolderPerToken.bytesToEvaluator) : '-'} without`,
    );
  }
  for (const w of r.byWorkers) {
    // The mask thread's line compares like with like: without key-holder rotations when both ran.
    if (w === one || (w === withKr && withoutKr) || !one?.decodeMs || !w.decodeMs) continue;
    if (w.workers === 1) {
      console.log(`mask thread (1 worker): decode ${(one.decodeMs / w.decodeMs).toFixed(2)}x as fast (${sec(one.decodeMs)} s without, ${sec(w.decodeMs)} s with, per token), prefill ${(one.prefillMs / w.prefillMs).toFixed(2)}x`);
      continue;
    }
    console.log(`decode speed-up with ${w.workers} workers: ${(one.decodeMs / w.decodeMs).toFixed(2)}x (1 worker ${sec(one.decodeMs)} s, ${w.workers} workers ${sec(w.decodeMs)} s per token)`);
  }
  const c = r.contention;
  console.log(
    `contention: load average ${c.loadAverage.toFixed(1)} on ${c.cores} cores when the SEAL run started; it got ${c.cpuPerWallSecond.toFixed(2)} s of CPU per wall second` +
      `${c.cpuPerWallSecond < 0.85 ? ' (the machine was shared: SEAL latencies are inflated, indicative only)' : ''}`,
  );
}
