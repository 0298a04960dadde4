// Builds a plan's `analysis` section (runtime/plan/analysis-schema.ts) at compile time, from what the
// compiler has in hand: the lowered program with each kernel's op range, the refresh-placed and the
// managed programs, the parameters and the search's candidates. Cheap work only: the managed ops are
// attributed by re-running scale management with origin tracking (deterministic, so it reproduces the
// plan's program op for op), the greedy baseline by its linear walk, the latency by the cost table.

import { FhecError } from '../../ir/errors.js';
import type { FheProgram } from '../../ir/fhe/types.js';
import type { CostTable } from '../../ir/ckks/cost-table.js';
import { fheChain, type CkksParameters } from '../../ir/ckks/params.js';
import { manageScales } from '../../passes/fhe/manage/manage-scales.js';
import { programKeys, type Candidate } from '../../passes/fhe/parameters/parameter-search.js';
import { predictLatency } from '../../passes/fhe/analysis/predict-latency.js';
import { analyzePrecision } from '../../passes/fhe/analysis/precision.js';
import { placeRefreshesGreedy } from '../../passes/fhe/refresh/refresh-greedy.js';
import { ANALYSIS_KIND, type CandidateRow, type PlanAnalysis } from '../../runtime/plan/analysis-schema.js';

export interface KernelSource {
  name: string;
  op: string;
  depth: number;
  approximations?: string[];
  /** Its ops in the lowered program: [start, end). */
  ops: [number, number];
}

export interface AnalysisInput {
  /** The lowered (unmanaged, refresh-free) program the kernels' op ranges index. */
  lowered: FheProgram;
  kernels: KernelSource[];
  /** The program scale management ran on: the lowered one with refreshes inserted (or the lowered one). */
  placed: FheProgram;
  /** The plan's program. */
  managed: FheProgram;
  params: CkksParameters;
  /** Input level scale management used (default: the depth of `placed`). */
  inputLevel?: number;
  /** Levels between refreshes the placement worked with (absent: no refresh placement). */
  refreshLevels?: number;
  /** Lowest level each value may sit at (default 0). */
  refreshFloor?: (name: string) => number;
  placement: 'optimal' | 'greedy' | 'none';
  candidates?: Candidate[];
  costs?: { table: CostTable; name: string };
  /** Error targets of the approximations. */
  targets?: Record<string, number>;
  /** Precision: approximation errors per value, and whether the analysis holds for this program. */
  precision?: { approximationErrors?: Map<string, number>; note?: string; skip?: string };
}

/** The decoder layer a node name states (`.../layers.3/...` as Hugging Face exports name them). */
function layerOf(name: string): string | null {
  const m = /layers[./](\d+)[./]/.exec(name);
  return m ? `layer ${m[1]}` : null;
}

function runLength(kernelOf: ArrayLike<number>): number[] {
  const runs: number[] = [];
  for (let i = 0; i < kernelOf.length; i++) {
    const k = kernelOf[i]!;
    if (runs.length && runs[runs.length - 2] === k) runs[runs.length - 1]!++;
    else runs.push(k, 1);
  }
  return runs;
}

/** Finite numbers only (JSON would write Infinity/NaN as null). */
function finite(x: number | undefined): number | undefined {
  return x !== undefined && Number.isFinite(x) ? x : undefined;
}

const MAX_PRECISION_POINTS = 4000;
/** The noise analysis grows fast with program size (15-100 s for model A's ~9000-op prefill on 2 cores). */
const MAX_PRECISION_OPS = 3000;

