// `fhec compile MODEL --cost-only`: what one prefill or decode step of a model would cost under CKKS,
// without its weights. The canonical graph is lowered with weights known by shape only (no weight is
// read: every diagonal of every product is taken as nonzero, its constant records the weight's
// location), on assumed value intervals instead of calibrated ones (defaults below, or --interval),
// then refreshes are placed, parameters chosen (the cost-driven search, or a fixed N) and the plan is
// priced with the cost table. Nothing is written.
//
// The intervals size the polynomial approximations (their degree, so their depth and cost), and the
// mask bound sizes the refresh masks (the lowest refresh level). Real models vary: the estimate says
// which it assumed, so a calibrated compile can be compared with it.

import { refreshRounds } from '../ir/fhe/refresh-rounds.js';
import { findRepeatedRun, keepRepeats } from '../ir/graph/repeated-blocks.js';
import { FhecError } from '../ir/errors.js';
import type { Graph } from '../ir/graph/types.js';
import type { ValueRange } from '../ir/graph/range.js';
import { defaultCostTable, type CostTable } from '../ir/ckks/cost-table.js';
import { describeParameters, topLevel, type CkksParameters } from '../ir/ckks/params.js';
import type { FheProgram } from '../ir/fhe/types.js';
import { generatorBindings } from '../passes/canonical/specialize.js';
import type { AttentionStats } from '../passes/fhe/lower-canonical/attention-stats.js';
import { lowerCanonicalModel, type LoweredModel } from '../passes/fhe/lower-canonical/lower-model.js';
import { formatCandidates, programKeys, type ParameterSearchResult } from '../passes/fhe/parameters/parameter-search.js';
import { predictLatency } from '../passes/fhe/analysis/predict-latency.js';
import { runFhePipeline } from '../passes/fhe/pipeline/run.js';
import { numberAttr, requireParameters, unitOf, withoutAttributes } from '../passes/fhe/pipeline/unit.js';
import { modelRefreshFloor, searchModelParameters, type MaskNeeds } from './model-parameters.js';
import { loadModel } from './driver.js';
import { importOnnx } from './onnx/import.js';

/** Assumed intervals, by what they size. */
export interface AssumedIntervals {
  /** Mean square of rms_norm's input (sizes 1/sqrt). */
  rms: [number, number];
  /** SwiGLU/SiLU gate input (sizes silu). */
  silu: [number, number];
  /** Attention scores relative to the query's own score (sizes exp, and the row sums' 1/x). */
  scores: [number, number];
  /** Largest |x| a refresh or cache carry masks (sizes the lowest refresh level). */
  mask: [number, number];
}

/**
 * Defaults: wide enough for the shipped models' calibrated ranges (model A and the zoo; e.g. its
 * rms_norm mean squares lie in 0.05..40, gates in -9..7, relative scores in -25..6), so the estimate
 * errs towards deeper approximations rather than shallower.
 */
export const DEFAULT_INTERVALS: AssumedIntervals = { rms: [1e-2, 1e2], silu: [-16, 16], scores: [-32, 8], mask: [-1024, 1024] };

export const INTERVAL_KINDS = Object.keys(DEFAULT_INTERVALS) as (keyof AssumedIntervals)[];

/** `--interval KIND=LO,HI` (repeatable): one assumed interval. */
export function collectInterval(value: string, prev: Partial<AssumedIntervals>): Partial<AssumedIntervals> {
  const m = /^\s*(\w+)\s*=\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)\s*$/.exec(value);
  if (!m || !(INTERVAL_KINDS as string[]).includes(m[1]!)) {
    throw new FhecError(`expects KIND=LO,HI with KIND one of ${INTERVAL_KINDS.join(', ')}, got '${value}'`, { field: '--interval' });
  }
  const [lo, hi] = [Number(m[2]), Number(m[3])];
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || !(lo < hi)) throw new FhecError(`expects finite LO < HI, got '${value}'`, { field: '--interval' });
  if (m[1] === 'rms' && !(lo > 0)) throw new FhecError(`a mean square interval must be positive, got '${value}'`, { field: '--interval' });
  return { ...prev, [m[1]!]: [lo, hi] };
}

