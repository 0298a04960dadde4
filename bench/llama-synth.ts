// Builds, with fhec's own GraphBuilder, a Llama-3-architecture graph in the opset-23 export style
// (RMSNormalization, RotaryEmbedding, Attention with GQA, SwiGLU as Sigmoid*Mul, MatMul linears) whose
// weights are declared only (dtype + dims). Used to write full-size model skeletons (Llama-3-8B:
// 16 GB of fp16 weights) as sparse external-data files without allocating any weight.

import { DeclaredTensor } from '../compiler/onnx/declared-tensor.js';
import type { DType } from '../ir/dtype.js';
import { attr, GraphBuilder } from '../ir/graph/builder.js';
import type { Graph, Value } from '../ir/graph/types.js';
import { Tensor } from '../ir/tensor.js';

export interface LlamaConfig {
  layers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  ffn: number;
  vocab: number;
  maxPositions: number;
  dtype: DType;
}

export const LLAMA3_8B: LlamaConfig = {
  layers: 32, hidden: 4096, heads: 32, kvHeads: 8, ffn: 14336, vocab: 128256, maxPositions: 8192, dtype: 'float16',
};

export function buildLlamaGraph(cfg: LlamaConfig): Graph {
  const b = new GraphBuilder('llama', { '': 23 });
  const dt = cfg.dtype;
  const headDim = cfg.hidden / cfg.heads;
  const S = 'sequence_length';
  const w = (name: string, dims: number[]) => b.constant(name, new DeclaredTensor(dt, dims, name));
  const ids = b.input('input_ids', 'int64', [1, S]);
  const pos = b.input('position_ids', 'int64', [1, S]);
  const cos = w('rope.cos_cache', [cfg.maxPositions, headDim / 2]);
  const sin = w('rope.sin_cache', [cfg.maxPositions, headDim / 2]);
  const act = (n: number) => [1, S, n];
  const linear = (x: Value, name: string, inDim: number, outDim: number) =>
    b.op1('MatMul', [x, w(`${name}.weight`, [inDim, outDim])], dt, act(outDim), {}, { name: `/${name}/MatMul` });
  const norm = (x: Value, name: string) =>
    b.op1('RMSNormalization', [x, w(`${name}.weight`, [cfg.hidden])], dt, act(cfg.hidden),
      { axis: attr.int(-1), epsilon: attr.float(1e-5) }, { name: `/${name}/RMSNorm` });
  let h = b.op1('Gather', [w('model.embed_tokens', [cfg.vocab, cfg.hidden]), ids], dt, act(cfg.hidden), { axis: attr.int(0) });
  for (let l = 0; l < cfg.layers; l++) {
    const p = `model.layers.${l}`;
    const x = norm(h, `${p}.input_layernorm`);
    const rope = (v: Value, heads: number, name: string) =>
      b.op1('RotaryEmbedding', [v, cos, sin, pos], dt, act(heads * headDim), { num_heads: attr.int(heads) }, { name });
    const q = rope(linear(x, `${p}.self_attn.q_proj`, cfg.hidden, cfg.hidden), cfg.heads, `/${p}/rope_q`);
    const k = rope(linear(x, `${p}.self_attn.k_proj`, cfg.hidden, cfg.kvHeads * headDim), cfg.kvHeads, `/${p}/rope_k`);
    const v = linear(x, `${p}.self_attn.v_proj`, cfg.hidden, cfg.kvHeads * headDim);
    const a = b.op1('Attention', [q, k, v], dt, act(cfg.hidden), {
      q_num_heads: attr.int(cfg.heads), kv_num_heads: attr.int(cfg.kvHeads), is_causal: attr.int(1),
    }, { name: `/${p}/attention` });
    h = b.op1('Add', [h, linear(a, `${p}.self_attn.o_proj`, cfg.hidden, cfg.hidden)], dt, act(cfg.hidden));
    const y = norm(h, `${p}.post_attention_layernorm`);
    const gate = linear(y, `${p}.mlp.gate_proj`, cfg.hidden, cfg.ffn);
    const silu = b.op1('Mul', [gate, b.op1('Sigmoid', [gate], dt, act(cfg.ffn))], dt, act(cfg.ffn));
    const up = linear(y, `${p}.mlp.up_proj`, cfg.hidden, cfg.ffn);
    const down = linear(b.op1('Mul', [silu, up], dt, act(cfg.ffn)), `${p}.mlp.down_proj`, cfg.ffn, cfg.hidden);
    h = b.op1('Add', [h, down], dt, act(cfg.hidden));
  }
  const logits = b.op1('MatMul', [norm(h, 'model.norm'), w('lm_head.weight', [cfg.hidden, cfg.vocab])], dt, act(cfg.vocab), {}, { outName: 'logits' });
  b.output(logits);
  void Tensor;
  return b.graph;
}
