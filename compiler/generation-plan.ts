// Generation plans: what `fhec compile MODEL -o PLAN --calibration FILE --max-context C` writes and
// `fhec generate PLAN` runs. A decode plan depends on the past length P (RoPE positions, the causal
// mask and the cache layout are compiled in), so one plan cannot serve every step. The generation plan
// is a small manifest (runtime/generate/manifest.ts) plus a directory of step plans, each a canonical
// model plan from compiler/model-plan.ts:
// - prefill plans for the lengths given at compile time (default 8); a longer prompt prefills the
//   longest one that fits and feeds its remaining tokens through decode steps, a shorter one gets a
//   prefill plan of its own length;
// - decode plans by buckets of past length, all compiled here: the pasts from the shortest prefill to
//   C - 1 split into runs whose caches share a layout (attention-decode.ts, decodeBuckets: the block
//   stride halves at each power of two of P + 1, so the buckets double: 8..15, 16..31, 32..63, 64..127).
//   A bucket's plan is compiled for its longest past, calibrated and bounded at its shortest, middle
//   and longest, and serves every past in it with that past's instance (runtime/generate/past-plan.ts:
//   the RoPE tables and cache masks at P; blocks past P masked). Within a bucket the program's ops are
//   the same at every past, so a shorter past pays only its plan's longer softmax row bound. Older
//   plans without buckets compile one decode plan per past on first use.
// The step plans keep their weights (~90 MB each for model A, nearly all the same from one P to the
// next) in one content-addressed store, STEPS/weights/ (runtime/plan/weight-store.ts): a new decode
// plan adds only the chunks no earlier step plan had.
// All step plans share one CKKS parameter set, so one key set serves a whole generation: the
// cost-driven search chooses it once, on the decode plan at the longest past, unless N is given.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FhecError } from '../ir/errors.js';
import { refreshRounds } from '../ir/fhe/refresh-rounds.js';
import type { CostTable } from '../ir/ckks/cost-table.js';
import { makeParameters, parametersId, topLevel, type CkksParameters } from '../ir/ckks/params.js';
import { GENERATION_PLAN_KIND, GENERATION_PLAN_VERSION, readGenerationManifest, type GenerationManifest } from '../runtime/generate/manifest.js';
import { describeStep } from '../runtime/generate/evaluator.js';
import { HfTokenizer } from '../runtime/generate/hf-tokenizer.js';
import { checkStepInterface, readCacheBounds, readStepInterface, shapeName, type GenerationPlanSource, type StepInterface, type StepPlan, type StepShape } from '../runtime/generate/plan-source.js';
import { loadModelPlan } from '../runtime/model-session.js';
import { compileModel, writeModelPlan, type CompiledModel, type ModelPlanOptions } from './model-plan.js';
import { moveWeightsToStore } from '../runtime/plan/weight-store.js';
import { sha256Hex, writeFileAtomic } from '../runtime/plan/files.js';
import { PARAMETER_SEARCH_FILE, type ParameterSearchRecord } from '../runtime/plan/analysis-schema.js';
import { candidateRows } from './report/plan-analysis.js';
import { decodeBuckets } from '../passes/fhe/lower-canonical/attention-decode.js';
import { pastInstance } from '../passes/fhe/lower-canonical/past-constants.js';
import { modelPlanAtPast, readPastInstance, writePastInstance } from '../runtime/generate/past-plan.js';

/** A plan's predicted latency for the compile summary, or why it has none (e.g. the cost table has no timings for its N). */
function predictionText(ms: number | undefined, criticalPathMs: number | undefined, note: string | undefined, per: string): string {
  if (ms === undefined || !Number.isFinite(ms)) return `no latency prediction (${note ?? 'not priced'})`;
  return `predicted ${(ms / 1000).toFixed(1)} s ${per}${criticalPathMs !== undefined ? `, critical path ${(criticalPathMs / 1000).toFixed(1)} s` : ''}`;
}