export interface CostEstimateOptions {
  prefill?: number;
  decode?: number;
  ringDegree?: number;
  costs?: CostTable;
  costsName?: string;
  intervals?: Partial<AssumedIntervals>;
  /** The larger machine to scale the prediction to (cores). */
  cores?: number;
  /** Lower every repeated block instead of pricing 1 and 2 copies and extrapolating (checks the extrapolation). */
  wholeGraph?: boolean;
}

export interface CostEstimate {
  model: string;
  step: string;
  /** Tokens the step computes (prefill S, decode 1). */
  tokens: number;
  params: CkksParameters;
  intervals: AssumedIntervals;
  ops: Record<string, number>;
  rotations: number;
  refreshes: number;
  /** Refresh round trips: runs of refreshes with no other op between them go to the key holder together. */
  rounds: number;
  keyBytes: number;
  /** Distinct plaintext constants, encoded at their level (what a plaintext cache holds for the step). */
  plaintextBytes: number;
  /** Ciphertext bytes per token: the client's inputs and outputs, and the refresh round trips. */
  bytesPerToken: number;
  predictedMs: number;
  /** Of predictedMs: refresh round trips (the key holder's work and the link), which more cores do not speed up. */
  refreshMs: number;
  /**
   * The longest chain of dependent ops of the step as fhec runs it, priced the same way (refresh round
   * trips on it included): no number of cores runs the step faster (predict-latency.ts).
   */
  criticalPathMs: number;
  cores: number;
  search?: ParameterSearchResult;
  /** The repeated blocks (e.g. decoder layers), priced as `priced` copies and extrapolated to `blocks`. */
  repeated?: { blocks: number; nodesPerBlock: number; priced: [number, number] };
  ms: { load: number; lower: number; place: number };
  /** CPU time of the process so far (user + system), ms: on a shared machine wall time says little. */
  cpuMs: number;
  peakRss: number;
}

function assumedRange(lo: number, hi: number, inner?: Record<string, ValueRange>): ValueRange {
  const pct = { p0_1: lo, p1: lo, p99: hi, p99_9: hi };
  const absMax = Math.max(Math.abs(lo), Math.abs(hi));
  return {
    count: 1, masked: 0, nan: 0, min: lo, max: hi, absMax, mean: (lo + hi) / 2, std: (hi - lo) / 2, pct,
    absPct: { p0_1: 0, p1: 0, p99: absMax, p99_9: absMax }, percentileAccuracy: 0, lo, hi, margin: 0, ...(inner ? { inner } : {}),
  } as ValueRange;
}

/** Annotates the canonical graph with the assumed intervals where the lowering reads calibrated ones. */
export function assumeRanges(graph: Graph, iv: AssumedIntervals): Map<string, AttentionStats> {
  const attention = new Map<string, AttentionStats>();
  for (const n of graph.nodes) {
    if (n.op === 'rms_norm') n.outputs[0]!.range = assumedRange(-Infinity, Infinity, { norm_arg: assumedRange(iv.rms[0], iv.rms[1]) });
    if ((n.op === 'swiglu' || n.op === 'silu') && n.inputs[0]) n.inputs[0].range = assumedRange(iv.silu[0], iv.silu[1]);
    if (n.op === 'attention') {
      const [lo, hi] = iv.scores;
      const rows = (n.inputs[3]?.shape?.[2] as number | undefined) ?? 0;
      const len = rows + ((n.inputs[0]!.shape?.[1] as number) ?? 1);
      attention.set(n.name, {
        relMin: lo, relMax: hi, sumMin: 1, sumMax: len * Math.exp(hi), diagMin: lo, diagMax: -lo, scoreMin: 2 * lo, scoreMax: -lo + hi, rows: 1,
      });
    }
  }
  return attention;
}

/** What pricing one (possibly cut) graph gives: the additive quantities, and what the chain choice found. */
interface Priced {
  params: CkksParameters;
  ops: Record<string, number>;
  refreshes: number;
  rounds: number;
  keyBytes: number;
  plaintextBytes: number;
  ioBytes: number;
  refreshBytes: number;
  predictedMs: number;
  refreshMs: number;
  criticalPathMs: number;
  search?: ParameterSearchResult;
  lowerMs: number;
  placeMs: number;
}

