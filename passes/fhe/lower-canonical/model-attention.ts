// The attention node of a canonical model, lowered for lower-model.ts: checks the GQA and causal
// shape, plans the softmax approximation from calibrated statistics, then lowers a prefill (all
// token blocks, causal) or a decode step (one new token against the encrypted KV cache inputs).

import { FhecError, nodeLabel } from '../../../ir/errors.js';
import { attrFloat, attrInt } from '../../../ir/graph/attrs.js';
import type { FheValue } from '../../../ir/fhe/types.js';
import type { Node } from '../../../ir/graph/types.js';
import { rowBlocks, rowsOf, type Activation } from './activation.js';
import { lowerGroupedPrefillAttention, type AttentionProbeSite } from './attention.js';
import { cacheGroupLayout, cacheGroups, lowerGroupedDecodeAttention } from './attention-decode.js';
import { act, fit, probe, TARGET_FIX, withColumns, type FitContext, type ModelLowering, type NodeLowering } from './model-context.js';
import { planSoftmax, type SoftmaxPlan } from './softmax-plan.js';

interface AttentionShape {
  N: number;
  Nkv: number;
  q: Activation;
  k: Activation;
  v: Activation;
  /** Past length (decode), 0 for prefill. */
  P: number;
  width: number;
  /** headStride when heads are held padded. */
  stride: { headStride?: number };
  trueH: number;
  sm: SoftmaxPlan;
}

export function lowerAttention(m: ModelLowering, n: NodeLowering): void {
  const a = attentionShape(m, n.node);
  if (a.P > 0) lowerDecode(m, n, a);
  else lowerPrefill(m, n, a);
}

function attentionShape(m: ModelLowering, node: Node): AttentionShape {
  const out = node.outputs[0]!;
  const N = attrInt(node, 'num_heads');
  const Nkv = attrInt(node, 'kv_num_heads');
  const [q, k, v] = [0, 1, 2].map((i) => act(m, node.inputs[i]!, node));
  for (const i of [1, 2]) {
    if (N !== Nkv && m.expanded.get(node.inputs[i]!) !== N / Nkv) {
      throw new FhecError('attention K/V must come from a projection the lowering can GQA-expand', { node: nodeLabel(node) });
    }
  }
  const past = node.inputs[3];
  const P = past ? ((past.shape?.[2] as number) ?? 0) : 0;
  if (P > 0 && q!.tokens !== 1) throw new FhecError('attention with a past is lowered for one new token (decode)', { node: nodeLabel(node) });
  if (attrInt(node, 'causal', 0) !== 1 && q!.tokens > 1) throw new FhecError('only causal attention is lowered', { node: nodeLabel(node) });
  const st = m.opts.attention?.get(node.name);
  if (!st) throw new FhecError('no attention statistics from calibration', { node: nodeLabel(node) });
  const margin = m.opts.margin ?? out.range?.margin ?? 0.1;
  const rowLength = P > 0 ? P + 1 : q!.tokens;
  const why: FitContext = {
    what: `the scores relative to the diagonal (rows of up to ${rowLength} keys)`,
    calibrated: [st.relMin, st.relMax],
    fix: m.opts.softmax === 'shifted' ? "the 'shifted' softmax needs a 1/x over the whole row sum: use --softmax squaring" : TARGET_FIX,
  };
  let sm: SoftmaxPlan;
  try {
    sm = planSoftmax(st, { margin, rowLength, expError: m.targets.expAbs, reciprocalRel: m.targets.reciprocalRel, method: m.opts.softmax }, (fn, interval, target) => fit(node, fn, interval, target, why));
  } catch (e) {
    if (e instanceof FhecError && !e.message.startsWith('attention ')) throw new FhecError(`attention ${e.message}; ${why.fix}`, { node: nodeLabel(node) });
    throw e;
  }
  const width = q!.length;
  // Held head size: the true one padded to a power of two (partColumns).
  const Hs = width / N;
  const trueH = (node.inputs[0]!.shape![2] as number) / N;
  if (k!.length !== width || v!.length !== width) throw new FhecError(`attention: K/V are held ${k!.length}/${v!.length} wide, Q ${width}`, { node: nodeLabel(node) });
  return { N, Nkv, q: q!, k: k!, v: v!, P, width, stride: Hs !== trueH ? { headStride: Hs } : {}, trueH, sm };
}

