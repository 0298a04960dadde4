// The state of one canonical-model lowering (lower-model.ts) and the helpers every op's lowering
// shares: where each graph value is held (activations), GQA expansion, the approximation fits (cached
// per process) with errors that say what to change, and the probes each approximation records.

import { FhecError, nodeLabel } from '../../../ir/errors.js';
import { attrInt } from '../../../ir/graph/attrs.js';
import { FheBuilder } from '../../../ir/fhe/builder.js';
import type { FheValue } from '../../../ir/fhe/types.js';
import type { Graph, Node, Value } from '../../../ir/graph/types.js';
import type { ValueRange } from '../../../ir/graph/range.js';
import { usesOf } from '../../../ir/graph/topo.js';
import type { Tensor } from '../../../ir/tensor.js';
import type { Approximation } from '../../approx/approximation.js';
import { approximate } from '../../approx/select.js';
import { nextPow2 } from '../layout/packing.js';
import { paddedHeadColumns, tokenGrouping, type Activation, type TokenGrouping } from './activation.js';
import type { CacheInput, ErrorTargets, LoweredModel, LowerModelOptions, OpRecord } from './lower-model.js';
import { PastConstants } from './past-constants.js';
import { makeProbe, slotRuns, type ApproxProbe, type ProbeFolds } from './probes.js';

/** Where a fit's interval came from, for an error that says what to change when no fit exists. */
export interface FitContext {
  what: string;
  calibrated: [number, number];
  fix: string;
}

export type FitTarget = { maxAbsError?: number; maxRelError?: number; maxDepth?: number };

export const TARGET_FIX = 'relax the error target (compileModel targets) or calibrate on text closer to the inputs the plan will see';

/** Fits are deterministic and slow (Remez up to degree 256): reuse them within a process. */
const fitCache = new Map<string, Approximation>();

export interface ModelLowering {
  graph: Graph;
  opts: LowerModelOptions;
  targets: ErrorTargets;
  slots: number;
  b: FheBuilder;
  uses: Map<Value, Node[]>;
  acts: Map<Value, Activation>;
  /** GQA expansion factor of values held with KV heads repeated. */
  expanded: Map<Value, number>;
  probes: ApproxProbe[];
  ops: OpRecord[];
  pendingSwiglu: Map<Node, { gate: Activation; up: Activation }>;
  resultOf: Map<Node, FheValue[]>;
  embedding?: LoweredModel['embedding'];
  tokens: number;
  cacheInputs: CacheInput[];
  pastLength: number;
  /** Decode: the constants that depend on the past length, with their rules (past-constants.ts). */
  pastConstants: PastConstants;
  grouping: TokenGrouping;
  /** Values whose every token but the last is held as 0 (the final rms_norm before a last-token lm_head). */
  lastTokenZeroed: Set<Value>;
}

/** What the lowering of one node records: the approximations it fitted (OpRecord.approximations). */
export interface NodeLowering {
  node: Node;
  approxNames: string[];
}

export function newModelLowering(graph: Graph, opts: LowerModelOptions, targets: ErrorTargets): ModelLowering {
  return {
    graph,
    opts,
    targets,
    slots: opts.slots,
    b: new FheBuilder(graph.name || 'model', opts.slots),
    uses: usesOf(graph),
    acts: new Map(),
    expanded: new Map(),
    probes: [],
    ops: [],
    pendingSwiglu: new Map(),
    resultOf: new Map(),
    tokens: 0,
    cacheInputs: [],
    pastLength: pastLengthOf(graph),
    pastConstants: new PastConstants(pastLengthOf(graph)),
    grouping: modelTokenGrouping(graph, opts.slots),
    lastTokenZeroed: new Set(),
  };
}

function pastLengthOf(graph: Graph): number {
  for (const n of graph.nodes) if (n.op === 'attention' && n.inputs[3]) return (n.inputs[3].shape?.[2] as number) ?? 0;
  return 0;
}

export function rangeOf(v: Value, what: string, node: Node, inner?: string): ValueRange {
  const r = inner ? v.range?.inner?.[inner] : v.range;
  if (!r) throw new FhecError(`no calibrated range for ${what}${inner ? ` (${inner})` : ''}: compile needs --calibration`, { node: nodeLabel(node) });
  return r;
}

export function constTensor(v: Value | null | undefined, node: Node, what: string): Tensor {
  if (!v?.constant) throw new FhecError(`${what} must be a constant`, { node: nodeLabel(node) });
  return v.constant.load();
}

