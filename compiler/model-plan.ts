// Canonical model + calibration -> plan. Loads the model raised to the canonical IR and specialized to
// a prefill of S tokens, calibrates it (value ranges, and the attention statistics the encrypted
// softmax needs), lowers it (passes/fhe/lower-canonical), places refreshes for the chosen chain,
// manages scales, and writes the plan with a `model` section: the model's input/output names and how
// they map to ciphertexts, the client-side embedding table (a sidecar), the approximation probes and
// the unmanaged program the sim monitor re-evaluates.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { FhecError } from '../ir/errors.js';
import { parseFhe } from '../ir/fhe/parse.js';
import { printFhe } from '../ir/fhe/print.js';
import type { FheConstant, FheProgram } from '../ir/fhe/types.js';
import type { Graph } from '../ir/graph/types.js';
import { generatorBindings } from '../passes/canonical/specialize.js';
import { collectAttentionStats, type AttentionStats } from '../passes/fhe/lower-canonical/attention-stats.js';
import { lowerCanonicalModel, type ErrorTargets, type LoweredModel } from '../passes/fhe/lower-canonical/lower-model.js';
import { manageScales } from '../passes/fhe/manage.js';
import { placeRefreshes } from '../passes/fhe/refresh-placement.js';
import { placeRefreshesGreedy } from '../passes/fhe/refresh-greedy.js';
import { fheChain, selectParameters, topLevel, type CkksParameters } from '../ir/ckks/params.js';
import { MODEL_PLAN_KIND, type ModelPlanMeta } from '../runtime/model-session.js';
import { writePlan } from '../runtime/plan/plan.js';
import { inputsForTokens, loadCalibrationSets, windowStarts } from './calibration-data.js';
import { Calibrator, DEFAULT_MARGIN } from '../passes/calibrate/calibrate.js';
import { runGraph } from '../runtime/reference/interpreter.js';
import { Tensor } from '../ir/tensor.js';
import { calibrateModel } from './commands/calibrate.js';
import { loadModel } from './driver.js';
import { importOnnx } from './onnx/import.js';

export interface ModelPlanOptions {
  calibration: string;
  /** Prefill length S (default: the calibration set's length for JSON sets, else 16). */
  prefill?: number;
  /** Decode of one token after P cached ones (text calibration: windows of P+1 tokens, the first P prefilled). */
  decode?: number;
  /** Text calibration: at most this many windows (default: all). */
  maxWindows?: number;
  margin?: number;
  targets?: Partial<ErrorTargets>;
  ringDegree?: number;
  scaleBits?: number;
  /** Refresh placement: 'optimal' (DP, falls back to greedy when larger) or 'greedy' (default). */
  placement?: 'optimal' | 'greedy';
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
  ms: { calibrate: number; lower: number; place: number; manage: number };
}

export const WEIGHT_PRIVACY_NOTE =
  'The client holds the embedding table and looks tokens up itself: the evaluator receives encrypted embeddings, ' +
  'so the token ids never reach it, and the embedding weights are disclosed to the client. All other weights ' +
  'stay with the evaluator as plaintexts; the logits come back encrypted under the client key.';

/** Largest level count the ring degree holds at 128-bit security. */
function paramsFor(ringDegree: number, scaleBits: number): CkksParameters {
  for (let L = 40; L >= 1; L--) {
    try {
      return selectParameters({ depth: L, ringDegree, scaleBits });
    } catch {
      // fewer levels
    }
  }
  throw new FhecError(`ring degree ${ringDegree} holds no level at ${scaleBits}-bit scale`);
}

/**
 * Calibration sets for a decode step after P tokens: each text window of P+1 tokens is prefilled
 * (P tokens, by the reference interpreter on the model itself) and its present K/V become the past.
 */
