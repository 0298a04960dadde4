// The canonical-model lowering driver: walks a calibrated canonical graph (prefill of T tokens) and
// builds one unmanaged FHE program. Activations are token blocks of replicated ciphertexts
// (activation.ts). The embedding lookup is done by the client (the evaluator receives encrypted
// embeddings); logits (and any KV-cache outputs) go back encrypted. Each nonlinearity gets the
// cheapest approximation meeting a stated error target on its calibrated interval; every one is
// recorded as a probe (probes.ts) for the error report and the run-time range monitor.

import { FhecError, nodeLabel } from '../../../ir/errors.js';
import { attrFloat, attrInt } from '../../../ir/graph/attrs.js';
import { FheBuilder } from '../../../ir/fhe/builder.js';
import type { FheProgram, FheValue, SlotLayout } from '../../../ir/fhe/types.js';
import type { Graph, LazyTensor, Node, Value } from '../../../ir/graph/types.js';
import type { ValueRange } from '../../../ir/graph/range.js';
import { usesOf } from '../../../ir/graph/topo.js';
import type { Tensor } from '../../../ir/tensor.js';
import type { Approximation } from '../../approx/approximation.js';
import { approximate } from '../../approx/select.js';
import { applyApproximation } from '../approximation.js';
import { valueDepths } from '../depth.js';
import { invsqrtInterval, siluInterval } from './fit-intervals.js';
import { nextPow2 } from '../packing.js';
import { groupLayouts, paddedHeadColumns, rowBlocks, rowsOf, sameCuts, tokenGrouping, type Activation, type TokenGrouping } from './activation.js';
import { lowerGroupedPrefillAttention, type AttentionProbeSite } from './attention.js';
import { cacheGroupLayout, cacheGroups, lowerGroupedDecodeAttention } from './attention-decode.js';
import type { AttentionStats } from './attention-stats.js';
import { lowerLinearColumns, type LinearStats, type WeightShape } from './linear.js';
import { makeProbe, slotRuns, type ApproxProbe } from './probes.js';
import { lowerRmsNormBlock } from './rms-norm.js';
import { lowerRopeBlock } from './rope.js';
import { planSoftmax, type SoftmaxMethod } from './softmax-plan.js';

/** Error targets of the approximations (the stated accuracy each nonlinearity is fitted to). */
export interface ErrorTargets {
  /** Relative error of 1/sqrt in rms_norm. */
  invsqrtRel: number;
  /**
   * exp in attention: absolute error of exp(s - s_diag) for the 'shifted' softmax; for 'squaring', the
   * relative error the squared exp terms may carry (the fit gets it / 2^(k+1)).
   */
  expAbs: number;
  /** Relative error of 1/sum in attention. */
  reciprocalRel: number;
  /** Absolute error of silu. */
  siluAbs: number;
}

export const DEFAULT_TARGETS: ErrorTargets = { invsqrtRel: 1e-3, expAbs: 1e-4, reciprocalRel: 1e-3, siluAbs: 1e-3 };

export interface LowerModelOptions {
  slots: number;
  targets?: Partial<ErrorTargets>;
  /** Attention statistics (attention-stats.ts), by attention node name; required for attention. */
  attention?: Map<string, AttentionStats>;
  /** Relative margin for intervals the lowering derives itself (attention); default: the ranges' own. */
  margin?: number;
  /** How softmax is approximated (softmax-plan.ts); default 'squaring'. */
  softmax?: SoftmaxMethod;
  /**
   * 'values' (default): weights are read and encoded. 'shapes': the program for cost estimates only:
   * linear weights are never read (every diagonal is taken as nonzero, its constant records only where
   * its values would come from), so a model larger than memory lowers in bounded memory.
   */
  weights?: 'values' | 'shapes';
}

/** An encrypted KV-cache input: the client packs [1, Nkv, P, H] GQA-expanded into token blocks. */
export interface CacheInput {
  name: string;
  fhe: string;
  layout: SlotLayout;
  heads: number;
  headSize: number;
  /** Held channels per head (headSize padded to a power of two); absent when equal to headSize. */
  headStride?: number;
  group: number;
  /** First past token this ciphertext holds, when the cache is split over several (absent: 0). */
  tokenStart?: number;
}

