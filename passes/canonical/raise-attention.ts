// Raises attention to `fhec::attention` (grouped KV heads, causal/padding masks, KV cache, scale):
//  - PyTorch's decomposed form: Softmax(Q K^T * scale + mask) V with the head split/merge around it,
//    repeat_kv (Unsqueeze, Expand, Reshape) for grouped KV heads, and Concat(past, new) as the cache;
//  - com.microsoft::MultiHeadAttention with an attention_bias mask and past/present;
//  - ONNX Attention (opset 23) with q_num_heads/kv_num_heads, is_causal and past/present.
// The mask is raised only when mask.ts proves it is causal (offset by the past length) and/or a 0/1
// key padding mask; a bias on the scores, a non-causal pattern or a soft mask leaves the node alone.

import { attrFloat, attrInt, hasAttr } from '../../ir/graph/attrs.js';
import type { AttrValue, Graph, Node, Value } from '../../ir/graph/types.js';
import type { Pass } from '../pass.js';
import { matchHeadMerge, matchHeadSplit, type HeadSplit } from './heads.js';
import { analyzeMask, type MaskProof } from './mask.js';
import { concreteShape, constScalar, intsOperand, normAxis, onnxOpset, producedBy, raised, Rewriter, sameDims, softmaxIsLastAxis, transposePerm, where } from './rewrite.js';

interface KvSide {
  split: HeadSplit;
  /** The cache concat (present) and its past input, when there is a cache. */
  concat?: Node;
  past?: Value;
  /** Query heads per KV head, as repeat_kv expands them. */
  group: number;
}

/** keys/values as attention reads them: [repeat_kv](Concat(past, split(x3)) | split(x3)). */
function matchKv(v: Value): KvSide | string {
  let cur = v;
  let group = 1;
  const re = producedBy(cur, 'Reshape');
  const ex = producedBy(re?.inputs[0], 'Expand');
  const un = producedBy(ex?.inputs[0], 'Unsqueeze');
  if (re && ex && un) {
    const axes = intsOperand(un, 1, 'axes');
    const s5 = concreteShape(ex.outputs[0]);
    const s4 = concreteShape(re.outputs[0]);
    if (!axes || axes.length !== 1 || (axes[0] !== 2 && axes[0] !== -3) || !s5 || s5.length !== 5 || !s4 || s4.length !== 4) return 'unrecognized repeat_kv';
    if (s4[0] !== s5[0] || s4[1] !== s5[1]! * s5[2]! || s4[2] !== s5[3] || s4[3] !== s5[4]) return 'repeat_kv reshape does not merge the repeated heads';
    group = s5[2]!;
    cur = un.inputs[0]!;
  }
  const cat = producedBy(cur, 'Concat');
  if (cat) {
    if (cat.inputs.length !== 2 || normAxis(attrInt(cat, 'axis'), 4) !== 2) return 'cache concat is not along the sequence axis';
    const split = matchHeadSplit(cat.inputs[1]);
    if (!split) return `new keys/values '${cat.inputs[1]!.name}' are not a head split of a [B, S, N*H] value`;
    return { split, concat: cat, past: cat.inputs[0]!, group };
  }
  const split = matchHeadSplit(cur);
  if (!split) return `keys/values '${cur.name}' are not a head split of a [B, S, N*H] value`;
  return { split, group };
}

interface Plan {
  q: Value;
  k: Value;
  v: Value;
  pastK: Value | null;
  pastV: Value | null;
  heads: number;
  kvHeads: number;
  scale: number;
  causal: boolean;
  mask: MaskProof | null;
  /** Value replaced by y, and the present values replaced by the attention's outputs. */
  y: Value;
  presentK?: Value;
  presentV?: Value;
}