export interface GenerationPlanOptions {
  calibration: string;
  maxContext: number;
  /** Prefill lengths to compile now (default [8], capped at the context). */
  prefill?: number[];
  /**
   * Ring degree of every step plan, with the longest chain it holds. Default: the cost-driven parameter
   * search picks N and the chain once, on the decode plan at the longest past.
   */
  ringDegree?: number;
  maxWindows?: number;
  placement?: 'optimal' | 'greedy';
  /** Reference linear weights in the ONNX external data instead of storing them (the runtime streams them). */
  streamWeights?: boolean;
  /** Cost table the parameter search prices with (default: the shipped one). */
  costs?: CostTable;
  /** The model's Hugging Face tokenizer folder (default: UTF-8 bytes); recorded in the manifest. */
  tokenizer?: string;
}

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Bounds on |value| of the KV-cache outputs (compiler/model-plan.ts, maskBounds), for the cache carry's mask. */
function cacheBounds(c: CompiledModel): Record<string, number> {
  return Object.fromEntries(Object.entries(c.bounds.cache).map(([name, b]) => [name, b.bound]));
}

interface StepFiles {
  plan: string;
  bounds: string;
  /** The step's keys and input (StepInterface), so a generation can start without loading every plan. */
  iface: string;
}

/** A bucket's decode plan is named by its pasts (decode-FROM-TO); older per-past plans by their past. */
type PlanShape = StepShape | { kind: 'decode'; past: number; from: number };

function planName(shape: PlanShape): string {
  return 'from' in shape ? `decode-${shape.from}-${shape.past}` : shapeName(shape);
}

/** Where a bucket plan's instance for past P lives (runtime/generate/past-plan.ts). */
function instanceFile(plan: string, past: number): string {
  return plan.replace(/\.json$/, `.past-${past}.json.gz`);
}

/** Channels per token of the KV cache as held (GQA-expanded, heads padded): the prefill's present outputs. */
function stepKvWidth(c: CompiledModel): number {
  const kv = c.lowered.outputs.find((o) => o.kv);
  if (!kv) throw new FhecError('the model has no KV-cache outputs (present.*): generation needs a model exported with a KV cache');
  return kv.blocks[0]!.layout.length;
}

function stepFiles(dir: string, shape: PlanShape): StepFiles {
  const name = planName(shape);
  return { plan: path.join(dir, `${name}.json`), bounds: path.join(dir, `${name}.bounds.json`), iface: path.join(dir, `${name}.iface.json`) };
}

/** The step plans' shared weight store, in the steps directory. */
const WEIGHT_STORE = 'weights';

function compileStep(
  modelFile: string,
  m: Pick<GenerationManifest, 'calibration' | 'compile'>,
  calibration: string,
  tokenizer: string | undefined,
  dir: string,
  shape: PlanShape,
  decodeSetsAt?: ModelPlanOptions['decodeSetsAt'],
): { compiled: CompiledModel; files: StepFiles } {
  const compiled = compileModel(modelFile, {
    calibration,
    ...(decodeSetsAt ? { decodeSetsAt } : {}),
    ...(tokenizer !== undefined ? { tokenizer } : {}),
    // A prefill's logits: the last position's only (the next token), whatever the prompt length.
    ...(shape.kind === 'prefill' ? { prefill: shape.tokens, logits: 'last' as const } : { decode: shape.past, ...('from' in shape ? { decodeFrom: shape.from } : {}) }),
    ringDegree: m.compile.ringDegree,
    ...(m.compile.levels !== undefined ? { levels: m.compile.levels } : {}),
    maxWindows: m.compile.maxWindows,
    placement: m.compile.placement,
    ...(m.compile.streamWeights ? { streamWeights: true } : {}),
  });
  if (!compiled.lowered.outputs.some((o) => o.kv)) {
    throw new FhecError('the model has no KV-cache outputs (present.*): generation needs a model exported with a KV cache', { file: modelFile });
  }
  // The generation protocol carries the prompt and each cache in one ciphertext.
  const grouped = compiled.lowered.embedding.groups;
  if (grouped) {
    const e = compiled.lowered.embedding;
    throw new FhecError(
      `generation needs the prompt in one ciphertext: ${shape.kind === 'prefill' ? shape.tokens : 1} token(s) of ${e.layout.length} features take ${grouped.length} ciphertexts of ${e.layout.tokens} tokens (${e.layout.stride} slots each) at N=${compiled.params.ringDegree}; use a shorter --prefill or a larger --ring-degree`,
      { file: modelFile },
    );
  }
  fs.mkdirSync(dir, { recursive: true });
  const files = stepFiles(dir, shape);
  fs.rmSync(files.iface, { force: true });
  writeModelPlan(files.plan, compiled);
  moveWeightsToStore(files.plan, path.join(dir, WEIGHT_STORE));
  writeFileAtomic(files.bounds, JSON.stringify(cacheBounds(compiled)));
  if ('from' in shape) {
    // The plan's program must hold the past-dependent constants as the lowering made them.
    for (const [name, rule] of compiled.lowered.pastConstants) {
      const c = compiled.managed.constants.get(name);
      const v = rule(shape.past);
      if (!c || c.data.kind !== 'dense' || v.kind !== 'dense' || c.data.values.some((x, i) => x !== v.values[i])) {
        throw new Error(`internal: the managed program does not hold past-dependent constant @${name} as lowered`);
      }
    }
    for (let P = shape.from; P <= shape.past; P++) writePastInstance(instanceFile(files.plan, P), pastInstance(compiled.lowered, P));
  }
  return { compiled, files };
}

