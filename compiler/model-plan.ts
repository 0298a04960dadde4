// Canonical model + calibration -> plan. Loads the model raised to the canonical IR and specialized to
// a prefill of S tokens, calibrates it (value ranges, and the attention statistics the encrypted
// softmax needs), lowers it (passes/fhe/lower-canonical), chooses the CKKS parameters (the cost-driven
// search of compiler/model-parameters.ts, unless N is fixed), places refreshes for the chain, manages
// scales, and writes the plan with a `model` section: the model's input/output names and how
// they map to ciphertexts, the client-side embedding table (a sidecar), the approximation probes and
// the unmanaged program the sim monitor re-evaluates.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { FhecError } from '../ir/errors.js';
import { parseFhe } from '../ir/fhe/parse.js';
import { printFhe } from '../ir/fhe/print.js';
import { maskedScale, type FheConstant, type FheProgram } from '../ir/fhe/types.js';
import type { Graph } from '../ir/graph/types.js';
import { generatorBindings } from '../passes/canonical/specialize.js';
import { attentionObserver, collectAttentionStats, mergeAttentionStats, type AttentionStats } from '../passes/fhe/lower-canonical/attention-stats.js';
import { pastInstance } from '../passes/fhe/lower-canonical/past-constants.js';
import { programAtPast } from '../ir/fhe/past-instance.js';
import type { ErrorTargets, LoweredModel } from '../passes/fhe/lower-canonical/lower-model.js';
import { canonicalSource } from '../passes/fhe/lower-canonical/lower-canonical-pass.js';
import { modelFhePipeline } from '../passes/fhe/registry.js';
import { numberAttr, requireParameters, uniformFloors, unitOf, withoutAttributes, type ValueFloors } from '../passes/fhe/pipeline/unit.js';
import { predictProgramLatency } from '../passes/fhe/parameters/program-latency.js';
import type { PassRun } from '../passes/pass-manager.js';
import type { SoftmaxMethod } from '../passes/fhe/lower-canonical/softmax-plan.js';
import type { ParameterSearchResult } from '../passes/fhe/parameters/parameter-search.js';
import { defaultCostTable, type CostTable } from '../ir/ckks/cost-table.js';
import { topLevel, type CkksParameters } from '../ir/ckks/params.js';
import { modelRefreshFloor, type MaskNeeds, type Placement } from './model-parameters.js';
import { achievableHidingBits, DEFAULT_HIDING_BITS } from '../runtime/refresh/mask.js';
import { embedTokens, MODEL_PLAN_KIND, modelProgramInputs, type ModelPlanMeta } from '../runtime/model-session.js';
import { writePlan, type RefreshPointRecord } from '../runtime/plan/plan.js';
import { sha256Hex, writeFileAtomic } from '../runtime/plan/files.js';
import { calibratedMaxima, chooseBounds, provedMagnitudes, provedOnManaged, REFRESH_BOUND_MARGIN, refreshedValues, spreadSample, type ValueBound } from '../passes/fhe/refresh/refresh-bounds.js';
import { inputsForTokens, loadCalibrationSets, tokenizeText, windowStarts } from './calibration-data.js';
import { Calibrator, DEFAULT_MARGIN } from '../passes/calibrate/calibrate.js';
import { runGraph } from '../runtime/reference/interpreter.js';
import { Tensor } from '../ir/tensor.js';
import { calibrateModel } from './commands/calibrate.js';
import { loadModel, runFhePipeline } from './driver.js';
import { importOnnx } from './onnx/import.js';
import { buildPlanAnalysis } from './report/plan-analysis.js';
import type { PlanAnalysis } from '../runtime/plan/analysis-schema.js';

