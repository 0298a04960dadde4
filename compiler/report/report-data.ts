// What `fhec report` shows, gathered from the files `fhec compile` and `fhec run/generate --trace`
// wrote: the plan's program (levels, op counts), its analysis section (kernels, greedy baseline,
// candidates, predictions, precision), its model section (approximations), and the run trace. A
// generation plan is reported through its first prefill step plan (the others are listed), with the
// parameter search its steps share. Everything here is plain data: render-html.ts draws it.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { FhecError } from '../../ir/errors.js';
import { parseFhe } from '../../ir/fhe/parse.js';
import type { FheProgram } from '../../ir/fhe/types.js';
import { describeParameters, makeParameters, type CkksParameters } from '../../ir/ckks/params.js';
import { programKeys } from '../../passes/fhe/parameters/parameter-search.js';
import { GENERATION_PLAN_KIND, readGenerationManifest } from '../../runtime/generate/manifest.js';
import { MODEL_PLAN_KIND, modelSectionSchema, type ModelPlanMeta } from '../../runtime/plan/model-schema.js';
import { expandOpKernels, parameterSearchSchema, parseAnalysis, PARAMETER_SEARCH_FILE, type CandidateRow, type PlanAnalysis } from '../../runtime/plan/analysis-schema.js';
import { checkPlanVersion, readPlanJson } from '../../runtime/plan/plan.js';
import { parseWith } from '../../runtime/plan/validate.js';
import { readRunTrace, type RunTrace, type TraceStep } from '../../runtime/trace/run-trace.js';
import { splitByStages } from '../../runtime/trace/stage-split.js';

/** Op kinds counted per kernel and layer. */
export const COUNTED = ['rotations', 'key switches', 'ct x ct', 'pt x ct', 'additions', 'rescales', 'refreshes'] as const;
export type Counted = (typeof COUNTED)[number];

export interface LevelPoint {
  op: number;
  level: number;
  kernel: string;
  layer: string;
  refresh: boolean;
}

export interface KernelRow {
  kernel: string;
  op: string;
  layer: string;
  ops: number;
  counts: Record<Counted, number>;
  greedyRefreshes: number;
  predictedMs?: number;
  measuredMs?: number;
}

export interface ReportData {
  title: string;
  planFile: string;
  kind: 'arithmetic' | 'model' | 'generation';
  /** The step plan shown in detail (generation plans). */
  step?: string;
  steps: { name: string; ops: number; refreshes: number; predictedMs?: number; measuredMs?: number }[];
  parameters: { text: string; ringDegree: number; slots: number; levels: number; bitSizes: number[]; scale: number; insecure: boolean; keyBytes?: number; galoisKeys: number };
  summary: { ops: number; ctValues: number; refreshes: number; greedyRefreshes?: number; placement: string; predictedMs?: number; measuredMs?: number };
  levels: LevelPoint[];
  kernels: KernelRow[];
  predictedByKind: { kind: string; count: number; ms: number }[];
  measuredByKind: { kind: string; count: number; ms: number }[];
  precision: { op: number; bits: number; typicalBits: number; kernel: string }[];
  precisionOutputs: { tensor: string; bits: number | null; typicalBits: number | null; requiredBits?: number }[];
  notes: string[];
  candidates: (CandidateRow & { chosen: boolean })[];
  candidatesFrom?: string;
  approximations: { op: string; role: string; interval: [number, number]; depth: number; predictedMaxError: number; describe?: string }[];
  targets?: Record<string, number>;
  /** The traced step's measured time split by refresh stage (runtime/trace/stage-split.ts), when its program refreshes. */
  stages?: {
    waitedMs: number;
    otherMs: number;
    roundsMs: number;
    rounds: number;
    /** The stages whose waited-on ops took longest, each named by the kernel that took most of that time. */
    heaviest: { round: number; kernel: string; waitedMs: number; ops: number; refreshes: number }[];
  };
  run?: {
    label: string;
    backend: string;
    simulated: boolean;
    command: string;
    totalMs: number;
    peakRssBytes: number;
    refresh: RunTrace['refresh'];
    steps: { name: string; ms: number; rssBytes: number }[];
    /** Whether the traced step is this plan's program (per-op times can be attributed to kernels). */
    matched: boolean;
  };
}