/** Matches the decomposed form from its Softmax. */
function matchDecomposed(graph: Graph, rw: Rewriter, sm: Node, opset: number): Plan | string | undefined {
  if (!softmaxIsLastAxis(sm, opset)) return undefined;
  const pv = rw.soleUse(sm.outputs[0]!);
  if (!pv || pv.op !== 'MatMul' || pv.inputs[0] !== sm.outputs[0]) return undefined;
  const uses = rw.usesOf(pv.outputs[0]!);
  const tr = uses.length === 1 && uses[0]!.op === 'Transpose' ? uses[0]! : undefined;
  const merge = tr && rw.soleUse(tr.outputs[0]!)?.op === 'Reshape' ? matchHeadMerge(rw.soleUse(tr.outputs[0]!)!.outputs[0]) : undefined;
  if (!merge) return 'the attention output is not merged back to [B, S, N*H]';
  let logits = sm.inputs[0]!;
  let maskV: Value | null = null;
  const add = producedBy(logits, 'Add');
  let scoresNode: Node | undefined;
  let scale = 1;
  const scaled = (v: Value): { qk: Node; scale: number } | undefined => {
    const div = producedBy(v, 'Div');
    if (div) {
      const c = constScalar(div.inputs[1]);
      const qk = producedBy(div.inputs[0], 'MatMul');
      return c !== undefined && qk ? { qk, scale: 1 / c } : undefined;
    }
    const mul = producedBy(v, 'Mul');
    if (mul) {
      for (const [a, b] of [[0, 1], [1, 0]] as const) {
        const c = constScalar(mul.inputs[b]);
        const qk = producedBy(mul.inputs[a], 'MatMul');
        if (c !== undefined && qk) return { qk, scale: c };
      }
      return undefined;
    }
    const qk = producedBy(v, 'MatMul');
    return qk ? { qk, scale: 1 } : undefined;
  };
  let s = scaled(logits);
  if (!s && add) {
    for (const [a, b] of [[0, 1], [1, 0]] as const) {
      const t = scaled(add.inputs[a]!);
      if (t) {
        s = t;
        maskV = add.inputs[b]!;
        logits = add.inputs[a]!;
        break;
      }
    }
  }
  if (!s) return 'softmax input is not (Q K^T) * scale [+ mask]';
  scoresNode = s.qk;
  scale = s.scale;
  const kt = producedBy(scoresNode.inputs[1], 'Transpose');
  if (!kt || !sameDims(transposePerm(kt), [0, 1, 3, 2])) return 'keys are not transposed (0, 1, 3, 2) before Q K^T';
  const qSplit = matchHeadSplit(scoresNode.inputs[0]);
  if (!qSplit) return 'queries are not a head split of a [B, S, N*H] value';
  const k = matchKv(kt.inputs[0]!);
  if (typeof k === 'string') return k;
  const v = matchKv(pv.inputs[1]!);
  if (typeof v === 'string') return v;
  if (!!k.concat !== !!v.concat) return 'only one of keys and values has a cache';
  const N = qSplit.heads;
  const Nkv = k.split.heads;
  if (v.split.heads !== Nkv || k.group !== v.group || N !== Nkv * k.group) return `head counts disagree (q ${N}, k ${Nkv} x ${k.group}, v ${v.split.heads} x ${v.group})`;
  if (k.split.headSize !== qSplit.headSize) return 'query and key head sizes differ';
  const qs = concreteShape(qSplit.x3)!;
  const B = qs[0]!, S = qs[1]!;
  const P = k.past ? (concreteShape(k.past)?.[2] ?? -1) : 0;
  if (P < 0) return 'unknown past length';
  let mask: MaskProof | null = null;
  if (maskV) {
    const verdict = analyzeMask(graph, maskV, { B, heads: N, S, P, T: P + S });
    if ('reason' in verdict) return `mask '${maskV.name}': ${verdict.reason}`;
    mask = verdict;
  }
  return {
    q: qSplit.x3,
    k: k.split.x3,
    v: v.split.x3,
    pastK: k.past ?? null,
    pastV: v.past ?? null,
    heads: N,
    kvHeads: Nkv,
    scale,
    causal: mask?.causal ?? false,
    mask,
    y: rw.soleUse(tr!.outputs[0]!)!.outputs[0]!,
    presentK: k.concat?.outputs[0],
    presentV: v.concat?.outputs[0],
  };
}