/** Lowers, places refreshes, chooses parameters (searched, or N fixed with the longest chain or `levels`) and prices. */
function priceGraph(graph: Graph, iv: AssumedIntervals, costs: CostTable, fixed?: { ringDegree: number; levels?: number }): Priced {
  const attention = assumeRanges(graph, iv);
  const lower = (slots: number): LoweredModel => lowerCanonicalModel(graph, { slots, attention, weights: 'shapes' });
  const bound = Math.max(Math.abs(iv.mask[0]), Math.abs(iv.mask[1]));
  let params: CkksParameters;
  let managed: FheProgram;
  let refreshes: number;
  let search: ParameterSearchResult | undefined;
  let lowerMs: number;
  let placeMs: number;
  if (fixed === undefined) {
    const s = searchModelParameters(lower, { costs, placement: 'greedy', maskNeeds: (l) => uniformMaskNeeds(l, bound) });
    ({ params, managed, refreshes, search } = s);
    lowerMs = s.ms.lower;
    placeMs = s.ms.place + s.ms.search;
  } else {
    // Fixed N: the same passes without the search (select-parameters takes the longest chain N holds).
    const unit = unitOf<LoweredModel>({ name: 'model', slots: 0, constants: new Map(), ops: [] }, {
      source: { kind: 'canonical', name: 'model', lower, defaultSlots: fixed.ringDegree / 2 },
      refreshFloor: modelRefreshFloor<LoweredModel>((l) => uniformMaskNeeds(l, bound)),
    });
    const levels = fixed.levels !== undefined ? `,levels=${fixed.levels}` : '';
    runFhePipeline(unit, `select-parameters{ring-degree=${fixed.ringDegree}${levels}},place-refresh{strategy=greedy}`);
    // Scale management builds a new program: the lowering (and its copy) is no longer needed.
    unit.lowerings.clear();
    unit.lowered = undefined;
    runFhePipeline(unit, 'manage-scales');
    params = requireParameters(unit.program, 'cost-only');
    managed = withoutAttributes(unit.program);
    refreshes = numberAttr(unit.program, 'mgmt.refreshes', 'cost-only')!;
    lowerMs = unit.ms.lower;
    placeMs = unit.ms.place;
  }
  const keys = programKeys(managed, params);
  const pred = predictLatency(managed, costs, { rotationKeySteps: keys.rotationKeySteps });
  const ops: Record<string, number> = {};
  let plaintextBytes = 0;
  let ioBytes = 0;
  const word = 8 * params.ringDegree;
  for (const op of managed.ops) {
    ops[op.kind] = (ops[op.kind] ?? 0) + 1;
    const level = op.result?.type.level ?? op.args[0]?.type.level ?? 0;
    if (op.kind === 'encode') plaintextBytes += word * (level + 1);
    if (op.kind === 'input' || op.kind === 'output') ioBytes += 2 * word * (level + 1);
  }
  return {
    params, ops, refreshes, rounds: refreshRounds(managed).count, keyBytes: keys.keyBytes, plaintextBytes, ioBytes,
    refreshBytes: pred.refreshBytes, predictedMs: pred.totalMs, refreshMs: pred.refreshMs, criticalPathMs: pred.criticalPathMs, ...(search ? { search } : {}), lowerMs, placeMs,
  };
}

/**
 * Copies of the repeated blocks a cost estimate lowers: BASE and BASE + 1, so that what follows the
 * run (an LM head) already sits at the levels a long run leaves it at (with 1 copy it sits higher:
 * on Llama shapes 1 copy's head encodes its weights at a higher level than 2 or more copies' do).
 */
const BASE_COPIES = 2;

/**
 * The price of `count` copies of the repeated blocks from the prices with BASE_COPIES (`one`) and one
 * more (`two`): each further copy adds what the last added. Keys are a set of rotation steps (the
 * same for every copy): the larger of the two.
 */