/** One token group of the embeddings: its FHE input, first token and layout. */
export interface EmbeddingGroup {
  fhe: string;
  tokenStart: number;
  layout: SlotLayout;
}

/** How a model tensor sits in FHE outputs: column blocks of token blocks. */
export interface TensorBlocks {
  /** The model's own name. */
  name: string;
  dims: number[];
  tokens: number;
  /** Columns per token of the tensor as held (for a GQA-expanded KV output, N*H). */
  width: number;
  /** tokenStart: first token of the block's token group (absent: 0). */
  blocks: { fhe: string; colStart: number; tokenStart?: number; layout: SlotLayout }[];
  /** KV-cache outputs [1, Nkv, T, H] held expanded: kv head h is at columns h*group*headStride.. */
  kv?: { heads: number; headSize: number; headStride?: number; group: number };
}

export interface OpRecord {
  name: string;
  op: string;
  /** Multiplicative depth of the op's result from the program inputs (no refreshes). */
  depth: number;
  rotations: number;
  approximations: string[];
  /** The op's FHE ops in the lowered program: indices [start, end). */
  ops: [number, number];
}

export interface LoweredModel {
  program: FheProgram;
  tokens: number;
  slots: number;
  /**
   * The client's embedding: input ids name, the table, and the FHE input it fills (the first token
   * group's; `groups` lists every group's when the tokens are split over several ciphertexts).
   */
  embedding: { ids: string; table: LazyTensor; fhe: string; layout: SlotLayout; groups?: EmbeddingGroup[] };
  outputs: TensorBlocks[];
  /** Decode plans: the encrypted past key/value inputs. */
  cacheInputs: CacheInput[];
  /** Decode plans: the past length P (the new token's position); 0 for prefill. */
  past: number;
  probes: ApproxProbe[];
  ops: OpRecord[];
  targets: ErrorTargets;
}

const isFhec = (n: Node) => n.domain === 'fhec';

/** Fits are deterministic and slow (Remez up to degree 256): reuse them within a process. */
const fitCache = new Map<string, Approximation>();

function rangeOf(v: Value, what: string, node: Node, inner?: string): ValueRange {
  const r = inner ? v.range?.inner?.[inner] : v.range;
  if (!r) throw new FhecError(`no calibrated range for ${what}${inner ? ` (${inner})` : ''}: compile needs --calibration`, { node: nodeLabel(node) });
  return r;
}

/** A linear weight's dims and where it lives, without reading it (cost estimates). */
function weightShape(v: Value | null | undefined, node: Node): WeightShape {
  if (!v?.constant) throw new FhecError('linear weight must be a constant', { node: nodeLabel(node) });
  return { dims: v.constant.dims, location: v.constant.location };
}

function constTensor(v: Value | null | undefined, node: Node, what: string): Tensor {
  if (!v?.constant) throw new FhecError(`${what} must be a constant`, { node: nodeLabel(node) });
  return v.constant.load();
}