export interface CompiledGenerationPlan {
  manifest: GenerationManifest;
  files: string[];
  /** The step plans compiled now: the prefill plans, then the decode plans. */
  stepPlans: string[];
  /** Each decode plan: the pasts it serves, its compile time, refreshes, rounds and predicted ms per token. */
  decodePlans: { from: number; to: number; ms: number; refreshes: number; rounds: number; predictedMs?: number; criticalPathMs?: number }[];
  lines: string[];
  /** The decode plan the parameter search chose on (past C - 1), when it searched: what one decode token costs. */
  searchStep?: { past: number; managed: CompiledModel['managed']; refreshes: number; predictedMs?: number };
}

export function compileGenerationPlan(modelFile: string, out: string, opts: GenerationPlanOptions): CompiledGenerationPlan {
  const C = opts.maxContext;
  if (!Number.isInteger(C) || C < 2) throw new FhecError(`--max-context must be an integer >= 2, got ${C}`, { field: '--max-context' });
  const prefill = [...new Set(opts.prefill ?? [Math.min(8, C)])].sort((a, b) => a - b);
  for (const s of prefill) if (!Number.isInteger(s) || s < 1 || s > C) throw new FhecError(`prefill length ${s} must be in 1..${C}`, { field: '--prefill' });
  if (!fs.existsSync(modelFile)) throw new FhecError('model file not found', { file: modelFile });
  const outDir = path.dirname(path.resolve(out));
  const base = path.basename(out).replace(/\.json$/, '');
  const stepsDir = `${base}.steps`;
  const lines: string[] = [];
  let searchStep: CompiledGenerationPlan['searchStep'];
  const compile: GenerationManifest['compile'] = {
    ringDegree: opts.ringDegree ?? 0,
    ...(opts.maxWindows ? { maxWindows: opts.maxWindows } : {}),
    ...(opts.placement ? { placement: opts.placement } : {}),
    ...(opts.streamWeights ? { streamWeights: true } : {}),
  };
  // The longest past's decode calibration sets, made once for the search's probe and the last bucket.
  const longest: NonNullable<ModelPlanOptions['decodeSetsAt']> = { past: C - 1 };
  if (opts.ringDegree === undefined) {
    // One parameter set serves every step (one key set per generation): search it on the decode plan
    // at the longest past (decode steps dominate a generation, and its cache layout is the largest).
    const t0 = performance.now();
    const probe = compileModel(modelFile, { calibration: opts.calibration, tokenizer: opts.tokenizer, decode: C - 1, decodeSetsAt: longest, maxWindows: opts.maxWindows, placement: opts.placement, costs: opts.costs, ...(opts.streamWeights ? { streamWeights: true } : {}) });
    compile.ringDegree = probe.params.ringDegree;
    compile.levels = topLevel(probe.params);
    searchStep = { past: C - 1, managed: probe.managed, refreshes: probe.refreshes, ...(probe.predictedMs !== undefined ? { predictedMs: probe.predictedMs } : {}) };
    fs.mkdirSync(path.join(outDir, stepsDir), { recursive: true });
    const record: ParameterSearchRecord = {
      step: shapeName({ kind: 'decode', past: C - 1 }),
      chosen: { ringDegree: compile.ringDegree, levels: compile.levels },
      candidates: candidateRows(probe.search?.candidates ?? []),
    };
    fs.writeFileSync(path.join(outDir, stepsDir, PARAMETER_SEARCH_FILE), JSON.stringify(record, null, 1));
    lines.push(
      `parameter search on the decode plan for past ${C - 1} (${probe.search?.candidates.length ?? 0} candidates, ${((performance.now() - t0) / 1000).toFixed(1)} s): ` +
        `N=${compile.ringDegree}, ${compile.levels} levels, ${probe.refreshes} refreshes in ${refreshRounds(probe.managed).count + 1} rounds (the cache carry's included), ${predictionText(probe.predictedMs, undefined, probe.predictionNote, 'per decode step')}`,
    );
  }
  const files: string[] = [];
  const stepPlans: string[] = [];
  let params: CkksParameters | undefined;
  let embedding: { vocab: number; dim: number; file: string; sha256: string } | undefined;
  let lastPrefill: CompiledModel | undefined;
  for (const S of prefill) {
    const t0 = performance.now();
    const { compiled, files: f } = compileStep(modelFile, { calibration: opts.calibration, compile }, opts.calibration, opts.tokenizer, path.join(outDir, stepsDir), { kind: 'prefill', tokens: S });
    if (params && parametersId(params) !== parametersId(compiled.params)) throw new FhecError('step plans came out with different CKKS parameters');
    params = compiled.params;
    const t = compiled.lowered.embedding.table;
    const tableBytes = new Uint8Array(new Float32Array(t.load().data).buffer);
    embedding = { vocab: t.dims[0]!, dim: t.dims[1]!, file: `${base}.embedding.bin`, sha256: sha256Hex(tableBytes) };
    writeFileAtomic(path.join(outDir, embedding.file), tableBytes);
    files.push(f.plan);
    stepPlans.push(f.plan);
    lastPrefill = compiled;
    lines.push(`prefill of ${S} tokens: ${compiled.managed.ops.length} ops, ${compiled.refreshes} refreshes in ${refreshRounds(compiled.managed).count} rounds (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  }
  // Decode plans by buckets of past length, all compiled now: from the shortest prefill to the last
  // past the context reaches. The buckets follow the cache layout (decodeBuckets), which the prefill's
  // present K/V width and the slot count fix.
  const kv = stepKvWidth(lastPrefill!);
  const buckets = decodeBuckets(kv, params!.ringDegree / 2, prefill[0]!, C - 1);
  const decodePlans: CompiledGenerationPlan['decodePlans'] = [];
  for (const bk of buckets) {
    const t0 = performance.now();
    const shape = { kind: 'decode' as const, past: bk.to, from: bk.from };
    const { compiled, files: f } = compileStep(modelFile, { calibration: opts.calibration, compile }, opts.calibration, opts.tokenizer, path.join(outDir, stepsDir), shape, longest);
    if (parametersId(params!) !== parametersId(compiled.params)) throw new FhecError('step plans came out with different CKKS parameters');
    if (compiled.lowered.cacheInputs.some((c) => c.layout.length !== kv)) throw new Error(`internal: the decode cache is not ${kv} channels wide, as the prefill's`);
    const ms = performance.now() - t0;
    files.push(f.plan);
    stepPlans.push(f.plan);
    decodePlans.push({
      from: bk.from,
      to: bk.to,
      ms,
      refreshes: compiled.refreshes,
      rounds: refreshRounds(compiled.managed).count + 1,
      ...(compiled.predictedMs !== undefined ? { predictedMs: compiled.predictedMs } : {}),
      ...(compiled.criticalPathMs !== undefined ? { criticalPathMs: compiled.criticalPathMs } : {}),
    });
    lines.push(
      `decode plan for pasts ${bk.from}..${bk.to}: ${compiled.managed.ops.length} ops, ${compiled.refreshes} refreshes in ${refreshRounds(compiled.managed).count + 1} rounds (the cache carry's included), ${predictionText(compiled.predictedMs, compiled.criticalPathMs, compiled.predictionNote, 'per token')} (${(ms / 1000).toFixed(1)} s)`,
    );
  }
  const manifest: GenerationManifest = {
    kind: GENERATION_PLAN_KIND,
    version: GENERATION_PLAN_VERSION,
    model: path.relative(outDir, path.resolve(modelFile)),
    modelSha256: sha256(modelFile),
    calibration: path.relative(outDir, path.resolve(opts.calibration)),
    compile,
    maxContext: C,
    tokenizer: opts.tokenizer === undefined ? 'bytes' : { dir: path.relative(outDir, path.resolve(opts.tokenizer)), sha256: HfTokenizer.loadCached(opts.tokenizer).sha256 },
    vocab: embedding!.vocab,
    dim: embedding!.dim,
    embedding: embedding!.file,
    embeddingSha256: embedding!.sha256,
    params: { ringDegree: params!.ringDegree, bitSizes: params!.bitSizes, scale: params!.scale },
    steps: stepsDir,
    prefill,
    decodeBuckets: buckets,
  };
  writeFileAtomic(out, JSON.stringify(manifest, null, 1));
  files.unshift(out, path.join(outDir, embedding!.file));
  lines.unshift(
    `generation plan for ${path.basename(modelFile)}: context up to ${C} positions, ring degree ${params!.ringDegree}; ` +
      `${buckets.length} decode plan(s) by buckets of past length in ${stepsDir}/`,
  );
  return { manifest, files, stepPlans, decodePlans, lines, ...(searchStep ? { searchStep } : {}) };
}

export interface PlanStoreOptions {
  /** Told before a step plan is compiled, and after (with the time). */
  onCompile?: (shape: StepShape, ms?: number) => void;
  /** Step plans kept loaded (default 2: the current step and the next). */
  keep?: number;
}

/** The evaluator's plan source: step plans from the manifest's directory, compiled when missing. */
export class GenerationPlanStore implements GenerationPlanSource {
  readonly manifest: GenerationManifest;
  readonly params: CkksParameters;
  readonly maxContext: number;
  /** Step plans compiled by this store, with their compile time. */
  readonly compiled: { shape: StepShape; ms: number }[] = [];
  private readonly dir: string;
  /** Step plans handed out (a bucket's instantiated at their past), and the plan files loaded. */
  private readonly loaded: StepPlan[] = [];
  private readonly plans: StepPlan[] = [];
  private modelChecked = false;

  constructor(
    readonly file: string,
    private readonly options: PlanStoreOptions = {},
  ) {
    this.manifest = readGenerationManifest(file);
    const p = this.manifest.params;
    this.params = makeParameters({ ringDegree: p.ringDegree, bitSizes: p.bitSizes, scale: p.scale });
    this.maxContext = this.manifest.maxContext;
    this.dir = path.join(path.dirname(file), this.manifest.steps);
  }

  /** The plan a step runs: its bucket's decode plan (plans with buckets), else its own. */
  private planShape(shape: StepShape): PlanShape {
    const buckets = this.manifest.decodeBuckets;
    if (shape.kind !== 'decode' || !buckets) return shape;
    const b = buckets.find((x) => x.from <= shape.past && shape.past <= x.to);
    if (!b) {
      const [lo, hi] = [buckets[0]!.from, buckets[buckets.length - 1]!.to];
      const fix = shape.past < lo ? `: a prompt of at least ${lo} tokens, or a plan compiled with --prefill ${shape.past}` : '';
      throw new FhecError(`no decode plan serves past ${shape.past}: the plan's decode plans cover pasts ${lo}..${hi} (from its shortest prefill)${fix}`, { file: this.file });
    }
    return { kind: 'decode', past: b.to, from: b.from };
  }

  describe(shape: StepShape): StepInterface {
    // A bucket's steps share its plan's keys and embedding input.
    return this.describePlan(this.planShape(shape));
  }

  private describePlan(shape: PlanShape): StepInterface {
    const files = stepFiles(this.dir, shape);
    if (fs.existsSync(files.plan)) {
      const cached = readStepInterface(files.iface, this.params.ringDegree / 2);
      if (cached) return cached;
    }
    const d = describeStep(this.loadPlan(shape));
    writeFileAtomic(files.iface, JSON.stringify(d));
    return d;
  }

  prefillLengths(): number[] {
    return [...this.manifest.prefill].sort((a, b) => a - b);
  }

  private resolve(rel: string): string {
    return path.resolve(path.dirname(this.file), rel);
  }

  /** The step's plan: for a bucket, its decode plan instantiated at the step's past. */
  load(shape: StepShape): StepPlan {
    const ps = this.planShape(shape);
    if (!('from' in ps)) return this.loadPlan(ps);
    const name = shapeName(shape);
    const hit = this.loaded.find((s) => shapeName(s.shape) === name);
    if (hit) return hit;
    const base = this.loadPlan(ps);
    const inst = readPastInstance(instanceFile(base.plan.file, shape.kind === 'decode' ? shape.past : 0), this.params.ringDegree / 2);
    if (shape.kind !== 'decode' || inst.past !== shape.past) throw new FhecError(`the instance file is for past ${inst.past}, not ${shapeName(shape)}`, { file: instanceFile(base.plan.file, inst.past) });
    const sp: StepPlan = { shape, plan: modelPlanAtPast(base.plan, inst, instanceFile(base.plan.file, inst.past)), cacheBounds: base.cacheBounds };
    this.loaded.push(sp);
    while (this.loaded.length > (this.options.keep ?? 2)) this.loaded.shift();
    return sp;
  }

  /** A plan file (compiled first when an older plan without buckets has not compiled it yet), kept loaded. */
  private loadPlan(shape: PlanShape): StepPlan {
    const name = planName(shape);
    const hit = this.plans.find((s) => planName(s.shape) === name);
    if (hit) return hit;
    const files = stepFiles(this.dir, shape);
    if (!fs.existsSync(files.plan) || !fs.existsSync(files.bounds)) {
      if ('from' in shape) throw new FhecError(`decode plan ${name} is missing (recompile the generation plan)`, { file: files.plan });
      const model = this.resolve(this.manifest.model);
      if (!this.modelChecked) {
        if (!fs.existsSync(model)) throw new FhecError(`step plan ${name} is not compiled yet, and the model it compiles from is missing`, { file: model });
        if (sha256(model) !== this.manifest.modelSha256) throw new FhecError('the model file changed since the generation plan was compiled', { file: model });
        this.modelChecked = true;
      }
      this.options.onCompile?.(shape);
      const t0 = performance.now();
      const tk = this.manifest.tokenizer;
      const { compiled } = compileStep(model, this.manifest, this.resolve(this.manifest.calibration), tk === 'bytes' ? undefined : this.resolve(tk.dir), this.dir, shape);
      if (parametersId(compiled.params) !== parametersId(this.params)) throw new FhecError(`step plan ${name} came out with other CKKS parameters than the generation plan`, { file: this.file });
      const ms = performance.now() - t0;
      this.compiled.push({ shape, ms });
      this.options.onCompile?.(shape, ms);
    }
    const plan = loadModelPlan(files.plan);
    const cacheBounds = readCacheBounds(files.bounds, plan.meta.outputs.filter((o) => o.kv).map((o) => o.name));
    const sp: StepPlan = { shape: 'from' in shape ? { kind: 'decode', past: shape.past } : shape, plan, cacheBounds };
    // The client may have encrypted by the interface file: it must be this plan's.
    const cached = readStepInterface(files.iface, this.params.ringDegree / 2);
    if (cached) checkStepInterface(cached, describeStep(sp), files.iface);
    this.plans.push(sp);
    while (this.plans.length > (this.options.keep ?? 2)) this.plans.shift();
    return sp;
  }
}

/** A plan source for a generation plan file: what `fhec serve`'s session workers load (by module name). */
export function createPlanSource(file: string): GenerationPlanSource {
  return new GenerationPlanStore(file);
}

/**
 * Compiles (or finds on disk) every decode plan a generation with this plan can reach from its
 * shortest prefill, so sessions never compile one while others run (`fhec serve` at start).
 */
export function precompileDecodePlans(file: string, onCompile?: PlanStoreOptions['onCompile']): number {
  const store = new GenerationPlanStore(file, { keep: 1, ...(onCompile ? { onCompile } : {}) });
  const first = Math.min(...store.prefillLengths());
  for (let P = first; P < store.maxContext; P++) store.describe({ kind: 'decode', past: P });
  return store.compiled.length;
}
