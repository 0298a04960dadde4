// The canonical-model branches of `fhec compile` and `fhec run` (the verbs in compiler/commands/ call
// these when given --calibration, or a plan with a `model` section):
//   fhec compile MODEL.onnx -o PLAN.json --calibration FILE [--prefill S | --decode P] [--report] [--max-windows N]
//     [--ring-degree N] [--costs FILE]
//   fhec run PLAN.json --backend sim|seal --inputs IN.json [--out OUT.json]

import type { FheProgram } from '../ir/fhe/types.js';
import { externalRegions } from '../ir/weights/recipe.js';
import { weightStreamSummary } from '../ir/weights/cache.js';
import type { ExecutionTrace, RunResult } from '../runtime/ckks/execute.js';
import * as fs from 'node:fs';
import { FhecError } from '../ir/errors.js';
import type { Tensor } from '../ir/tensor.js';
import { tensorsToJson } from '../ir/tensor-json.js';
import type { CkksBackend } from '../runtime/backend.js';
import { describeParameters, topLevel } from '../ir/ckks/params.js';
import { refreshRounds } from '../ir/fhe/refresh-rounds.js';
import { defaultCostTable, loadCostTable, parseLink, withLink, type CostTable } from '../ir/ckks/cost-table.js';
import { RING_DEGREES } from '../ir/ckks/security.js';
import { formatCandidates } from '../passes/fhe/parameters/parameter-search.js';
import { formatPassRuns } from '../passes/pass-manager.js';
import { writeFileAtomic } from '../runtime/plan/files.js';
import { formatMasksAhead } from '../runtime/generate/summary-lines.js';
import { loadModelPlan, MODEL_PLAN_KIND, ModelSession } from '../runtime/model-session.js';
import { compileModel, writeModelPlan } from './model-plan.js';
import { SOFTMAX_METHODS, type SoftmaxMethod } from '../passes/fhe/lower-canonical/softmax-plan.js';
import { formatModelReport, modelReport } from './model-report.js';
import { formatAccuracy, measureAccuracy } from './accuracy.js';
import { simBackend } from '../runtime/sim/backend.js';
import type { RefreshAudit } from '../runtime/refresh/audit.js';
import type { MaskPolicy } from '../runtime/refresh/mask.js';

export interface ModelCompileFlags {
  output: string;
  calibration: string;
  prefill?: number;
  decode?: number;
  report?: boolean;
  maxWindows?: number;
  /** Reference linear weights in the ONNX external data instead of storing them (the runtime streams them). */
  streamWeights?: boolean;
  /** The model's Hugging Face tokenizer folder for text calibration. */
  tokenizer?: string;
  placement?: 'optimal' | 'greedy';
  /** Fixes N; without it the parameter search chooses N and the chain. */
  ringDegree?: number;
  /** Cost table file for the search (default: the shipped table). */
  costs?: string;
  /** --link: the link to the key holder the search prices refreshes for (default: the table's). */
  link?: string;
  /** Softmax method (squaring or shifted). */
  softmax?: string;
  /** The FHE pipeline instead of the default (passes/fhe/registry.ts, modelFhePipeline). */
  fhePipeline?: string;
  /** FHE passes after which to print the IR, or 'all'. */
  printAfter?: ReadonlySet<string> | 'all';
  /** Per-pass timing to stderr. */
  timing?: boolean;
  /** Write the managed program's text (as stored in the plan) here. */
  emitFheIr?: string;
}

/** The cost table for --costs (default: the shipped one) with --link's link, if given; undefined for neither. */
export function tableWithLink(costsFile: string | undefined, link: string | undefined): CostTable | undefined {
  if (costsFile === undefined && link === undefined) return undefined;
  const table = costsFile !== undefined ? loadCostTable(costsFile) : defaultCostTable();
  return link !== undefined ? withLink(table, parseLink(link)) : table;
}