export function lowerCanonicalModel(graph: Graph, opts: LowerModelOptions): LoweredModel {
  const targets: ErrorTargets = { ...DEFAULT_TARGETS, ...opts.targets };
  const shapesOnly = opts.weights === 'shapes';
  const slots = opts.slots;
  const b = new FheBuilder(graph.name || 'model', slots);
  const uses = usesOf(graph);
  const acts = new Map<Value, Activation>();
  /** GQA expansion factor of values held with KV heads repeated. */
  const expanded = new Map<Value, number>();
  const probes: ApproxProbe[] = [];
  const ops: OpRecord[] = [];
  const pendingSwiglu = new Map<Node, { gate: Activation; up: Activation }>();
  const resultOf = new Map<Node, FheValue[]>();
  let embedding: LoweredModel['embedding'] | undefined;
  let tokens = 0;
  const cacheInputs: CacheInput[] = [];
  const pastLength = (() => {
    for (const n of graph.nodes) if (n.op === 'attention' && n.inputs[3]) return (n.inputs[3].shape?.[2] as number) ?? 0;
    return 0;
  })();

  const act = (v: Value | null, node: Node): Activation => {
    const a = v ? acts.get(v) : undefined;
    if (!a) throw new FhecError(`input ${v?.name ?? '(none)'} is not computed under encryption`, { node: nodeLabel(node) });
    return a;
  };
  /** Where a fit's interval came from, for an error that says what to change when no fit exists. */
  interface FitContext {
    what: string;
    calibrated: [number, number];
    fix: string;
  }
  const fit = (node: Node, fn: string, interval: [number, number], target: { maxAbsError?: number; maxRelError?: number; maxDepth?: number }, why?: FitContext): Approximation => {
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
  };
  const TARGET_FIX = 'relax the error target (compileModel targets) or calibrate on text closer to the inputs the plan will see';
  /** Where a value goes as a KV input of attention (through rope): the GQA group, or 1. */
  const kvGroup = (v: Value): number => {
    for (const u of uses.get(v) ?? []) {
      if (u.op === 'attention' && (u.inputs[1] === v || u.inputs[2] === v)) return attrInt(u, 'num_heads') / attrInt(u, 'kv_num_heads');
      if (u.op === 'rope' && u.inputs[0] === v) {
        const g = kvGroup(u.outputs[0]!);
        if (g > 1) return g;
      }
    }
    return 1;
  };
  /**
   * Columns of a weight part [start, start+size) as held: heads of size H (1: not attention heads)
   * repeated `group` times (GQA expansion) and each padded to nextPow2(H) channels (-1 = zero).
   */
  const partColumns = (start: number, size: number, group: number, headSize: number): number[] => {
    if (group === 1 && (headSize <= 1 || nextPow2(headSize) === headSize)) return Array.from({ length: size }, (_, i) => start + i);
    return paddedHeadColumns((size / headSize) * group, headSize, (h, c) => start + Math.floor(h / group) * headSize + c);
  };
  const headSizeFor = (v: Value): number => {
    for (const u of uses.get(v) ?? []) {
      if (u.op === 'attention') return (u.inputs[1]!.shape![2] as number) / attrInt(u, 'kv_num_heads');
      if (u.op === 'rope' && u.inputs[0] === v) return headSizeFor(u.outputs[0]!);
    }
    return 1;
  };
  const isGraphOutput = (v: Value) => graph.outputs.includes(v);
  const grouping = modelTokenGrouping(graph, slots);
  const withColumns = (a: Activation, from: Activation): Activation => (from.columns ? { ...a, columns: from.columns } : a);

  for (const node of graph.nodes) {
    if (!isFhec(node)) throw new FhecError(`${node.domain || 'ai.onnx'}::${node.op} is not a canonical op: FHE lowering needs the canonical IR`, { node: nodeLabel(node) });
    const rot0 = countRotations(b);
    const firstOp = b.opCount;
    const approxNames: string[] = [];
    const out = node.outputs[0]!;
    const probe = (role: string, approx: Approximation, input: FheValue, output: FheValue, observed: ValueRange | [number, number], keep: (u: number) => boolean) => {
      const obs: [number, number] = Array.isArray(observed) ? observed : [observed.min, observed.max];
      const margin = Array.isArray(observed) ? (opts.margin ?? 0.1) : observed.margin;
      probes.push(makeProbe(node.name, role, approx, input, output, obs, margin, slotRuns(keep, slots)));
      approxNames.push(approx.describe());
    };
    switch (node.op) {
      case 'embedding': {
        const ids = node.inputs[0]!;
        if (!graph.inputs.includes(ids)) throw new FhecError('embedding ids must be a model input (the client looks them up)', { node: nodeLabel(node) });
        const tv = node.inputs[1];
        if (!tv?.constant) throw new FhecError('embedding table must be a constant', { node: nodeLabel(node) });
        const table = tv.constant;
        const dims = out.shape as number[];
        tokens = dims[1]!;
        const d = dims[2]!;
        const groups = groupLayouts(grouping, d, slots);
        const inputs: EmbeddingGroup[] = groups.map((g, i) => ({ fhe: groups.length === 1 ? 'embeddings' : `embeddings#${i}`, ...g }));
        const xs = inputs.map((g) => b.input(g.fhe, g.layout, undefined, 'embeddings'));
        embedding = { ids: ids.name, table, fhe: inputs[0]!.fhe, layout: inputs[0]!.layout, ...(inputs.length > 1 ? { groups: inputs } : {}) };
        acts.set(out, rowBlocks(xs, d, grouping, slots));
        break;
      }
      case 'rms_norm': {
        const x = act(node.inputs[0]!, node);
        if (x.columns) throw new FhecError('rms_norm of a value held with padded heads', { node: nodeLabel(node) });
        const r = rangeOf(out, 'rms_norm', node, 'norm_arg');
        const d = x.length;
        const invsqrt = fit(node, 'invsqrt', invsqrtInterval(d, r), { maxRelError: targets.invsqrtRel }, {
          what: `its input (sum of squares + d eps over ${d} features, mean square ${r.lo.toPrecision(3)}..${r.hi.toPrecision(3)})`,
          calibrated: [d * r.lo, d * r.hi],
          fix: TARGET_FIX,
        });
        const gamma = node.inputs[1] ? constTensor(node.inputs[1], node, 'rms_norm gain').data : undefined;
        const ys = rowsOf(x, 'rms_norm').map((blk) => {
          const res = lowerRmsNormBlock(b, blk.value, blk.layout, attrFloat(node, 'epsilon', 1e-5), gamma, invsqrt);
          probe('1/sqrt(sum x^2 + d eps)', invsqrt, res.arg, res.inv, [d * r.min, d * r.max], res.realSlots);
          return res.value;
        });
        acts.set(out, rowBlocks(ys, d, grouping, slots));
        break;
      }
      case 'linear': {
        const x = act(node.inputs[0]!, node);
        const w = shapesOnly ? weightShape(node.inputs[1], node) : constTensor(node.inputs[1], node, 'linear weight');
        const bias = node.inputs[2] ? constTensor(node.inputs[2], node, 'linear bias') : undefined;
        const stats: LinearStats = { rotations: 0, plainMultiplications: 0 };
        const consumers = uses.get(out) ?? [];
        const N = w.dims[1]!;
        if (consumers.length === 1 && consumers[0]!.op === 'split' && !isGraphOutput(out)) {
          const split = consumers[0]!;
          let start = 0;
          split.outputs.forEach((part) => {
            const size = part.shape![2] as number;
            const g = kvGroup(part);
            const cols = partColumns(start, size, g, headSizeFor(part));
            acts.set(part, lowerLinearColumns(b, x, w, bias, cols, { replicate: true, partStart: start }, stats));
            if (g > 1) expanded.set(part, g);
            start += size;
          });
        } else if (consumers.length === 1 && consumers[0]!.op === 'swiglu' && !consumers[0]!.inputs[1] && !isGraphOutput(out)) {
          const half = N / 2;
          const cols = (s: number) => Array.from({ length: half }, (_, i) => s + i);
          pendingSwiglu.set(consumers[0]!, {
            gate: lowerLinearColumns(b, x, w, bias, cols(0), { replicate: true }, stats),
            up: lowerLinearColumns(b, x, w, bias, cols(half), { replicate: true, partStart: half }, stats),
          });
        } else {
          const g = kvGroup(out);
          const cols = partColumns(0, N, g, headSizeFor(out));
          const needsReplication = consumers.length > 0;
          acts.set(out, lowerLinearColumns(b, x, w, bias, cols, { replicate: needsReplication }, stats));
          if (g > 1) expanded.set(out, g);
        }
        break;
      }
      case 'split':
        for (const o of node.outputs) if (!acts.has(o)) throw new FhecError('split of a value that is not a linear output', { node: nodeLabel(node) });
        break;
      case 'rope': {
        const xv = node.inputs[0]!;
        const x = act(xv, node);
        if (xv.shape?.length !== 3) throw new FhecError('rope lowering takes [B, S, N*H] inputs', { node: nodeLabel(node) });
        const heads = attrInt(node, 'num_heads', 0);
        const H = (xv.shape[2] as number) / heads;
        // Held heads (GQA-expanded, padded): the tables depend only on the channel within a held head.
        const held = x.length / (heads * (expanded.get(xv) ?? 1));
        // Positions from a model input (position_ids): a prefill plan fixes them to 0..S-1 (the session checks).
        const posv = node.inputs[1];
        const positions = posv && graph.inputs.includes(posv) ? Array.from({ length: x.tokens }, (_, i) => pastLength + i) : constTensor(posv, node, 'rope positions').data;
        const ys = rowsOf(x, 'rope').map((blk) =>
          lowerRopeBlock(b, blk.value, blk.layout, {
            headSize: held,
            rotaryDim: attrInt(node, 'rotary_dim', 0) || H,
            interleaved: attrInt(node, 'interleaved', 0) === 1,
            positions: Array.from(positions).slice(blk.tokenStart, blk.tokenStart + blk.layout.tokens),
            cos: constTensor(node.inputs[2], node, 'rope cos table'),
            sin: constTensor(node.inputs[3], node, 'rope sin table'),
          }),
        );
        acts.set(out, withColumns(rowBlocks(ys, x.length, grouping, slots), x));
        if (expanded.has(xv)) expanded.set(out, expanded.get(xv)!);
        break;
      }
      case 'attention': {
        const N = attrInt(node, 'num_heads');
        const Nkv = attrInt(node, 'kv_num_heads');
        const [q, k, v] = [0, 1, 2].map((i) => act(node.inputs[i]!, node));
        for (const i of [1, 2]) {
          if (N !== Nkv && expanded.get(node.inputs[i]!) !== N / Nkv) {
            throw new FhecError('attention K/V must come from a projection the lowering can GQA-expand', { node: nodeLabel(node) });
          }
        }
        const past = node.inputs[3];
        const P = past ? ((past.shape?.[2] as number) ?? 0) : 0;
        if (P > 0 && q!.tokens !== 1) throw new FhecError('attention with a past is lowered for one new token (decode)', { node: nodeLabel(node) });
        if (attrInt(node, 'causal', 0) !== 1 && q!.tokens > 1) throw new FhecError('only causal attention is lowered', { node: nodeLabel(node) });
        const st = opts.attention?.get(node.name);
        if (!st) throw new FhecError('no attention statistics from calibration', { node: nodeLabel(node) });
        const m = opts.margin ?? out.range?.margin ?? 0.1;
        const rowLength = P > 0 ? P + 1 : q!.tokens;
        const why: FitContext = {
          what: `the scores relative to the diagonal (rows of up to ${rowLength} keys)`,
          calibrated: [st.relMin, st.relMax],
          fix: opts.softmax === 'shifted' ? "the 'shifted' softmax needs a 1/x over the whole row sum: use --softmax squaring" : TARGET_FIX,
        };
        let sm;
        try {
          sm = planSoftmax(st, { margin: m, rowLength, expError: targets.expAbs, reciprocalRel: targets.reciprocalRel, method: opts.softmax }, (fn, interval, target) => fit(node, fn, interval, target, why));
        } catch (e) {
          if (e instanceof FhecError && !e.message.startsWith('attention ')) throw new FhecError(`attention ${e.message}; ${why.fix}`, { node: nodeLabel(node) });
          throw e;
        }
        const sitesToProbes = (sites: AttentionProbeSite[], own: string) => {
          let round = 0;
          for (const site of sites) {
            const role = site.role === 'exp' ? (sm.squarings ? `exp((s - ${own})/${2 ** sm.squarings})` : `exp(s - ${own})`) : round === 0 ? '1/sum exp' : `1/sum of squares, round ${round}`;
            if (site.role === 'reciprocal') round++;
            probe(role, site.approx, site.input, site.output, site.observed, site.keep);
          }
        };
        const [qg, kg, vg] = [q!, k!, v!].map((a) => rowsOf(a, 'attention'));
        const width = q!.length;
        // Held head size: the true one padded to a power of two (partColumns).
        const Hs = width / N;
        const trueH = (node.inputs[0]!.shape![2] as number) / N;
        if (k!.length !== width || v!.length !== width) throw new FhecError(`attention: K/V are held ${k!.length}/${v!.length} wide, Q ${width}`, { node: nodeLabel(node) });
        const stride = Hs !== trueH ? { headStride: Hs } : {};
        if (P > 0) {
          const H = trueH;
          const g = N / Nkv;
          // The cache in one ciphertext, or in groups of ciphertexts when its blocks would be narrower than a row.
          const cg = cacheGroups(width, slots, P);
          const pv = [3, 4].map((i) => {
            const v = node.inputs[i]!;
            if (!graph.inputs.includes(v)) throw new FhecError('the KV cache must be a model input', { node: nodeLabel(node) });
            return cg.groups.map((grp, gi) => {
              if (grp.past === 0) return undefined;
              const layout = cacheGroupLayout(width, grp.past, cg.stride);
              const fhe = cg.groups.length === 1 ? v.name : `${v.name}#${gi}`;
              cacheInputs.push({ name: v.name, fhe, layout, heads: Nkv, headSize: H, ...stride, group: g, ...(grp.tokenStart ? { tokenStart: grp.tokenStart } : {}) });
              return b.input(fhe, layout, undefined, fhe.replace(/[^A-Za-z0-9_]/g, '_'));
            });
          });
          const [qb, kb, vb] = [qg![0], kg![0], vg![0]];
          const dec = lowerGroupedDecodeAttention(b, qb!.value, kb!.value, vb!.value, cg.groups.map((_, gi) => ({ k: pv[0]![gi], v: pv[1]![gi] })), P, cg.stride, width, N, attrFloat(node, 'scale'), sm);
          sitesToProbes(dec.sites, 's_new');
          acts.set(out, withColumns(rowBlocks([dec.value], width, grouping, slots), q!));
          const present = (values: FheValue[]): Activation => ({
            tokens: P + 1,
            length: width,
            blocks: cg.groups.map((grp, gi) => ({ value: values[gi]!, layout: cacheGroupLayout(width, grp.present, cg.stride), colStart: 0, tokenStart: grp.tokenStart })),
          });
          if (node.outputs[1]) acts.set(node.outputs[1], present(dec.presentKeys));
          if (node.outputs[2]) acts.set(node.outputs[2], present(dec.presentValues));
          for (const o of node.outputs.slice(1)) expanded.set(o, g);
          break;
        }
        const res = lowerGroupedPrefillAttention(
          b,
          qg!.map((blk, i) => ({ q: blk.value, k: kg![i]!.value, v: vg![i]!.value, layout: blk.layout, tokenStart: blk.tokenStart })),
          N,
          attrFloat(node, 'scale'),
          sm,
        );
        sitesToProbes(res.sites, 's_diag');
        acts.set(out, withColumns(rowBlocks(res.values, q!.length, grouping, slots), q!));
        // present_key / present_value of a KV-cache model's prefill: the (expanded) k and v.
        if (node.outputs[1]) acts.set(node.outputs[1], k!);
        if (node.outputs[2]) acts.set(node.outputs[2], v!);
        if (node.outputs[1]) expanded.set(node.outputs[1], N / Nkv);
        if (node.outputs[2]) expanded.set(node.outputs[2], N / Nkv);
        break;
      }
      case 'swiglu':
      case 'silu': {
        let gate: Activation;
        let up: Activation | undefined;
        const pending = pendingSwiglu.get(node);
        if (pending) ({ gate, up } = pending);
        else {
          gate = act(node.inputs[0]!, node);
          if (node.op === 'swiglu') {
            if (!node.inputs[1]) throw new FhecError('one-input swiglu must follow a linear', { node: nodeLabel(node) });
            up = act(node.inputs[1], node);
          }
        }
        const r = rangeOf(node.inputs[0]!, 'silu input', node);
        const silu = fit(node, 'silu', siluInterval(r), { maxAbsError: targets.siluAbs }, { what: 'the gate', calibrated: [r.lo, r.hi], fix: TARGET_FIX });
        if (up && !sameCuts(gate, up)) throw new FhecError('swiglu gate and up are cut differently', { node: nodeLabel(node) });
        const blocks = gate.blocks.map((blk, i) => {
          const s = applyApproximation(b, blk.value, silu).value;
          const stride = blk.layout.stride;
          probe('silu', silu, blk.value, s, r, (u) => Math.floor(u / stride) < blk.layout.tokens && (u % stride) % blk.layout.period < blk.layout.length);
          return { ...blk, value: up ? b.mul(s, up.blocks[i]!.value) : s };
        });
        acts.set(out, { tokens: gate.tokens, length: gate.length, blocks, ...(gate.columns ? { columns: gate.columns } : {}) });
        break;
      }
      case 'add':
      case 'mul': {
        const [x, y] = [act(node.inputs[0]!, node), act(node.inputs[1]!, node)];
        if (!sameCuts(x, y) || x.tokens !== y.tokens) throw new FhecError(`${node.op} of differently packed operands`, { node: nodeLabel(node) });
        const blocks = x.blocks.map((blk, i) => ({ ...blk, value: node.op === 'add' ? b.add(blk.value, y.blocks[i]!.value) : b.mul(blk.value, y.blocks[i]!.value) }));
        acts.set(out, { tokens: x.tokens, length: x.length, blocks, ...(x.columns ? { columns: x.columns } : {}) });
        if (expanded.has(node.inputs[0]!)) expanded.set(out, expanded.get(node.inputs[0]!)!);
        break;
      }
      default:
        throw new FhecError(`no FHE lowering for fhec::${node.op}`, { node: nodeLabel(node) });
    }
    const produced = node.op === 'linear' ? [...(uses.get(out) ?? []).flatMap((u) => (u.op === 'split' ? u.outputs : [])), out] : node.outputs;
    const results = produced.map((o) => acts.get(o)?.blocks.map((x) => x.value) ?? []).flat();
    const sw = node.op === 'linear' ? pendingSwiglu.get((uses.get(out) ?? [])[0]!) : undefined;
    if (sw) results.push(...sw.gate.blocks.map((x) => x.value), ...sw.up.blocks.map((x) => x.value));
    resultOf.set(node, results);
    ops.push({ name: node.name, op: node.op, depth: 0, rotations: countRotations(b) - rot0, approximations: approxNames, ops: [firstOp, b.opCount] });
  }
  if (!embedding) throw new FhecError('the model has no embedding op (the client-side lookup needs one)');

  const outputs: TensorBlocks[] = [];
  for (const v of graph.outputs) {
    const a = acts.get(v);
    if (!a) throw new FhecError(`model output ${v.name} is not computed under encryption`);
    const g = expanded.get(v);
    const dims = v.shape as number[];
    const tb: TensorBlocks = { name: v.name, dims, tokens: a.tokens, width: a.length, blocks: [] };
    if (g && dims.length === 4) {
      const stride = a.length / (dims[1]! * g);
      tb.kv = { heads: dims[1]!, headSize: dims[3]!, ...(stride !== dims[3] ? { headStride: stride } : {}), group: g };
    } else if (a.columns && a.columns.some((c, i) => c !== i)) {
      throw new FhecError(`model output ${v.name} is held with padded heads; only KV-cache outputs can be`);
    }
    a.blocks.forEach((blk, i) => {
      const fhe = a.blocks.length === 1 ? v.name : `${v.name}#${i}`;
      const layout = blk.layout;
      b.output(fhe, blk.value, layout);
      tb.blocks.push({ fhe, colStart: blk.colStart, ...(blk.tokenStart ? { tokenStart: blk.tokenStart } : {}), layout });
    });
    outputs.push(tb);
  }
  const program = b.build();
  const depths = valueDepths(program);
  for (const [i, node] of graph.nodes.entries()) {
    const vals = resultOf.get(node) ?? [];
    ops[i]!.depth = Math.max(0, ...vals.map((x) => depths.get(x.name) ?? 0));
  }
  return { program, tokens, slots, embedding, outputs, cacheInputs, past: pastLength, probes, ops, targets };
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

function countRotations(b: FheBuilder): number {
  return b.rotationCount;
}