/** com.microsoft::MultiHeadAttention and ONNX Attention-23 with 3-D inputs. */
function matchFused(graph: Graph, rw: Rewriter, node: Node): Plan | string | undefined {
  const ms = node.domain === 'com.microsoft' && node.op === 'MultiHeadAttention';
  const onnx = (node.domain === '' || node.domain === 'ai.onnx') && node.op === 'Attention';
  if (!ms && !onnx) return undefined;
  const [q, k, v] = node.inputs;
  const qs = q?.shape, ks = k?.shape, vs = v?.shape;
  if (!q || !k || !v || !qs || !ks || !vs || qs.length !== 3 || ks.length !== 3 || vs.length !== 3 || ![qs[2], ks[2], vs[2]].every((d) => typeof d === 'number')) {
    return 'needs 3-D query, key and value with known hidden sizes';
  }
  let N: number, Nkv: number, maskV: Value | null, pastK: Value | null, pastV: Value | null, causal: boolean;
  if (ms) {
    if (node.inputs[3] || node.inputs[4] || node.inputs[8] || node.inputs[9]) return 'bias, key_padding_mask, past_sequence_length or cache_indirection inputs';
    N = attrInt(node, 'num_heads');
    Nkv = N;
    maskV = node.inputs[5] ?? null;
    pastK = node.inputs[6] ?? null;
    pastV = node.inputs[7] ?? null;
    causal = attrInt(node, 'unidirectional', 0) === 1;
  } else {
    if (node.inputs[6]) return 'nonpad_kv_seqlen input';
    if (attrFloat(node, 'softcap', 0) !== 0) return 'softcap';
    const qk = node.outputs[3];
    if (qk && (rw.usesOf(qk).length > 0 || rw.isGraphOutput(qk))) return 'qk_matmul_output is used';
    if (!hasAttr(node, 'q_num_heads') || !hasAttr(node, 'kv_num_heads')) return '3-D inputs without q_num_heads/kv_num_heads';
    N = attrInt(node, 'q_num_heads');
    Nkv = attrInt(node, 'kv_num_heads');
    maskV = node.inputs[3] ?? null;
    if (maskV?.dtype === 'bool') return 'boolean attn_mask';
    pastK = node.inputs[4] ?? null;
    pastV = node.inputs[5] ?? null;
    causal = attrInt(node, 'is_causal', 0) === 1;
  }
  if (!!pastK !== !!pastV) return 'only one of past_key and past_value';
  const H = (qs[2] as number) / N;
  if (!Number.isInteger(H) || N % Nkv !== 0 || ks[2] !== Nkv * H) return `head counts ${N}/${Nkv} do not split the hidden sizes`;
  const scale = hasAttr(node, 'scale') ? attrFloat(node, 'scale') : 1 / Math.sqrt(H);
  let mask: MaskProof | null = null;
  if (maskV) {
    // Proving a mask needs the specialized shapes.
    const B = qs[0], S = qs[1];
    const P = pastK ? pastK.shape?.[2] : 0;
    if (typeof B !== 'number' || typeof S !== 'number' || typeof P !== 'number') return 'a mask input on a graph that is not specialized (bind the sequence and past lengths)';
    const verdict = analyzeMask(graph, maskV, { B, heads: N, S, P, T: P + S });
    if ('reason' in verdict) return `mask '${maskV.name}': ${verdict.reason}`;
    mask = verdict;
  }
  return {
    q, k, v, pastK, pastV, heads: N, kvHeads: Nkv, scale,
    causal: causal || (mask?.causal ?? false),
    mask,
    y: node.outputs[0]!,
    presentK: node.outputs[1],
    presentV: node.outputs[2],
  };
}

export const raiseAttentionPass: Pass<Graph, Record<string, never>> = {
  name: 'raise-attention',
  summary: 'raise decomposed attention, com.microsoft::MultiHeadAttention and ONNX Attention to fhec::attention',
  reads: 'graph',
  writes: 'canonical',
  options: [],
  run(graph) {
    const rw = new Rewriter(graph);
    const opset = onnxOpset(graph);
    const notes: string[] = [];
    const stats = { decomposed: 0, fused: 0, withPadding: 0, causal: 0 };
    for (const node of [...graph.nodes]) {
      const isSoftmax = node.op === 'Softmax' && node.domain === '';
      const plan = isSoftmax ? matchDecomposed(graph, rw, node, opset) : matchFused(graph, rw, node);
      if (plan === undefined) continue;
      if (typeof plan === 'string') {
        notes.push(`${where(node)}: attention left alone: ${plan}`);
        continue;
      }
      const attrs: Record<string, AttrValue> = {
        num_heads: { kind: 'int', value: plan.heads },
        kv_num_heads: { kind: 'int', value: plan.kvHeads },
        scale: { kind: 'float', value: plan.scale },
        causal: { kind: 'int', value: plan.causal ? 1 : 0 },
      };
      if (plan.mask) attrs['mask_value'] = { kind: 'float', value: plan.mask.maskValue };
      const outs: { name: string; dtype: Value['dtype']; shape: Value['shape'] }[] = [{ name: `${node.name}.attention`, dtype: plan.y.dtype, shape: plan.y.shape }];
      const hasCache = plan.pastK !== null;
      if (hasCache) {
        outs.push({ name: `${node.name}.present_key`, dtype: plan.presentK?.dtype ?? plan.k.dtype, shape: plan.presentK?.shape });
        outs.push({ name: `${node.name}.present_value`, dtype: plan.presentV?.dtype ?? plan.v.dtype, shape: plan.presentV?.shape });
      }
      const a = rw.canonical('attention', [plan.q, plan.k, plan.v, plan.pastK, plan.pastV, plan.mask?.padding ?? null], outs, attrs, node);
      rw.replace(plan.y, a.outputs[0]!);
      if (hasCache && plan.presentK && rw.usesOf(plan.presentK).length + (rw.isGraphOutput(plan.presentK) ? 1 : 0) > 0) rw.replace(plan.presentK, a.outputs[1]!);
      if (hasCache && plan.presentV && rw.usesOf(plan.presentV).length + (rw.isGraphOutput(plan.presentV) ? 1 : 0) > 0) rw.replace(plan.presentV, a.outputs[2]!);
      isSoftmax ? stats.decomposed++ : stats.fused++;
      if (plan.mask?.padding) stats.withPadding++;
      if (plan.causal) stats.causal++;
    }
    rw.finish();
    return raised(stats.decomposed + stats.fused > 0, stats, notes);
  },
};