/** What a --stream-weights plan references: diagonals, matrices, and the data regions they read. */
export function streamedWeightsLine(program: FheProgram): string {
  const diagonals = [...program.constants.values()].filter((c) => c.data.kind === 'diagonal');
  const stored = [...program.constants.values()].filter((c) => c.data.kind === 'dense' && c.name.startsWith('diag')).length;
  if (diagonals.length === 0) return 'streamed weights: none (no linear weight is in ONNX external data): the plan holds every weight';
  const matrices = new Set<number>();
  const regions = new Map<string, number>();
  for (const c of diagonals) {
    if (c.data.kind !== 'diagonal') continue;
    matrices.add(c.data.matrix.id);
    for (const r of externalRegions(c.data.matrix.source!.weight)) regions.set(`${r.file}@${r.offset}`, r.length);
  }
  const bytes = [...regions.values()].reduce((a, b) => a + b, 0);
  return (
    `streamed weights: ${diagonals.length} diagonals of ${matrices.size} matrix blocks reference ${regions.size} regions ` +
    `(${(bytes / 2 ** 20).toFixed(1)} MiB) of the model's external data; ${stored} diagonals of weights stored inline in the model are in the plan`
  );
}

/**
 * Compiles and writes the plan; returns the lines to print. With --report, also runs the plan on the
 * simulator over one calibration window (prefill plans on a .txt calibration) and reports its logit error.
 */
export async function compileModelCommand(model: string, flags: ModelCompileFlags): Promise<string[]> {
  if (flags.decode !== undefined && flags.prefill !== undefined) throw new FhecError('give --prefill S or --decode P, not both', { field: '--decode' });
  if (flags.ringDegree !== undefined && !(RING_DEGREES as readonly number[]).includes(flags.ringDegree)) {
    throw new FhecError(`--ring-degree must be one of ${RING_DEGREES.join(', ')}, got ${flags.ringDegree}`, { field: '--ring-degree' });
  }
  const costs = tableWithLink(flags.costs, flags.link);
  if (flags.softmax !== undefined && !(SOFTMAX_METHODS as readonly string[]).includes(flags.softmax)) {
    throw new FhecError(`--softmax must be one of ${SOFTMAX_METHODS.join(', ')}, got ${flags.softmax}`, { field: '--softmax' });
  }
  const c = compileModel(model, {
    softmax: flags.softmax as SoftmaxMethod | undefined,
    calibration: flags.calibration,
    prefill: flags.prefill,
    decode: flags.decode,
    maxWindows: flags.maxWindows,
    ...(flags.streamWeights ? { streamWeights: true } : {}),
    ...(flags.tokenizer !== undefined ? { tokenizer: flags.tokenizer } : {}),
    placement: flags.placement,
    ringDegree: flags.ringDegree,
    costs,
    ...(flags.costs !== undefined ? { costsFile: flags.costs } : {}),
    ...(flags.fhePipeline !== undefined ? { fhePipeline: flags.fhePipeline } : {}),
    ...(flags.printAfter !== undefined ? { printAfter: flags.printAfter } : {}),
  });
  if (flags.timing && c.passRuns) process.stderr.write(`${formatPassRuns(c.passRuns)}\n`);
  const report = flags.report ? modelReport(c) : undefined;
  const files = writeModelPlan(flags.output, c, report);
  if (flags.emitFheIr) writeFileAtomic(flags.emitFheIr, (JSON.parse(fs.readFileSync(flags.output, 'utf8')) as { program: string }).program);
  const lines = [
    `compiled ${model} (${c.lowered.past > 0 ? `decode of one token after ${c.lowered.past}, encrypted KV cache` : `prefill of ${c.lowered.tokens} tokens`}) -> ${files.join(', ')}`,
  ];
  if (flags.streamWeights) lines.push(streamedWeightsLine(c.managed));
  else if (c.graph.constants.some((v) => v.constant?.recipe?.() !== undefined)) {
    const sidecar = fs.statSync(flags.output.replace(/\.json$/, '') + '.weights.bin').size;
    lines.push(`the plan holds its weights (${(sidecar / 2 ** 20).toFixed(1)} MiB of packed diagonals); the model's weights are in external data: --stream-weights would reference them instead`);
  }
  const table = `${flags.costs ?? 'the shipped cost table'}${flags.link ? `, --link ${flags.link}` : ''}`;
  const predicted = c.predictedMs !== undefined ? `predicted ${(c.predictedMs / 1000).toFixed(2)} s` : `no latency prediction (${c.predictionNote})`;
  const critical = c.criticalPathMs !== undefined ? `, critical path ${(c.criticalPathMs / 1000).toFixed(2)} s` : '';
  if (c.search) {
    const considered = c.search.candidates.filter((x) => x.bitSizes.length > 0).length;
    lines.push(
      `parameter search (${table}; ${considered} chains priced in ${((c.ms.lower + c.ms.place + (c.ms.search ?? 0)) / 1000).toFixed(1)} s):`,
      formatCandidates(c.search),
      `chosen: N=${c.params.ringDegree}, ${topLevel(c.params)} levels, ${c.refreshes} refreshes, ${predicted}${critical} (lowest predicted latency; ` +
        `each chain priced with the refresh placement it gets; the greedy placement would need ${c.greedyRefreshes} refreshes here)`,
    );
  } else lines.push(`ring degree fixed at N=${c.params.ringDegree}: the longest chain it holds, ${c.refreshes} refreshes, ${predicted} (${table})`);
  lines.push(
    `parameters ${describeParameters(c.params)}`,
    `${c.lowered.program.ops.length} ops lowered, ${c.refreshes} refreshes in ${refreshRounds(c.managed).count} rounds${c.lowered.past > 0 ? ' (one more per decode token for the cache carry)' : ''}, ${c.managed.ops.length} ops managed; ` +
      `the client embeds tokens (table in ${files[2]}), logits come back encrypted`,
  );
  if (report) {
    lines.push('', ...formatModelReport(report));
    if (c.lowered.past === 0 && /\.txt$/i.test(flags.calibration)) {
      const fig = await measureAccuracy(model, loadModelPlan(flags.output), simBackend, flags.calibration, { windows: 1, ...(flags.tokenizer !== undefined ? { tokenizer: flags.tokenizer } : {}) });
      lines.push('', `end to end under sim (CKKS noise, refreshes, approximations) on ${formatAccuracy(fig)}`);
    }
  }
  return lines;
}