export interface ModelPlanOptions {
  calibration: string;
  /** Prefill length S (default: the calibration set's length for JSON sets, else 16). */
  prefill?: number;
  /** Decode of one token after P cached ones (text calibration: windows of P+1 tokens, the first P prefilled). */
  decode?: number;
  /**
   * Decode plans by buckets: the plan for past `decode` also serves every past from this one up (the
   * same cache layout; blocks past P masked, past-dependent constants recomputed at run time). Its
   * calibration windows and refresh bounds then cover pasts across the bucket (decodePastSample).
   */
  decodeFrom?: number;
  /** Text calibration: at most this many windows (default: all). */
  maxWindows?: number;
  /**
   * Decode calibration sets shared by the compiles of one generation plan: those for `past` are made
   * once and kept here (its parameter search's probe and its last bucket both calibrate at the longest past).
   */
  decodeSetsAt?: { past: number; sets?: Record<string, Tensor>[] };
  /** Text calibration: the model's Hugging Face tokenizer folder (default: UTF-8 bytes). */
  tokenizer?: string;
  margin?: number;
  targets?: Partial<ErrorTargets>;
  /**
   * Fixes N (the chain is the longest N holds at 128-bit security); without it the cost-driven search
   * chooses N and the chain length (compiler/model-parameters.ts).
   */
  ringDegree?: number;
  /** With ringDegree: exactly this many levels (a chain chosen elsewhere, e.g. once for a whole generation plan). */
  levels?: number;
  /** Scale bits (default 40, what the approximations and weights were tuned at). */
  scaleBits?: number;
  /** Refresh placement: 'optimal' (DP, falls back to greedy when larger) or 'greedy' (default). */
  placement?: Placement;
  /** Cost table the search prices candidates with (default: ir/ckks/default-costs.json). */
  costs?: CostTable;
  /** How attention's softmax is approximated (passes/fhe/lower-canonical/softmax-plan.ts; default 'squaring'). */
  softmax?: SoftmaxMethod;
  /** 'last': the logits output holds the last position only (generation prefills); default 'all'. */
  logits?: 'all' | 'last';
  /**
   * Reference linear weights that live in ONNX external data instead of storing their diagonals: the
   * plan records each matrix's recipe and the data regions' sha256, and the runtime streams them.
   */
  streamWeights?: boolean;
  /** The file `costs` was read from (select-parameters names the table by it in the IR annotations). */
  costsFile?: string;
  /** The FHE pipeline (passes/fhe/registry.ts; default modelFhePipeline for these options). */
  fhePipeline?: string;
  /** --print-after PASS (repeatable) or --print-after-all: graph, canonical and FHE passes alike. */
  printAfter?: ReadonlySet<string> | 'all';
  emit?: (header: string, text: string) => void;
}

export interface CompiledModel {
  model: string;
  graph: Graph;
  lowered: LoweredModel;
  params: CkksParameters;
  /** Refresh-placed (unmanaged) and managed programs. */
  placed: FheProgram;
  managed: FheProgram;
  refreshes: number;
  greedyRefreshes: number;
  attention: Map<string, AttentionStats>;
  calibrationSets: Record<string, Tensor>[];
  /** The candidates the parameter search considered (absent when N was fixed). */
  search?: ParameterSearchResult;
  /** Latency predicted from the cost table (ms), as the search prices candidates. */
  predictedMs?: number;
  /** Of that prediction, the longest chain of dependent ops (ms): what evaluation threads cannot shorten. */
  criticalPathMs?: number;
  /** Why there is no prediction (fixed N only: the table lacks N, or the keys exceed the budget). */
  predictionNote?: string;
  /** The cost table latency was predicted with, and the refresh placement asked for (for the plan's analysis). */
  costs: { table: CostTable; name: string };
  placement: Placement;
  /** Bounds on |x| of every refreshed value (program order) and of every KV-cache output (by the model's name). */
  bounds: { refresh: ValueBound[]; cache: Record<string, ValueBound> };
  /** The lowest level each value may sit at: where the 40-bit masks fit (compiler/model-parameters.ts, modelFloors). */
  floors: ValueFloors;
  /** Every pass run, graph and canonical then FHE: name, options, time, counters (--timing). */
  passRuns?: PassRun[];
  /** search: the search's own work beyond lowering and placement (scale management, keys, pricing). */
  ms: { calibrate: number; lower: number; place: number; manage: number; search?: number; bounds?: number };
}

const WEIGHT_PRIVACY_NOTE =
  'The client holds the embedding table and looks tokens up itself: the evaluator receives encrypted embeddings, ' +
  'so the token ids never reach it, and the embedding weights are disclosed to the client. All other weights ' +
  'stay with the evaluator as plaintexts; the logits come back encrypted under the client key.';

/**
 * Calibration sets for a decode step after P tokens: each text window of P+1 tokens is prefilled
 * (P tokens, by the reference interpreter on the model itself) and its present K/V become the past.
 */