export function buildPlanAnalysis(a: AnalysisInput): PlanAnalysis {
  // Kernel of each lowered op, then of each placed op (refreshes belong to the value's producer).
  const loweredKernel = new Int32Array(a.lowered.ops.length).fill(-1);
  a.kernels.forEach((k, i) => loweredKernel.fill(i, k.ops[0], k.ops[1]));
  const kernelOfValue = new Map<string, number>();
  a.lowered.ops.forEach((op, i) => op.result && kernelOfValue.set(op.result.name, loweredKernel[i]!));
  const placedKernel = a.placed.ops.map((op) => (op.kind === 'refresh' ? (kernelOfValue.get(op.args[0]!.name) ?? -1) : op.result ? (kernelOfValue.get(op.result.name) ?? -1) : -1));
  // Outputs have no result: they belong to no kernel (the -1 run at the end).

  const origins: number[] = [];
  // The levels where the plan refreshes products unrelinearized (manage-scales refreshProducts), read off the plan.
  const absorbed = new Set(a.managed.ops.flatMap((op) => (op.kind === 'refresh' && op.args[0]!.type.kind === 'ct' && op.args[0]!.type.size === 3 ? [op.args[0]!.type.level!] : [])));
  const again = manageScales(a.placed, { chain: fheChain(a.params), topScale: a.params.scale, inputLevel: a.inputLevel, origins, refreshProducts: (level) => absorbed.has(level) });
  if (again.ops.length !== a.managed.ops.length) throw new Error(`internal: scale management gave ${again.ops.length} ops, the plan has ${a.managed.ops.length}`);
  const managedKernel = origins.map((o) => placedKernel[o] ?? -1);

  let greedyKernels: number[] = [];
  if (a.refreshLevels !== undefined) {
    const greedy = placeRefreshesGreedy(a.lowered, a.refreshLevels, a.refreshFloor);
    greedyKernels = greedy.refreshed.map((n) => kernelOfValue.get(n) ?? -1);
  }

  const out: PlanAnalysis = {
    kind: ANALYSIS_KIND,
    kernels: a.kernels.map((k) => ({ name: k.name, op: k.op, layer: layerOf(k.name), depth: k.depth, approximations: k.approximations ?? [] })),
    opKernels: runLength(managedKernel),
    refreshes: { placement: a.placement, greedyKernels },
  };
  if (a.candidates) out.candidates = candidateRows(a.candidates);
  if (a.targets) out.targets = a.targets;

  let rotationKeySteps: ((step: number) => number[]) | undefined;
  try {
    rotationKeySteps = programKeys(a.managed, a.params).rotationKeySteps;
  } catch (e) {
    if (!(e instanceof FhecError)) throw e;
  }
  if (a.costs && a.costs.table.ringDegrees.some((r) => r.ringDegree === a.params.ringDegree)) {
    const kernelMs = new Array<number>(a.kernels.length).fill(0);
    let otherMs = 0;
    const p = predictLatency(a.managed, a.costs.table, {
      rotationKeySteps,
      onOp: (i, _kind, ms) => {
        const k = managedKernel[i]!;
        if (k >= 0) kernelMs[k]! += ms;
        else otherMs += ms;
      },
    });
    out.predicted = {
      costTable: a.costs.name,
      totalMs: p.totalMs,
      kernelMs,
      otherMs,
      byKind: [...p.byKind].map(([kind, e]) => ({ kind, count: e.count, ms: e.ms })),
      refreshBytes: p.refreshBytes,
    };
  } else out.predictedNote = a.costs ? `the cost table ${a.costs.name} has no timings for N=${a.params.ringDegree}` : 'no cost table';

  if (a.precision?.skip) out.precisionNote = a.precision.skip;
  else if (a.managed.ops.length > MAX_PRECISION_OPS) {
    out.precisionNote = `not analysed: ${a.managed.ops.length} ops (the noise analysis is kept to programs of at most ${MAX_PRECISION_OPS} ops, to keep compiles fast)`;
  } else {
    const r = analyzePrecision(a.managed, { params: a.params, rotationKeySteps, approximationErrors: a.precision?.approximationErrors });
    const index = new Map<string, number>();
    a.managed.ops.forEach((op, i) => op.result && index.set(op.result.name, i));
    const all = [...r.values.values()].filter((v) => index.has(v.name) && Number.isFinite(v.bits) && Number.isFinite(v.typicalBits));
    const every = Math.max(1, Math.ceil(all.length / MAX_PRECISION_POINTS));
    out.precision = {
      values: all.filter((_, i) => i % every === 0).map((v) => [index.get(v.name)!, v.bits, v.typicalBits] as [number, number, number]),
      outputs: r.outputs.map((o) => ({
        tensor: o.tensor,
        bits: finite(o.value.bits) ?? null,
        typicalBits: finite(o.value.typicalBits) ?? null,
        ...(o.requirement?.bits !== undefined ? { requiredBits: o.requirement.bits } : {}),
      })),
      ...(a.precision?.note ? { note: a.precision.note } : {}),
    };
  }
  return out;
}

/** The search's candidates as the plan stores them (finite numbers only). */
export function candidateRows(candidates: Candidate[]): CandidateRow[] {
  return candidates.map((c) => ({
    ringDegree: c.ringDegree,
    scaleBits: c.scaleBits,
    levels: c.levels,
    bitSizes: c.bitSizes,
    modulusBits: c.modulusBits,
    securityLimit: c.securityLimit,
    feasible: c.feasible,
    ...(c.refreshes !== undefined ? { refreshes: c.refreshes } : {}),
    ...(c.rounds !== undefined ? { rounds: c.rounds } : {}),
    ...(finite(c.refreshBytes) !== undefined ? { refreshBytes: c.refreshBytes } : {}),
    ...(finite(c.outputBits) !== undefined ? { outputBits: c.outputBits } : {}),
    ...(finite(c.keyBytes) !== undefined ? { keyBytes: c.keyBytes } : {}),
    ...(finite(c.latencyMs) !== undefined ? { latencyMs: c.latencyMs } : {}),
    ...(c.reason ? { reason: c.reason } : {}),
  }));
}