interface PlanDoc {
  params: { ringDegree: number; bitSizes: number[]; scale: number; insecure?: boolean };
  keys?: { bytes?: number; galoisSteps?: number[] };
  program: string;
  model?: unknown;
  analysis?: unknown;
}

function readDoc(file: string): PlanDoc {
  const doc = readPlanJson(file);
  checkPlanVersion(doc, file);
  const d = doc as Partial<PlanDoc>;
  if (!d || typeof d !== 'object' || typeof d.program !== 'string' || !d.params) throw new FhecError('not a plan written by fhec compile (no program or params)', { file });
  return d as PlanDoc;
}

const OTHER = '(outputs, glue)';

function countOf(kind: string): Counted | undefined {
  switch (kind) {
    case 'rotate':
      return 'rotations';
    case 'mul':
      return 'ct x ct';
    case 'mul_plain':
      return 'pt x ct';
    case 'add':
    case 'sub':
    case 'add_plain':
      return 'additions';
    case 'rescale':
      return 'rescales';
    case 'refresh':
      return 'refreshes';
    default:
      return undefined;
  }
}

/** The step plans of a generation plan present on disk, prefill first. */
function stepPlans(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  // decode-FROM-TO: a bucket's decode plan (compiler/generation-plan.ts); decode-P: older per-past plans.
  const names = fs.readdirSync(dir).filter((f) => /^(prefill-\d+|decode-\d+(-\d+)?)\.json$/.test(f));
  const key = (f: string) => [f.startsWith('prefill') ? 0 : 1, Number(/\d+/.exec(f)![0])] as const;
  return names.sort((a, b) => key(a)[0] - key(b)[0] || key(a)[1] - key(b)[1]).map((f) => path.join(dir, f));
}

export function loadReportData(planFile: string, runFile?: string): ReportData {
  const top = readPlanJson(planFile) as { kind?: unknown };
  let focus = planFile;
  let kind: ReportData['kind'];
  let steps: string[] = [];
  let searchFile: string | undefined;
  if (top && typeof top === 'object' && top.kind === GENERATION_PLAN_KIND) {
    const m = readGenerationManifest(planFile);
    const dir = path.join(path.dirname(planFile), m.steps);
    steps = stepPlans(dir);
    const first = path.join(dir, `prefill-${[...m.prefill].sort((a, b) => a - b)[0]}.json`);
    if (!fs.existsSync(first)) throw new FhecError(`the generation plan's prefill step plan ${path.basename(first)} is missing`, { file: planFile });
    focus = first;
    kind = 'generation';
    const s = path.join(dir, PARAMETER_SEARCH_FILE);
    if (fs.existsSync(s)) searchFile = s;
  } else {
    const d = top as { model?: { kind?: unknown } };
    kind = d.model?.kind === MODEL_PLAN_KIND ? 'model' : 'arithmetic';
  }
  const trace = runFile ? readRunTrace(runFile) : undefined;
  const doc = readDoc(focus);
  const params = makeParameters({ ...doc.params, ...(doc.params.insecure ? { insecure: true } : {}) });
  const program = parseFhe(doc.program, focus);
  const analysis = doc.analysis !== undefined ? parseAnalysis(doc.analysis, focus) : undefined;
  const meta = doc.model !== undefined ? parseWith(modelSectionSchema, doc.model, focus, 'plan', ['model']) : undefined;
  const stepName = kind === 'generation' ? path.basename(focus, '.json') : 'program';
  const traced = trace?.steps.find((s) => s.name === stepName);
  const data = buildData(planFile, kind, program, params, doc, analysis, meta, traced);
  if (kind === 'generation') data.step = stepName;
  data.steps = (kind === 'generation' ? steps : [focus]).map((f) => {
    const d = f === focus ? doc : readDoc(f);
    const a = f === focus ? analysis : d.analysis !== undefined ? parseAnalysis(d.analysis, f) : undefined;
    const p = f === focus ? program : parseFhe(d.program, f);
    const name = kind === 'generation' ? path.basename(f, '.json') : 'program';
    // A bucket's plan ran every step whose past it serves.
    const bucket = /^decode-(\d+)-(\d+)$/.exec(name);
    const serves = (step: string) => {
      const past = /^decode-(\d+)$/.exec(step);
      return bucket && past ? Number(bucket[1]) <= Number(past[1]) && Number(past[1]) <= Number(bucket[2]) : step === name;
    };
    const measured = trace?.steps.filter((s) => serves(s.name));
    return {
      name,
      ops: p.ops.length,
      refreshes: p.ops.filter((o) => o.kind === 'refresh').length,
      ...(a?.predicted ? { predictedMs: a.predicted.totalMs } : {}),
      ...(measured?.length ? { measuredMs: measured.reduce((s, x) => s + x.totalMs, 0) / measured.length } : {}),
    };
  });
  if (searchFile) {
    const rec = parseWith(parameterSearchSchema, JSON.parse(fs.readFileSync(searchFile, 'utf8')), searchFile, 'parameter search');
    data.candidates = rec.candidates.map((c) => ({ ...c, chosen: c.ringDegree === rec.chosen.ringDegree && c.levels === rec.chosen.levels && c.feasible }));
    data.candidatesFrom = `the parameter search on the ${rec.step} plan (all step plans share its choice)`;
  }
  if (trace) {
    data.run = {
      label: trace.label,
      backend: trace.backend,
      simulated: trace.simulated,
      command: trace.command,
      totalMs: trace.totalMs,
      peakRssBytes: trace.peakRssBytes,
      refresh: trace.refresh,
      steps: trace.steps.map((s) => ({ name: s.name, ms: s.totalMs, rssBytes: s.rssBytes })),
      matched: traced !== undefined && traced.ops === program.ops.length,
    };
    if (!traced) data.notes.push(`the trace has no step ${stepName}: measured times are not attributed to this plan's kernels`);
    else if (traced.ops !== program.ops.length) data.notes.push(`the traced ${stepName} ran ${traced.ops} ops, this plan has ${program.ops.length}: the trace is of another plan`);
  }
  return data;
}