function decodeCalibrationSets(modelFile: string, imported: Graph, calibration: string, P: number, maxWindows?: number, tokenizer?: string): Record<string, Tensor>[] {
  if (path.extname(calibration).toLowerCase() !== '.txt') throw new FhecError('--decode calibration needs a text file (windows are prefilled to make the cache)', { file: calibration });
  const text = tokenizeText(imported, fs.readFileSync(calibration), calibration, tokenizer);
  const prefill = loadModel(modelFile, { bindings: generatorBindings(imported, { kind: 'prefill', sequence: P }), verifyEach: false }).graph;
  const decode = loadModel(modelFile, { bindings: generatorBindings(imported, { kind: 'decode', past: P }), verifyEach: false }).graph;
  const sets: Record<string, Tensor>[] = [];
  // Each window gives one decode row; overlapping windows (stride (P+1)/2) double the rows the exp and
  // 1/x intervals are fitted on, for twice the calibration time.
  for (const w of windowStarts(text.length, { window: P + 1, stride: Math.max(1, Math.ceil((P + 1) / 2)), maxWindows })) {
    if (w.length !== P + 1) continue;
    const tokens = text.slice(w.start, w.start + P + 1);
    const out = runGraph(prefill, inputsForTokens(prefill, tokens.slice(0, P), calibration));
    const inputs: Record<string, Tensor> = {};
    for (const v of decode.inputs) {
      if (v.name === 'input_ids') inputs[v.name] = Tensor.from(v.dtype, [1, 1], [tokens[P]!]);
      else if (/attention_mask/.test(v.name)) inputs[v.name] = Tensor.from(v.dtype, [1, P + 1], new Array<number>(P + 1).fill(1));
      else if (/position_ids/.test(v.name)) inputs[v.name] = Tensor.from(v.dtype, [1, 1], [P]);
      else if (/past/.test(v.name)) {
        const present = out[v.name.replace(/past_key_values/, 'present')];
        if (!present) throw new FhecError(`no present output for ${v.name}`, { file: modelFile });
        inputs[v.name] = present;
      } else throw new FhecError(`cannot fill decode input ${v.name}`, { file: modelFile });
    }
    sets.push(inputs);
  }
  return sets;
}

export function compileModel(modelFile: string, opts: ModelPlanOptions): CompiledModel {
  if (opts.decode !== undefined) return compileDecode(modelFile, opts, opts.decode);
  const t0 = performance.now();
  const imported = importOnnx(modelFile).graph;
  const isText = path.extname(opts.calibration).toLowerCase() === '.txt';
  let S = opts.prefill;
  const sets0 = isText ? undefined : loadCalibrationSets(imported, opts.calibration);
  if (S === undefined) {
    const ids = sets0?.[0]?.inputs['input_ids'];
    S = ids ? ids.dims[ids.dims.length - 1]! : 16;
  }
  const window = { window: S, maxWindows: opts.maxWindows, ...(opts.tokenizer !== undefined ? { tokenizer: opts.tokenizer } : {}) };
  const cal = calibrateModel(modelFile, opts.calibration, { canonical: true, margin: opts.margin, printAfter: opts.printAfter, ...(isText ? window : {}) });
  let graphRuns = cal.passRuns;
  const bindings = generatorBindings(imported, { kind: 'prefill', sequence: S });
  // Calibrated ranges live on the graph specialized to the calibration shape; copy them by name.
  let graph = cal.graph;
  const calIds = cal.graph.inputs.find((v) => v.name === 'input_ids');
  if (!calIds || calIds.shape?.[1] !== S) {
    const loaded = loadModel(modelFile, { canonical: true, bindings, verifyEach: false, printAfter: opts.printAfter });
    graph = loaded.graph;
    graphRuns = loaded.passRuns;
    const ranges = new Map<string, NonNullable<Graph['nodes'][number]['outputs'][number]['range']>>();
    for (const n of cal.graph.nodes) for (const o of n.outputs) if (o.range) ranges.set(o.name, o.range);
    for (const n of graph.nodes) for (const o of n.outputs) if (ranges.has(o.name)) o.range = ranges.get(o.name);
  }
  const sets = (sets0 ?? loadCalibrationSets(imported, opts.calibration, window)).filter((s) => {
    const ids = s.inputs['input_ids'];
    return !ids || ids.dims[ids.dims.length - 1] === S;
  });
  const calibrationSets = sets.map((s) => s.inputs);
  // Attention statistics need inputs of the lowered shape; a JSON set of another length is run as is
  // on its own specialization.
  const attention = collectAttentionStats(sets.length ? graph : cal.graph, sets.length ? calibrationSets : (sets0 ?? []).map((s) => s.inputs));
  return finishCompile(modelFile, opts, graph, attention, calibrationSets, performance.now() - t0, graphRuns);
}

/**
 * The pasts a bucket plan is calibrated and bounded at: both ends and the middle. Score ranges and row
 * sums change with the context, and the ends of a bucket are its shortest and longest rows.
 */