function decodeCalibrationSets(modelFile: string, imported: Graph, calibration: string, P: number, maxWindows?: number): Record<string, Tensor>[] {
  if (path.extname(calibration).toLowerCase() !== '.txt') throw new FhecError('--decode calibration needs a text file (windows are prefilled to make the cache)', { file: calibration });
  const text = fs.readFileSync(calibration);
  const prefill = loadModel(modelFile, { bindings: generatorBindings(imported, { kind: 'prefill', sequence: P }), verifyEach: false }).graph;
  const decode = loadModel(modelFile, { bindings: generatorBindings(imported, { kind: 'decode', past: P }), verifyEach: false }).graph;
  const sets: Record<string, Tensor>[] = [];
  // Each window gives one decode row; overlapping windows (stride (P+1)/2) double the rows the exp and
  // 1/x intervals are fitted on, for twice the calibration time.
  for (const w of windowStarts(text.length, { window: P + 1, stride: Math.max(1, Math.ceil((P + 1) / 2)), maxWindows })) {
    if (w.length !== P + 1) continue;
    const tokens = Array.from(text.subarray(w.start, w.start + P + 1));
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
  const window = { window: S, maxWindows: opts.maxWindows };
  const cal = calibrateModel(modelFile, opts.calibration, { canonical: true, margin: opts.margin, ...(isText ? window : {}) });
  const bindings = generatorBindings(imported, { kind: 'prefill', sequence: S });
  // Calibrated ranges live on the graph specialized to the calibration shape; copy them by name.
  let graph = cal.graph;
  const calIds = cal.graph.inputs.find((v) => v.name === 'input_ids');
  if (!calIds || calIds.shape?.[1] !== S) {
    graph = loadModel(modelFile, { canonical: true, bindings, verifyEach: false }).graph;
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
  return finishCompile(modelFile, opts, graph, attention, calibrationSets, performance.now() - t0);
}

function compileDecode(modelFile: string, opts: ModelPlanOptions, P: number): CompiledModel {
  const t0 = performance.now();
  const imported = importOnnx(modelFile).graph;
  if (!Number.isInteger(P) || P < 1) throw new FhecError(`--decode expects a past length >= 1, got ${P}`, { field: '--decode' });
  const graph = loadModel(modelFile, { canonical: true, bindings: generatorBindings(imported, { kind: 'decode', past: P }), verifyEach: false }).graph;
  const sets = decodeCalibrationSets(modelFile, imported, opts.calibration, P, opts.maxWindows);
  if (sets.length === 0) throw new FhecError(`the calibration text has no window of ${P + 1} tokens`, { file: opts.calibration });
  const calibrator = new Calibrator({ margin: opts.margin ?? DEFAULT_MARGIN });
  for (const s of sets) calibrator.observe(graph, s);
  calibrator.annotate(graph);
  const attention = collectAttentionStats(graph, sets);
  return finishCompile(modelFile, opts, graph, attention, sets, performance.now() - t0);
}

function finishCompile(
  modelFile: string,
  opts: ModelPlanOptions,
  graph: Graph,
  attention: Map<string, AttentionStats>,
  calibrationSets: Record<string, Tensor>[],
  calibrateMs: number,
): CompiledModel {
  const t1 = performance.now();
  const params = paramsFor(opts.ringDegree ?? 32768, opts.scaleBits ?? 40);
  const lowered = lowerCanonicalModel(graph, { slots: params.ringDegree / 2, targets: opts.targets, attention, margin: opts.margin });
  const t2 = performance.now();
  // Refreshes happen at level >= 1: the key holder's mask needs headroom above the scale that
  // level 0 (the first prime alone) does not leave.
  const L = topLevel(params) - 1;
  const greedy = placeRefreshesGreedy(lowered.program, L);
  let placed = greedy.program;
  let refreshes = greedy.refreshed.length;
  if (opts.placement === 'optimal') {
    const best = placeRefreshes(lowered.program, { levels: L, maxStates: 2000 });
    if (best.count <= refreshes) {
      placed = best.program;
      refreshes = best.count;
    }
  }
  const t3 = performance.now();
  const managed = manageScales(placed, { chain: fheChain(params), topScale: params.scale, inputLevel: L + 1 });
  const t4 = performance.now();
  return {
    model: modelFile,
    graph,
    lowered,
    params,
    placed,
    managed,
    refreshes,
    greedyRefreshes: greedy.refreshed.length,
    attention,
    calibrationSets,
    ms: { calibrate: calibrateMs, lower: t2 - t1, place: t3 - t2, manage: t4 - t3 },
  };
}

/** Writes plan JSON + weights sidecar + embedding table sidecar; returns the files written. */
export function writeModelPlan(file: string, c: CompiledModel, report?: unknown): string[] {
  const sidecar = writePlan(file, c.managed, c.params);
  const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as { program: string; model?: ModelPlanMeta };
  // The monitor program shares the plan's constants: refer to the same sidecar ranges by name.
  const planConstants = parseFhe(doc.program, file).constants;
  const constants = new Map<string, FheConstant>();
  for (const [name, k] of c.lowered.program.constants) constants.set(name, planConstants.get(name) ?? k);
  const monitor = printFhe({ ...c.lowered.program, constants });
  const emb = c.lowered.embedding;
  const tableFile = file.replace(/\.json$/, '') + '.embedding.bin';
  fs.writeFileSync(tableFile, Buffer.from(new Float32Array(emb.table.data).buffer));
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
      vocab: emb.table.dims[0]!,
      dim: emb.table.dims[1]!,
      file: path.basename(tableFile),
      privacy: WEIGHT_PRIVACY_NOTE,
    },
    outputs: c.lowered.outputs,
    probes: c.lowered.probes,
    monitorProgram: monitor,
    refreshes: c.refreshes,
  };
  if (report !== undefined) meta.report = report;
  doc.model = meta;
  fs.writeFileSync(file, JSON.stringify(doc, null, 1));
  return [file, sidecar, tableFile];
}