export function act(m: ModelLowering, v: Value | null, node: Node): Activation {
  const a = v ? m.acts.get(v) : undefined;
  if (!a) throw new FhecError(`input ${v?.name ?? '(none)'} is not computed under encryption`, { node: nodeLabel(node) });
  return a;
}

export function fit(node: Node, fn: string, interval: [number, number], target: FitTarget, why?: FitContext): Approximation {
  const key = JSON.stringify([fn, interval, target]);
  const hit = fitCache.get(key);
  if (hit) return hit;
  try {
    const a = approximate(fn, interval, target);
    fitCache.set(key, a);
    return a;
  } catch (e) {
    if (!(e instanceof FhecError)) throw e;
    const ctx = why ? `; ${why.what}: calibrated to [${why.calibrated.map((v) => v.toPrecision(4)).join(', ')}], widened for held-out inputs (fit-intervals.ts); ${why.fix}` : '';
    throw new FhecError(`${node.op} ${fn}: ${e.message}${ctx}`, { node: nodeLabel(node) });
  }
}

/** Records an approximation's probe (input/output values, observed interval, real slots) for the node. */
export function probe(
  m: ModelLowering,
  n: NodeLowering,
  role: string,
  approx: Approximation,
  input: FheValue,
  output: FheValue,
  observed: ValueRange | [number, number],
  keep: (u: number) => boolean,
  folds: ProbeFolds = {},
): void {
  const obs: [number, number] = Array.isArray(observed) ? observed : [observed.min, observed.max];
  const margin = Array.isArray(observed) ? (m.opts.margin ?? 0.1) : observed.margin;
  m.probes.push(makeProbe(n.node.name, role, approx, input, output, obs, margin, slotRuns(keep, m.slots), folds));
  n.approxNames.push(approx.describe());
}

/** Where a value goes as a KV input of attention (through rope): the GQA group, or 1. */
export function kvGroup(m: ModelLowering, v: Value): number {
  for (const u of m.uses.get(v) ?? []) {
    if (u.op === 'attention' && (u.inputs[1] === v || u.inputs[2] === v)) return attrInt(u, 'num_heads') / attrInt(u, 'kv_num_heads');
    if (u.op === 'rope' && u.inputs[0] === v) {
      const g = kvGroup(m, u.outputs[0]!);
      if (g > 1) return g;
    }
  }
  return 1;
}

/**
 * Columns of a weight part [start, start+size) as held: heads of size H (1: not attention heads)
 * repeated `group` times (GQA expansion) and each padded to nextPow2(H) channels (-1 = zero).
 */
export function partColumns(start: number, size: number, group: number, headSize: number): number[] {
  if (group === 1 && (headSize <= 1 || nextPow2(headSize) === headSize)) return Array.from({ length: size }, (_, i) => start + i);
  return paddedHeadColumns((size / headSize) * group, headSize, (h, c) => start + Math.floor(h / group) * headSize + c);
}

export function headSizeFor(m: ModelLowering, v: Value): number {
  for (const u of m.uses.get(v) ?? []) {
    if (u.op === 'attention') return (u.inputs[1]!.shape![2] as number) / attrInt(u, 'kv_num_heads');
    if (u.op === 'rope' && u.inputs[0] === v) return headSizeFor(m, u.outputs[0]!);
  }
  return 1;
}

export function withColumns(a: Activation, from: Activation): Activation {
  return from.columns ? { ...a, columns: from.columns } : a;
}

/**
 * The model's token grouping (activation.ts): its rows are the embedding (hidden) and attention's
 * q/k/v as held (heads padded to powers of two, GQA-expanded), each needing 2 copies per token block.
 */
function modelTokenGrouping(graph: Graph, slots: number): TokenGrouping {
  let tokens = 1;
  let widest = 1;
  let what = 'the model';
  for (const n of graph.nodes) {
    if (n.op === 'embedding') {
      const dims = n.outputs[0]!.shape as number[];
      tokens = dims[1]!;
      if (dims[2]! > widest) [widest, what] = [dims[2]!, `the residual stream (${tokens} x ${dims[2]})`];
    }
    if (n.op === 'attention') {
      const N = attrInt(n, 'num_heads');
      const H = (n.inputs[0]!.shape![2] as number) / N;
      const held = N * nextPow2(H);
      if (held > widest) [widest, what] = [held, `attention ${n.name} q/k/v (${N} heads of ${H}, held ${held} wide)`];
    }
  }
  return tokenGrouping(slots, tokens, nextPow2(widest), what);
}