function buildData(
  planFile: string,
  kind: ReportData['kind'],
  program: FheProgram,
  params: CkksParameters,
  doc: PlanDoc,
  analysis: PlanAnalysis | undefined,
  meta: ModelPlanMeta | undefined,
  traced: TraceStep | undefined,
): ReportData {
  const notes: string[] = [];
  const n = program.ops.length;
  const kernelOf = analysis ? expandOpKernels(analysis.opKernels, n) : new Int32Array(n).fill(-1);
  if (!analysis) notes.push('the plan has no analysis section (compiled by an older fhec): kernels, baseline, predictions and precision are not shown');
  const kernels = analysis?.kernels ?? [];
  const nameOf = (k: number) => (k >= 0 ? kernels[k]!.name : OTHER);
  const layerOf = (k: number) => (k >= 0 ? (kernels[k]!.layer ?? '(no layer)') : '(no layer)');
  let keySteps: ((s: number) => number[]) | undefined;
  try {
    keySteps = programKeys(program, params).rotationKeySteps;
  } catch (e) {
    if (!(e instanceof FhecError)) throw e;
  }
  const rows = new Map<number, KernelRow>();
  const row = (k: number): KernelRow => {
    let r = rows.get(k);
    if (!r) {
      const counts = Object.fromEntries(COUNTED.map((c) => [c, 0])) as Record<Counted, number>;
      r = { kernel: nameOf(k), op: k >= 0 ? kernels[k]!.op : 'other', layer: layerOf(k), ops: 0, counts, greedyRefreshes: 0 };
      rows.set(k, r);
    }
    return r;
  };
  kernels.forEach((_, k) => row(k));
  const levels: LevelPoint[] = [];
  const matched = traced !== undefined && traced.ops === n;
  program.ops.forEach((op, i) => {
    const k = kernelOf[i]!;
    const r = row(k);
    r.ops++;
    const c = countOf(op.kind);
    if (c) r.counts[c]++;
    if (op.kind === 'rotate') r.counts['key switches'] += keySteps ? keySteps(op.step!).length : 1;
    if (op.kind === 'relinearize') r.counts['key switches']++;
    if (matched) r.measuredMs = (r.measuredMs ?? 0) + traced.opMs[i]!;
    if (op.result?.type.kind === 'ct') levels.push({ op: i, level: op.result.type.level!, kernel: r.kernel, layer: r.layer, refresh: op.kind === 'refresh' });
  });
  if (analysis) {
    for (const k of analysis.refreshes.greedyKernels) row(k).greedyRefreshes++;
    if (analysis.predicted) {
      analysis.predicted.kernelMs.forEach((ms, k) => (row(k).predictedMs = ms));
      row(-1).predictedMs = analysis.predicted.otherMs;
    }
  }
  const refreshes = program.ops.filter((o) => o.kind === 'refresh').length;
  const stages = matched && refreshes > 0 ? stageSplit(program, traced.opMs, (i) => nameOf(kernelOf[i]!)) : undefined;
  const precision = (analysis?.precision?.values ?? []).map(([op, bits, typicalBits]) => ({ op, bits, typicalBits, kernel: nameOf(kernelOf[op] ?? -1) }));
  if (analysis?.precision?.note) notes.push(`precision: ${analysis.precision.note}`);
  if (analysis?.precisionNote) notes.push(`precision: ${analysis.precisionNote}`);
  if (analysis?.predictedNote) notes.push(`prediction: ${analysis.predictedNote}`);
  const candidates = (analysis?.candidates ?? []).map((c) => ({ ...c, chosen: c.feasible && c.ringDegree === params.ringDegree && c.levels === params.bitSizes.length - 2 }));
  const title = kind === 'arithmetic' ? path.basename(planFile) : `${meta?.source ?? path.basename(planFile)} (${path.basename(planFile)})`;
  return {
    ...(stages ? { stages } : {}),
    title,
    planFile: path.basename(planFile),
    kind,
    steps: [],
    parameters: {
      text: describeParameters(params),
      ringDegree: params.ringDegree,
      slots: params.ringDegree / 2,
      levels: params.bitSizes.length - 2,
      bitSizes: params.bitSizes,
      scale: params.scale,
      insecure: !!params.insecure,
      ...(doc.keys?.bytes !== undefined ? { keyBytes: doc.keys.bytes } : {}),
      galoisKeys: doc.keys?.galoisSteps?.length ?? 0,
    },
    summary: {
      ops: n,
      ctValues: levels.length,
      refreshes,
      ...(analysis && analysis.refreshes.placement !== 'none' ? { greedyRefreshes: analysis.refreshes.greedyKernels.length } : {}),
      placement: analysis?.refreshes.placement ?? 'unknown',
      ...(analysis?.predicted ? { predictedMs: analysis.predicted.totalMs } : {}),
      ...(matched ? { measuredMs: traced.totalMs } : {}),
    },
    levels,
    kernels: [...rows.entries()].sort((a, b) => (a[0] < 0 ? 1 : b[0] < 0 ? -1 : a[0] - b[0])).map(([, r]) => r).filter((r) => r.ops > 0 || r.greedyRefreshes > 0),
    predictedByKind: analysis?.predicted?.byKind ?? [],
    measuredByKind: matched ? traced.byKind : [],
    precision,
    precisionOutputs: analysis?.precision?.outputs ?? [],
    notes,
    candidates,
    ...(candidates.length ? { candidatesFrom: 'the parameter search of this plan' } : {}),
    approximations: (meta?.probes ?? []).map((p) => ({ op: p.op, role: p.role, interval: p.interval, depth: p.depth, predictedMaxError: p.predictedMaxError, ...(p.describe ? { describe: p.describe } : {}) })),
    ...(analysis?.targets ? { targets: analysis.targets } : {}),
  };
}

/** The split by refresh stage, its heaviest stages named by the kernel that took most of their waited-on time. */
function stageSplit(program: FheProgram, opMs: readonly number[], kernelOf: (op: number) => string): NonNullable<ReportData['stages']> {
  const split = splitByStages(program, opMs, 12);
  const heaviest = split.heaviest.map((h) => {
    const byKernel = new Map<string, number>();
    for (const i of h.inputs) byKernel.set(kernelOf(i), (byKernel.get(kernelOf(i)) ?? 0) + opMs[i]!);
    const kernel = [...byKernel].sort((a, b) => b[1] - a[1])[0]?.[0] ?? OTHER;
    return { round: h.stage + 1, kernel, waitedMs: h.waitedMs, ops: h.ops, refreshes: h.refreshes };
  });
  return { waitedMs: split.waitedMs, otherMs: split.otherMs, roundsMs: split.roundsMs, rounds: split.rounds, heaviest };
}