function extrapolate(one: Priced, two: Priced, count: number): Priced {
  const at = (a: number, b: number) => a + (count - BASE_COPIES) * (b - a);
  const ops: Record<string, number> = {};
  for (const k of new Set([...Object.keys(one.ops), ...Object.keys(two.ops)])) ops[k] = at(one.ops[k] ?? 0, two.ops[k] ?? 0);
  return {
    ...two, ops, refreshes: at(one.refreshes, two.refreshes), rounds: at(one.rounds, two.rounds), keyBytes: Math.max(one.keyBytes, two.keyBytes),
    plaintextBytes: at(one.plaintextBytes, two.plaintextBytes), ioBytes: at(one.ioBytes, two.ioBytes), refreshBytes: at(one.refreshBytes, two.refreshBytes),
    predictedMs: at(one.predictedMs, two.predictedMs), refreshMs: at(one.refreshMs, two.refreshMs),
    // The blocks run one after another, so each further copy lengthens the longest chain by what the last did.
    criticalPathMs: at(one.criticalPathMs, two.criticalPathMs),
    lowerMs: one.lowerMs + two.lowerMs, placeMs: one.placeMs + two.placeMs,
  };
}

export function estimateModelCost(modelFile: string, opts: CostEstimateOptions = {}): CostEstimate {
  if (opts.decode !== undefined && opts.prefill !== undefined) throw new FhecError('give --prefill S or --decode P, not both', { field: '--decode' });
  const iv: AssumedIntervals = { ...DEFAULT_INTERVALS, ...opts.intervals };
  const t0 = performance.now();
  const imported = importOnnx(modelFile).graph;
  const shape = opts.decode !== undefined ? ({ kind: 'decode', past: opts.decode } as const) : ({ kind: 'prefill', sequence: opts.prefill ?? 1 } as const);
  const load = () => loadModel(modelFile, { canonical: true, bindings: generatorBindings(imported, shape), verifyEach: false }).graph;
  const graph = load();
  const run = opts.wholeGraph ? undefined : findRepeatedRun(graph);
  const t1 = performance.now();
  const costs = opts.costs ?? defaultCostTable();
  const fixed = opts.ringDegree !== undefined ? { ringDegree: opts.ringDegree } : undefined;
  let priced: Priced;
  let loadMs = t1 - t0;
  const extrapolated = run !== undefined && run.count > BASE_COPIES + 1;
  if (!extrapolated) priced = priceGraph(graph, iv, costs, fixed);
  else {
    // The repeated blocks (decoder layers) priced as BASE_COPIES + 1 copies, then BASE_COPIES on the chain that chose.
    keepRepeats(graph, run, BASE_COPIES + 1);
    const two = priceGraph(graph, iv, costs, fixed);
    const t2 = performance.now();
    const g1 = load();
    keepRepeats(g1, run, BASE_COPIES);
    loadMs += performance.now() - t2;
    const one = priceGraph(g1, iv, costs, { ringDegree: two.params.ringDegree, levels: topLevel(two.params) });
    priced = extrapolate(one, two, run.count);
  }
  const tokens = shape.kind === 'prefill' ? shape.sequence : 1;
  return {
    model: modelFile,
    step: shape.kind === 'prefill' ? `prefill of ${shape.sequence} token(s)` : `decode of one token after ${shape.past}`,
    tokens,
    params: priced.params,
    intervals: iv,
    ops: priced.ops,
    rotations: priced.ops['rotate'] ?? 0,
    refreshes: priced.refreshes,
    rounds: priced.rounds,
    keyBytes: priced.keyBytes,
    plaintextBytes: priced.plaintextBytes,
    bytesPerToken: (priced.ioBytes + priced.refreshBytes) / tokens,
    predictedMs: priced.predictedMs,
    refreshMs: priced.refreshMs,
    criticalPathMs: priced.criticalPathMs,
    cores: opts.cores ?? 64,
    ...(priced.search ? { search: priced.search } : {}),
    ...(extrapolated ? { repeated: { blocks: run.count, nodesPerBlock: run.period, priced: [BASE_COPIES, BASE_COPIES + 1] } } : {}),
    ms: { load: loadMs, lower: priced.lowerMs, place: priced.placeMs },
    cpuMs: (process.cpuUsage().user + process.cpuUsage().system) / 1000,
    peakRss: process.resourceUsage().maxRSS * 1024,
  };
}

const GiB = 2 ** 30;