export function decodePastSample(from: number, to: number): number[] {
  return [...new Set([from, Math.round((from + to) / 2), to])].sort((a, b) => a - b);
}

/** Calibration windows of one past of a bucket plan, other than the plan's own. */
interface PastSets {
  past: number;
  sets: Record<string, Tensor>[];
}

function compileDecode(modelFile: string, opts: ModelPlanOptions, P: number): CompiledModel {
  const t0 = performance.now();
  const imported = importOnnx(modelFile).graph;
  if (!Number.isInteger(P) || P < 1) throw new FhecError(`--decode expects a past length >= 1, got ${P}`, { field: '--decode' });
  const from = opts.decodeFrom ?? P;
  if (!Number.isInteger(from) || from < 1 || from > P) throw new FhecError(`a decode bucket starts at a past in 1..${P}, got ${from}`, { field: 'decodeFrom' });
  const load = (Q: number) => loadModel(modelFile, { canonical: true, bindings: generatorBindings(imported, { kind: 'decode', past: Q }), verifyEach: false, printAfter: Q === P ? opts.printAfter : undefined });
  const loaded = load(P);
  const graph = loaded.graph;
  const calibrator = new Calibrator({ margin: opts.margin ?? DEFAULT_MARGIN });
  const attention = new Map<string, AttentionStats>();
  let sets: Record<string, Tensor>[] = [];
  const others: PastSets[] = [];
  // Value ranges by name (the same names at every past) and softmax statistics merged over the sampled
  // pasts: the approximations are fitted for the whole bucket.
  for (const Q of decodePastSample(from, P)) {
    const g = Q === P ? graph : load(Q).graph;
    const shared = opts.decodeSetsAt?.past === Q ? opts.decodeSetsAt : undefined;
    const qs = shared?.sets ?? decodeCalibrationSets(modelFile, imported, opts.calibration, Q, opts.maxWindows, opts.tokenizer);
    if (shared) shared.sets = qs;
    if (qs.length === 0) throw new FhecError(`the calibration text has no window of ${Q + 1} tokens`, { file: opts.calibration });
    // One run of the graph per window gives both the value ranges and the softmax statistics.
    const stats = new Map<string, AttentionStats>();
    for (const s of qs) calibrator.observe(g, s, attentionObserver(g, s, stats));
    for (const [name, st] of stats) attention.set(name, attention.has(name) ? mergeAttentionStats(attention.get(name)!, st) : st);
    if (Q === P) sets = qs;
    else others.push({ past: Q, sets: qs });
  }
  calibrator.annotate(graph);
  return finishCompile(modelFile, opts, graph, attention, sets, performance.now() - t0, loaded.passRuns, others);
}

function finishCompile(
  modelFile: string,
  opts: ModelPlanOptions,
  graph: Graph,
  attention: Map<string, AttentionStats>,
  calibrationSets: Record<string, Tensor>[],
  calibrateMs: number,
  graphRuns: PassRun[],
  otherPasts: PastSets[] = [],
): CompiledModel {
  const c = finishPlacement(modelFile, opts, graph, attention, calibrationSets, calibrateMs, otherPasts);
  c.passRuns = [...graphRuns, ...(c.passRuns ?? [])];
  const t0 = performance.now();
  const bounds = maskBounds(c.placed, c.managed, c.lowered, c.params, calibrationSets, otherPasts);
  checkMaskLevels(c, bounds);
  return { ...c, bounds, ms: { ...c.ms, bounds: performance.now() - t0 } };
}

/**
 * Bounds on |x| where ciphertexts leave the evaluator masked: each refresh op's input, and each
 * KV-cache output (carried into the next step). Proved from the embedding table's largest entry and
 * the approximations' output bounds (the probes) where interval arithmetic stays finite (the encrypted
 * cache inputs have no proved bound), calibrated on up to BOUND_CALIBRATION_WINDOWS of the calibration
 * windows, and chosen between (passes/fhe/refresh/refresh-bounds.ts). The proof runs on the placed
 * program, whose value names are the lowering's (the probes name them), then goes to the managed one
 * (provedOnManaged).
 */
