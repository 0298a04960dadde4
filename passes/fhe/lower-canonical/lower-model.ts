// The canonical-model lowering driver: walks a calibrated canonical graph (prefill of T tokens) and
// builds one unmanaged FHE program. Activations are token blocks of replicated ciphertexts
// (activation.ts). The embedding lookup is done by the client (the evaluator receives encrypted
// embeddings); logits (and any KV-cache outputs) go back encrypted. Each nonlinearity gets the
// cheapest approximation meeting a stated error target on its calibrated interval; every one is
// recorded as a probe (probes.ts) for the error report and the run-time range monitor.

import { FhecError, nodeLabel } from '../../../ir/errors.js';
import type { FheBuilder } from '../../../ir/fhe/builder.js';
import type { FheProgram, SlotLayout } from '../../../ir/fhe/types.js';
import type { Graph, LazyTensor, Node } from '../../../ir/graph/types.js';
import type { Tensor } from '../../../ir/tensor.js';
import { valueDepths } from '../analysis/depth.js';
import type { AttentionStats } from './attention-stats.js';
import { lowerAttention } from './model-attention.js';
import { newModelLowering, type ModelLowering, type NodeLowering } from './model-context.js';
import { checkSplit, lowerAddMul, lowerEmbedding, lowerLinear, lowerRmsNorm, lowerRope, lowerSwiglu } from './model-ops.js';
import type { ApproxProbe } from './probes.js';
import type { PastConstant } from './past-constants.js';
import type { SoftmaxMethod } from './softmax-plan.js';

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
   * 'references': a linear weight that lives in ONNX external data (through views with a recipe) is
   * referenced, not read: its diagonals are `diagonal` constants built from the file where they are
   * used (passes reading them, and the runtime, stream them through a bounded cache); other weights
   * are read as with 'values'.
   */
  weights?: 'values' | 'shapes' | 'references';
  /**
   * 'all' (default): the logits output holds every position. 'last': only the last position's row (a
   * generation prefill needs the next token's logits only): the lm_head runs on one token, so a wide
   * vocabulary costs the same output blocks as in a decode step (last-token.ts).
   */
  logits?: 'all' | 'last';
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
  /** First position held when not 0: logits of the last position only (`logits: 'last'`); dims say [1, tokens, width]. */
  fromToken?: number;
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
  /** Decode plans: the constants that depend on the past, with the rule giving them at any past of the plan's bucket. */
  pastConstants: Map<string, PastConstant>;
  probes: ApproxProbe[];
  ops: OpRecord[];
  targets: ErrorTargets;
}

const isFhec = (n: Node) => n.domain === 'fhec';

export function lowerCanonicalModel(graph: Graph, opts: LowerModelOptions): LoweredModel {
  const targets: ErrorTargets = { ...DEFAULT_TARGETS, ...opts.targets };
  const m = newModelLowering(graph, opts, targets);
  for (const node of graph.nodes) lowerNode(m, node);
  if (!m.embedding) throw new FhecError('the model has no embedding op (the client-side lookup needs one)');
  const outputs = modelOutputs(m);
  const program = m.b.build();
  const depths = valueDepths(program);
  for (const [i, node] of graph.nodes.entries()) {
    const vals = m.resultOf.get(node) ?? [];
    m.ops[i]!.depth = Math.max(0, ...vals.map((x) => depths.get(x.name) ?? 0));
  }
  return { program, tokens: m.tokens, slots: m.slots, embedding: m.embedding, outputs, cacheInputs: m.cacheInputs, past: m.pastLength, pastConstants: m.pastConstants.rules, probes: m.probes, ops: m.ops, targets };
}

/** Lowers one canonical node and records what it emitted (ops, rotations, approximations, result values). */
function lowerNode(m: ModelLowering, node: Node): void {
  if (!isFhec(node)) throw new FhecError(`${node.domain || 'ai.onnx'}::${node.op} is not a canonical op: FHE lowering needs the canonical IR`, { node: nodeLabel(node) });
  const rot0 = countRotations(m.b);
  const firstOp = m.b.opCount;
  const n: NodeLowering = { node, approxNames: [] };
  switch (node.op) {
    case 'embedding':
      lowerEmbedding(m, node);
      break;
    case 'rms_norm':
      lowerRmsNorm(m, n);
      break;
    case 'linear':
      lowerLinear(m, node);
      break;
    case 'split':
      checkSplit(m, node);
      break;
    case 'rope':
      lowerRope(m, node);
      break;
    case 'attention':
      lowerAttention(m, n);
      break;
    case 'swiglu':
    case 'silu':
      lowerSwiglu(m, n);
      break;
    case 'add':
    case 'mul':
      lowerAddMul(m, node);
      break;
    default:
      throw new FhecError(`no FHE lowering for fhec::${node.op}`, { node: nodeLabel(node) });
  }
  const out = node.outputs[0]!;
  // A linear lowered for its split or swiglu consumer produced those values too.
  const produced = node.op === 'linear' ? [...(m.uses.get(out) ?? []).flatMap((u) => (u.op === 'split' ? u.outputs : [])), out] : node.outputs;
  const results = produced.map((o) => m.acts.get(o)?.blocks.map((x) => x.value) ?? []).flat();
  const sw = node.op === 'linear' ? m.pendingSwiglu.get((m.uses.get(out) ?? [])[0]!) : undefined;
  if (sw) results.push(...sw.gate.blocks.map((x) => x.value), ...sw.up.blocks.map((x) => x.value));
  m.resultOf.set(node, results);
  m.ops.push({ name: node.name, op: node.op, depth: 0, rotations: countRotations(m.b) - rot0, approximations: n.approxNames, ops: [firstOp, m.b.opCount] });
}

/** The model's outputs as FHE outputs (one per block), and how each tensor sits in them. */
function modelOutputs(m: ModelLowering): TensorBlocks[] {
  const outputs: TensorBlocks[] = [];
  for (const v of m.graph.outputs) {
    const a = m.acts.get(v);
    if (!a) throw new FhecError(`model output ${v.name} is not computed under encryption`);
    const g = m.expanded.get(v);
    const shape = v.shape as number[];
    // Fewer rows than the tensor (the last position's logits only): the held rows are its last ones.
    const fromToken = shape.length === 3 && a.tokens < shape[1]! ? shape[1]! - a.tokens : 0;
    const dims = fromToken ? [shape[0]!, a.tokens, shape[2]!] : shape;
    const tb: TensorBlocks = { name: v.name, dims, tokens: a.tokens, width: a.length, blocks: [], ...(fromToken ? { fromToken } : {}) };
    if (g && dims.length === 4) {
      const stride = a.length / (dims[1]! * g);
      tb.kv = { heads: dims[1]!, headSize: dims[3]!, ...(stride !== dims[3] ? { headStride: stride } : {}), group: g };
    } else if (a.columns && a.columns.some((c, i) => c !== i)) {
      throw new FhecError(`model output ${v.name} is held with padded heads; only KV-cache outputs can be`);
    }
    a.blocks.forEach((blk, i) => {
      const fhe = a.blocks.length === 1 ? v.name : `${v.name}#${i}`;
      const layout = blk.layout;
      m.b.output(fhe, blk.value, layout);
      tb.blocks.push({ fhe, colStart: blk.colStart, ...(blk.tokenStart ? { tokenStart: blk.tokenStart } : {}), layout });
    });
    outputs.push(tb);
  }
  return outputs;
}

function countRotations(b: FheBuilder): number {
  return b.rotationCount;
}