/**
 * The prediction on a machine with `cores` cores: the cost table is one core's; the ops of a step
 * (the products' diagonals, the heads, the blocks) are independent in the thousands, so their time is
 * taken to divide by the core count, while refresh round trips (the link and the key holder) do not;
 * and never below the step's critical path (its longest chain of dependent ops), which no core count
 * shortens. A model of the scaling, not a measurement.
 */
export function scaledMs(e: Pick<CostEstimate, 'predictedMs' | 'refreshMs' | 'criticalPathMs'>, cores: number): number {
  return Math.max(e.criticalPathMs, (e.predictedMs - e.refreshMs) / cores + e.refreshMs);
}

export function formatCostEstimate(e: CostEstimate, costsName: string): string[] {
  const perToken = (ms: number) => `${(ms / 1000 / e.tokens).toFixed(1)} s`;
  const kinds = Object.entries(e.ops).sort((a, b) => b[1] - a[1]);
  const total = kinds.reduce((s, [, n]) => s + n, 0);
  const lines = [
    `cost estimate for ${e.model}, ${e.step} (weights not read; assumed intervals, not calibrated: ` +
      `rms_norm mean square ${e.intervals.rms.join('..')}, silu input ${e.intervals.silu.join('..')}, relative scores ${e.intervals.scores.join('..')}, mask bound ${Math.max(...e.intervals.mask.map(Math.abs))})`,
  ];
  if (e.repeated) {
    lines.push(`${e.repeated.blocks} repeated blocks of ${e.repeated.nodesPerBlock} canonical ops: priced as ${e.repeated.priced.join(' and ')} copies, extrapolated (each further copy adds what the last added); --whole-graph lowers them all`);
  }
  if (e.search) lines.push(formatCandidates(e.search));
  lines.push(
    `parameters ${describeParameters(e.params)}`,
    '',
    '| quantity | value |',
    '|---|---:|',
    `| ops | ${total.toLocaleString('en-US')} (${kinds.map(([k, n]) => `${k} ${n.toLocaleString('en-US')}`).join(', ')}) |`,
    `| rotations | ${e.rotations.toLocaleString('en-US')} |`,
    `| refreshes | ${e.refreshes.toLocaleString('en-US')} in ${e.rounds.toLocaleString('en-US')} round trips |`,
    `| key memory (Galois + relinearization) | ${(e.keyBytes / GiB).toFixed(2)} GiB |`,
    `| plaintext memory (every encoded constant) | ${(e.plaintextBytes / GiB).toFixed(1)} GiB |`,
    `| bytes per token (client and key holder traffic) | ${(e.bytesPerToken / 2 ** 20).toFixed(1)} MiB |`,
    `| predicted per token, this machine (1 core, ${costsName}) | ${perToken(e.predictedMs)} (refresh round trips ${perToken(e.refreshMs)}) |`,
    `| critical path per token (longest chain of dependent ops; no number of cores goes below it) | ${perToken(e.criticalPathMs)} |`,
    `| predicted per token, ${e.cores} cores (ops divided over cores, round trips not; at least the critical path) | ${perToken(scaledMs(e, e.cores))} |`,
    '',
    `estimated in ${((e.ms.load + e.ms.lower + e.ms.place) / 1000).toFixed(1)} s (graph ${(e.ms.load / 1000).toFixed(1)} s, lowering ${(e.ms.lower / 1000).toFixed(1)} s, ` +
      `placement and pricing ${(e.ms.place / 1000).toFixed(1)} s; ${(e.cpuMs / 1000).toFixed(1)} CPU-s in this process), peak memory ${(e.peakRss / GiB).toFixed(2)} GiB`,
  );
  return lines;
}

/** The masks' needs when one interval bound covers every value: that bound for each, the KV-cache outputs carried. */
export function uniformMaskNeeds(l: LoweredModel, bound: number): MaskNeeds {
  const bounds = new Map<string, number>();
  for (const op of l.program.ops) if (op.result?.type.kind === 'ct') bounds.set(op.result.name, bound);
  const outputArg = new Map(l.program.ops.filter((op) => op.kind === 'output').map((op) => [op.tensor!, op.args[0]!.name]));
  return { bounds, carried: new Set(l.outputs.filter((o) => o.kv).flatMap((o) => o.blocks.map((b) => outputArg.get(b.fhe)!))) };
}