/** The probes of the softmax's approximation sites: exp, then the reciprocal rounds. */
function probeSites(m: ModelLowering, n: NodeLowering, sm: SoftmaxPlan, sites: AttentionProbeSite[], own: string): void {
  let round = 0;
  for (const site of sites) {
    const role = site.role === 'exp' ? (sm.squarings ? `exp((s - ${own})/${2 ** sm.squarings})` : `exp(s - ${own})`) : round === 0 ? '1/sum exp' : `1/sum of squares, round ${round}`;
    if (site.role === 'reciprocal') round++;
    probe(m, n, role, site.approx, site.input, site.output, site.observed, site.keep, site.inputMap ? { inputMap: site.inputMap } : {});
  }
}

/** One new token against the cache: the past K/V are encrypted model inputs (one or several ciphertexts). */
function lowerDecode(m: ModelLowering, n: NodeLowering, a: AttentionShape): void {
  const node = n.node;
  const { N, Nkv, P, width } = a;
  const [qg, kg, vg] = [a.q, a.k, a.v].map((x) => rowsOf(x, 'attention'));
  const g = N / Nkv;
  // The cache in one ciphertext, or in groups of ciphertexts when its blocks would be narrower than a row.
  const cg = cacheGroups(width, m.slots, P);
  const pv = [3, 4].map((i) => {
    const v = node.inputs[i]!;
    if (!m.graph.inputs.includes(v)) throw new FhecError('the KV cache must be a model input', { node: nodeLabel(node) });
    return cg.groups.map((grp, gi) => {
      if (grp.past === 0) return undefined;
      const layout = cacheGroupLayout(width, grp.past, cg.stride);
      const fhe = cg.groups.length === 1 ? v.name : `${v.name}#${gi}`;
      m.cacheInputs.push({ name: v.name, fhe, layout, heads: Nkv, headSize: a.trueH, ...a.stride, group: g, ...(grp.tokenStart ? { tokenStart: grp.tokenStart } : {}) });
      return m.b.input(fhe, layout, undefined, fhe.replace(/[^A-Za-z0-9_]/g, '_'));
    });
  });
  const [qb, kb, vb] = [qg![0], kg![0], vg![0]];
  const dec = lowerGroupedDecodeAttention(m.b, qb!.value, kb!.value, vb!.value, cg.groups.map((_, gi) => ({ k: pv[0]![gi], v: pv[1]![gi] })), P, cg.stride, width, N, attrFloat(node, 'scale'), a.sm, m.pastConstants);
  probeSites(m, n, a.sm, dec.sites, 's_new');
  m.acts.set(node.outputs[0]!, withColumns(rowBlocks([dec.value], width, m.grouping, m.slots), a.q));
  const present = (values: FheValue[]): Activation => ({
    tokens: P + 1,
    length: width,
    blocks: cg.groups.map((grp, gi) => ({ value: values[gi]!, layout: cacheGroupLayout(width, grp.present, cg.stride), colStart: 0, tokenStart: grp.tokenStart })),
  });
  if (node.outputs[1]) m.acts.set(node.outputs[1], present(dec.presentKeys));
  if (node.outputs[2]) m.acts.set(node.outputs[2], present(dec.presentValues));
  for (const o of node.outputs.slice(1)) m.expanded.set(o, g);
}

/** Causal attention over every token block; a KV-cache model's present K/V are the (expanded) k and v. */
function lowerPrefill(m: ModelLowering, n: NodeLowering, a: AttentionShape): void {
  const node = n.node;
  const [qg, kg, vg] = [a.q, a.k, a.v].map((x) => rowsOf(x, 'attention'));
  const res = lowerGroupedPrefillAttention(
    m.b,
    qg!.map((blk, i) => ({ q: blk.value, k: kg![i]!.value, v: vg![i]!.value, layout: blk.layout, tokenStart: blk.tokenStart })),
    a.N,
    attrFloat(node, 'scale'),
    a.sm,
  );
  probeSites(m, n, a.sm, res.sites, 's_diag');
  m.acts.set(node.outputs[0]!, withColumns(rowBlocks(res.values, a.q.length, m.grouping, m.slots), a.q));
  if (node.outputs[1]) m.acts.set(node.outputs[1], a.k);
  if (node.outputs[2]) m.acts.set(node.outputs[2], a.v);
  if (node.outputs[1]) m.expanded.set(node.outputs[1], a.N / a.Nkv);
  if (node.outputs[2]) m.expanded.set(node.outputs[2], a.N / a.Nkv);
}