function maskBounds(placed: FheProgram, managed: FheProgram, lowered: LoweredModel, params: CkksParameters, calibrationSets: Record<string, Tensor>[], otherPasts: PastSets[] = []): CompiledModel['bounds'] {
  const emb = lowered.embedding;
  const { tableMax } = boundRuns(lowered, []);
  // A bucket plan's bounds hold at each sampled past of its bucket: the largest over them.
  const atPasts = pastRuns(lowered, calibrationSets, otherPasts);
  const outputArg = new Map(managed.ops.filter((op) => op.kind === 'output').map((op) => [op.tensor!, op.args[0]!.name]));
  // A cache split over several ciphertexts (blocks) is carried by pieces: one bound covers them all.
  const kv = lowered.outputs.filter((o) => o.kv).map((o) => ({ name: o.name, values: o.blocks.map((b) => outputArg.get(b.fhe)!) }));
  const names = [...new Set([...refreshedValues(managed), ...kv.flatMap((k) => k.values)])];
  const embBounds = Object.fromEntries((emb.groups?.map((g) => g.fhe) ?? [emb.fhe]).map((n) => [n, tableMax]));
  const seeds = new Map(lowered.probes.filter((p) => p.outputBound !== undefined).map((p) => [p.output, p.outputBound!]));
  // Where each value is masked: a refresh at its input's level, a carry one level below its output's.
  const maskedAt = new Map<string, { level: number; scale: number }>();
  for (const op of managed.ops) {
    const v = op.args[0];
    if (op.kind === 'refresh' && v) maskedAt.set(v.name, { level: v.type.level!, scale: v.type.scale! });
  }
  for (const op of managed.ops) {
    const v = op.args[0];
    if (op.kind === 'output' && v && kv.some((k) => k.values.includes(v.name))) {
      const at = { level: v.type.level! - 1, scale: v.type.scale! };
      const prev = maskedAt.get(v.name);
      if (!prev || at.level < prev.level) maskedAt.set(v.name, at);
    }
  }
  const fits = (value: string, bound: number): boolean => {
    const at = maskedAt.get(value);
    return at !== undefined && at.level >= 0 && achievableHidingBits(params, at.level, at.scale, bound) >= DEFAULT_HIDING_BITS;
  };
  const chosen = new Map(
    chooseBounds(
      names,
      maxOver(atPasts.map((r) => provedOnManaged(placed, managed, provedMagnitudes(r.at(placed), embBounds, seeds)))),
      maximaOnManaged(placed, managed, lowered, names) ?? maxOver(atPasts.map((r) => calibratedMaxima(r.at(managed), r.runs, names))),
      REFRESH_BOUND_MARGIN,
      fits,
    ).map((b) => [b.value, b]),
  );
  const widest = (vs: string[]): ValueBound => vs.map((v) => chosen.get(v)!).reduce((a, b) => (b.bound > a.bound ? b : a));
  // A refresh with a factor c masks c x (its masked scale is the value's over c: maskedScale): its
  // point's bound is c times the value's, the same mask.
  const factorOf = new Map(managed.ops.filter((op) => op.kind === 'refresh' && op.factor !== undefined).map((op) => [op.args[0]!.name, Math.abs(op.factor!)]));
  const masked = (b: ValueBound, c = 1): ValueBound =>
    c === 1 ? b : { ...b, bound: c * b.bound, calibratedMax: c * b.calibratedMax, ...(b.proved !== undefined ? { proved: c * b.proved } : {}) };
  return {
    refresh: refreshedValues(managed).map((v) => masked(chosen.get(v)!, factorOf.get(v))),
    cache: Object.fromEntries(kv.map((k) => [k.name, widest(k.values)])),
  };
}

/**
 * Calibrated max |x| of every ciphertext value of a lowering, as valueMaskNeeds measured them on the bound
 * windows (at every sampled past of a bucket plan): maskBounds reads the refreshed and carried values' maxima from here instead of evaluating the
 * managed program again (placement adds refreshes and management adds rescales, relinearizations, level
 * drops and products by 1, none of which changes a value).
 */
const loweredMaxima = new WeakMap<FheProgram, Map<string, number>>();

/** The managed program's `names` with their lowered values' maxima, or undefined where one is not known. */
function maximaOnManaged(placed: FheProgram, managed: FheProgram, lowered: LoweredModel, names: readonly string[]): Map<string, number> | undefined {
  const maxima = loweredMaxima.get(lowered.program);
  if (!maxima) return undefined;
  const onPlaced = new Map<string, number>();
  for (const op of placed.ops) {
    if (!op.result) continue;
    const m = maxima.get(op.result.name) ?? (op.kind === 'refresh' ? onPlaced.get(op.args[0]!.name) : undefined);
    if (m !== undefined) onPlaced.set(op.result.name, m);
  }
  const onManaged = provedOnManaged(placed, managed, onPlaced);
  return names.every((n) => Number.isFinite(onManaged.get(n))) ? new Map(names.map((n) => [n, onManaged.get(n)!])) : undefined;
}