/** True when the plan JSON carries a canonical model section (so `fhec run` takes this path). */
export function isModelPlanFile(file: string): boolean {
  try {
    const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as { model?: { kind?: string } };
    return doc.model?.kind === MODEL_PLAN_KIND;
  } catch {
    return false;
  }
}

export interface ModelRunOutput {
  json: string;
  lines: string[];
  run: RunResult;
}

export interface ModelRunFlags {
  trace?: ExecutionTrace;
  audit?: RefreshAudit;
  mask?: Partial<MaskPolicy>;
  workers?: number;
  maskThread?: boolean;
  keyHolderRotations?: boolean;
}

export async function runModelCommand(planFile: string, inputs: Record<string, Tensor>, backend: CkksBackend, flags: ModelRunFlags = {}): Promise<ModelRunOutput> {
  const mp = loadModelPlan(planFile);
  const session = new ModelSession(mp, backend, { onWarning: (w) => process.stderr.write(`warning: ${w.message}\n`), ...flags });
  const r = await session.run(inputs);
  const ops = [...r.run.execution.ops.values()].reduce((n, s) => n + s.count, 0);
  const lines = [
    r.run.label,
    `${ops} ops in ${(r.run.execution.totalMs / 1000).toFixed(2)} s` + (r.run.refresh ? `, refreshes ${JSON.stringify(r.run.refresh)}` : ''),
    ...formatMasksAhead(r.run.masks ? [{ masksAhead: r.run.masks }] : []),
    ...r.warnings.map((w) => `range warning: ${w.message}`),
    ...[weightStreamSummary()].filter((l) => l !== undefined),
  ];
  const json = JSON.stringify({ label: r.run.label, backend: backend.name, ...tensorsToJson(r.outputs, 'outputs'), warnings: r.warnings.map((w) => w.message) });
  return { json, lines, run: r.run };
}