/**
 * What the masks need of a lowered model, before placement: each ciphertext value's bound as maskBounds
 * will choose it after placement at most (calibrated max |x| with the margin, on the same windows; a
 * proved bound is only taken when it is no larger), and the values carried as KV-cache outputs. The
 * placement keeps each value at or above the lowest level its bound fits (model-parameters.ts).
 */
function valueMaskNeeds(lowered: LoweredModel, calibrationSets: Record<string, Tensor>[], otherPasts: PastSets[] = []): MaskNeeds {
  const names = lowered.program.ops.filter((op) => op.result?.type.kind === 'ct').map((op) => op.result!.name);
  const calibrated = maxOver(pastRuns(lowered, calibrationSets, otherPasts).map((r) => calibratedMaxima(r.at(lowered.program), r.runs, names)));
  loweredMaxima.set(lowered.program, calibrated);
  const bounds = new Map(chooseBounds(names, new Map(), calibrated).map((b) => [b.value, b.bound]));
  const outputArg = new Map(lowered.program.ops.filter((op) => op.kind === 'output').map((op) => [op.tensor!, op.args[0]!.name]));
  const carried = new Set(lowered.outputs.filter((o) => o.kv).flatMap((o) => o.blocks.map((b) => outputArg.get(b.fhe)!)));
  return { bounds, carried };
}

/** Per value, the largest of the maps' values. */
function maxOver(maps: Map<string, number>[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of maps) for (const [k, v] of m) out.set(k, Math.max(out.get(k) ?? -Infinity, v));
  return out;
}

/**
 * The lowered model's plain runs at every past a plan serves: its own calibration windows, and each
 * other sampled past's windows with the past-dependent constants and cache layouts there (`at` gives
 * a program of the plan, lowered, placed or managed, at that past).
 */
function pastRuns(lowered: LoweredModel, calibrationSets: Record<string, Tensor>[], otherPasts: PastSets[]): { at: (p: FheProgram) => FheProgram; runs: Record<string, Float64Array>[] }[] {
  const own = { at: (p: FheProgram) => p, runs: boundRuns(lowered, spreadSample(calibrationSets)).runs };
  return [
    own,
    ...otherPasts.map(({ past, sets }) => {
      const inst = pastInstance(lowered, past);
      const cacheInputs = lowered.cacheInputs.map((c) => ({ ...c, layout: inst.layouts.get(c.fhe)! }));
      return { at: (p: FheProgram) => programAtPast(p, inst), runs: boundRuns({ ...lowered, cacheInputs, past }, spreadSample(sets)).runs };
    }),
  ];
}

/**
 * Every refresh point and cache carry of a placed plan at a level whose modulus fits the 40-bit mask for
 * its bound (a carry is masked one level below its output, after the slot move): else the compile fails
 * here, naming the point, instead of the key holder refusing at run time.
 */
function checkMaskLevels(c: Omit<CompiledModel, 'bounds'>, bounds: CompiledModel['bounds']): void {
  const refreshBound = new Map(bounds.refresh.map((b) => [b.value, b.bound]));
  const outputArg = new Map(c.managed.ops.filter((op) => op.kind === 'output').map((op) => [op.tensor!, op.args[0]!]));
  const check = (what: string, level: number, scale: number, bound: number): void => {
    const bits = level < 0 ? -Infinity : achievableHidingBits(c.params, level, scale, bound);
    if (bits < DEFAULT_HIDING_BITS) {
      throw new FhecError(
        `${what} is masked at level ${level} with bound ${bound.toPrecision(3)}: the modulus there leaves ${bits === -Infinity ? 'no' : bits.toFixed(1)} bits of hiding, ` +
          `not ${DEFAULT_HIDING_BITS} (recompile with a longer chain, or a larger ring degree)`,
      );
    }
  };
  for (const op of c.managed.ops) if (op.kind === 'refresh') check(`refresh of %${op.args[0]!.name}`, op.args[0]!.type.level!, maskedScale(op), refreshBound.get(op.args[0]!.name)!);
  for (const o of c.lowered.outputs.filter((x) => x.kv)) {
    for (const b of o.blocks) {
      const v = outputArg.get(b.fhe)!;
      check(`cache carry of ${o.name}`, v.type.level! - 1, v.type.scale!, bounds.cache[o.name]!.bound);
    }
  }
}

/** Float64 inputs of the lowered model for calibration windows (the client's embedding, the caches). */
function boundRuns(lowered: LoweredModel, calibrationSets: Record<string, Tensor>[]): { runs: Record<string, Float64Array>[]; tableMax: number } {
  const emb = lowered.embedding;
  const table = Float32Array.from(emb.table.load().data as ArrayLike<number>);
  const [vocab, dim] = [emb.table.dims[0]!, emb.table.dims[1]!];
  let tableMax = 0;
  for (const v of table) tableMax = Math.max(tableMax, Math.abs(v));
  const runs = calibrationSets.map((set) => {
    const ids = set[emb.ids];
    if (!ids) throw new FhecError(`a calibration set has no '${emb.ids}'`);
    const rows = embedTokens(table, vocab, dim, ids.data as ArrayLike<number>);
    return modelProgramInputs(emb, rows, lowered.cacheInputs, (n) => set[n]?.data as ArrayLike<number> | undefined, 'a calibration set', lowered.past);
  });
  return { runs, tableMax };
}

function finishPlacement(
  modelFile: string,
  opts: ModelPlanOptions,
  graph: Graph,
  attention: Map<string, AttentionStats>,
  calibrationSets: Record<string, Tensor>[],
  calibrateMs: number,
  otherPasts: PastSets[] = [],
): Omit<CompiledModel, 'bounds'> {
  const costs = opts.costs ?? defaultCostTable();
  const costsName = opts.costsFile ?? 'default';
  const placement = opts.placement ?? 'optimal';
  const common = { model: modelFile, graph, attention, calibrationSets, costs: { table: costs, name: opts.costs ? 'given (--costs)' : 'default (ir/ckks/default-costs.json)' }, placement };
  // Unfixed N: lower first at the smallest ring degree the cost table prices (the search lowers the rest).
  const firstSlots = opts.ringDegree !== undefined ? opts.ringDegree / 2 : Math.min(...costs.ringDegrees.map((r) => r.ringDegree)) / 2;
  const source = canonicalSource(graph, { targets: opts.targets, attention, margin: opts.margin, softmax: opts.softmax, logits: opts.logits, ...(opts.streamWeights ? { weights: 'references' as const } : {}) }, firstSlots, modelFile);
  // Each value's lowest level: where a 40-bit mask fits its own bound (modelFloors).
  const refreshFloor = modelRefreshFloor((l: LoweredModel) => valueMaskNeeds(l, calibrationSets, otherPasts));
  const unit = unitOf<LoweredModel>({ name: graph.name || 'model', slots: firstSlots, constants: new Map(), ops: [] }, { source, refreshFloor });
  unit.costTables.set(costsName, costs);
  const pipeline = opts.fhePipeline ?? modelFhePipeline({ parameters: modelParameterOptions(opts, costsName), placement });
  const passRuns = runFhePipeline(unit, pipeline, { printAfter: opts.printAfter, emit: opts.emit });
  const managed = unit.program;
  if (!unit.lowered || !unit.placed || !managed.chain) throw new FhecError(`the FHE pipeline '${pipeline}' must lower, place refreshes and manage scales`, { field: '--fhe-pipeline' });
  const params = requireParameters(managed, 'compile');
  const predicted = predictProgramLatency(withoutAttributes(managed), params, costs);
  const msOf = (pass: string) => passRuns.filter((r) => r.pass === pass).reduce((a, r) => a + r.ms, 0);
  return {
    ...common,
    lowered: unit.lowered,
    params,
    placed: withoutAttributes(unit.placed),
    managed: withoutAttributes(managed),
    refreshes: numberAttr(managed, 'mgmt.refreshes', 'compile')!,
    greedyRefreshes: numberAttr(managed, 'mgmt.greedy_refreshes', 'compile')!,
    floors: unit.floors ?? uniformFloors(numberAttr(managed, 'mgmt.min_level', 'compile') ?? 1),
    ...(unit.search ? { search: unit.search } : {}),
    predictedMs: predicted.ms,
    ...(predicted.criticalPathMs !== undefined ? { criticalPathMs: predicted.criticalPathMs } : {}),
    ...(predicted.reason ? { predictionNote: predicted.reason } : {}),
    passRuns,
    ms: {
      calibrate: calibrateMs,
      lower: unit.ms.lower,
      place: unit.ms.place,
      manage: msOf('manage-scales'),
      ...(unit.search ? { search: msOf('select-parameters') - unit.ms.lower - unit.ms.place + msOf('lower-canonical') + msOf('place-refresh') } : {}),
    },
  };
}

/** select-parameters' options for a model compile: the search priced with the cost table, or a fixed N. */
function modelParameterOptions(opts: ModelPlanOptions, costsName: string): string | undefined {
  const o: string[] = [];
  if (costsName !== 'default') o.push(`costs=${costsName}`);
  if (opts.ringDegree !== undefined) o.push(`ring-degree=${opts.ringDegree}`);
  if (opts.ringDegree !== undefined && opts.levels !== undefined) o.push(`levels=${opts.levels}`);
  if (opts.scaleBits !== undefined) o.push(`scale-bits=${opts.scaleBits}`);
  return o.length ? o.join(',') : undefined;
}

/** Writes plan JSON + weights sidecar + embedding table sidecar; returns the files written. */
export function writeModelPlan(file: string, c: CompiledModel, report?: unknown): string[] {
  const points: RefreshPointRecord[] = c.bounds.refresh.map((b) => ({
    value: b.value,
    bound: b.bound,
    source: b.source,
    calibratedMax: b.calibratedMax,
    ...(b.proved !== undefined ? { proved: b.proved } : {}),
  }));
  const sidecar = writePlan(file, c.managed, c.params, points);
  const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as { program: string; model?: ModelPlanMeta };
  // The monitor program shares the plan's constants: refer to the same sidecar ranges by name.
  const planConstants = parseFhe(doc.program, file).constants;
  const constants = new Map<string, FheConstant>();
  for (const [name, k] of c.lowered.program.constants) constants.set(name, planConstants.get(name) ?? k);
  const monitor = printFhe({ ...c.lowered.program, constants });
  const emb = c.lowered.embedding;
  const tableFile = file.replace(/\.json$/, '') + '.embedding.bin';
  const tableBytes = new Uint8Array(new Float32Array(emb.table.load().data).buffer);
  writeFileAtomic(tableFile, tableBytes);
  const graph = c.graph;
  const meta: ModelPlanMeta = {
    kind: MODEL_PLAN_KIND,
    source: path.basename(c.model),
    mode: c.lowered.past > 0 ? { decode: c.lowered.past } : { prefill: c.lowered.tokens },
    cacheInputs: c.lowered.cacheInputs,
    tokens: c.lowered.tokens,
    inputs: graph.inputs.map((v) => ({ name: v.name, dtype: v.dtype, dims: (v.shape ?? []).map((d) => (typeof d === 'number' ? d : -1)) })),
    embedding: {
      ids: emb.ids,
      fhe: emb.fhe,
      layout: emb.layout,
      ...(emb.groups ? { groups: emb.groups } : {}),
      vocab: emb.table.dims[0]!,
      dim: emb.table.dims[1]!,
      file: path.basename(tableFile),
      sha256: sha256Hex(tableBytes),
      privacy: WEIGHT_PRIVACY_NOTE,
    },
    outputs: c.lowered.outputs,
    probes: c.lowered.probes,
    monitorProgram: monitor,
    refreshes: c.refreshes,
  };
  if (report !== undefined) meta.report = report;
  doc.model = meta;
  (doc as Record<string, unknown>).analysis = modelAnalysis(c);
  writeFileAtomic(file, JSON.stringify(doc, null, 1));
  return [file, sidecar, tableFile];
}

/** The plan's analysis section (kernels, greedy baseline, candidates, predicted cost and precision) for `fhec report`. */
function modelAnalysis(c: CompiledModel): PlanAnalysis {
  return buildPlanAnalysis({
    lowered: c.lowered.program,
    kernels: c.lowered.ops.map((o) => ({ name: o.name, op: o.op, depth: o.depth, approximations: o.approximations, ops: o.ops })),
    placed: c.placed,
    managed: c.managed,
    params: c.params,
    inputLevel: topLevel(c.params),
    refreshLevels: topLevel(c.params),
    refreshFloor: c.floors.floor,
    placement: c.placement,
    ...(c.search ? { candidates: c.search.candidates } : {}),
    costs: c.costs,
    targets: { ...c.lowered.targets },
    // The noise analysis of a whole model takes longer than the compile itself (15-100 s for model A's
    // prefill on 2 cores) and its bounds diverge past the first softmax (see model-parameters.ts):
    // the report shows the approximations' predicted errors against their targets instead.
    precision: { skip: 'not analysed for canonical models (the noise analysis of a whole model costs more than its compile, and its bounds diverge past the first softmax); see the approximations\' predicted errors against their targets' },
  });
}
