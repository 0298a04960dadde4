// Builds, with fhec's own GraphBuilder, a Llama-3-architecture graph in the opset-23 export style
// (RMSNormalization, RotaryEmbedding, Attention with GQA, SwiGLU as Sigmoid*Mul, MatMul linears) whose
// weights are declared only (dtype + dims), or given by a function (small models of any shape for
// tests: seeded random weights and true RoPE tables, `randomLlamaWeights`). Used to write full-size
// model skeletons (Llama-3-8B: 16 GB of fp16 weights) as sparse external-data files without
// allocating any weight.

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
  /** Channels per head; default hidden / heads. */
  headDim?: number;
}

/** Values for a weight by its name and dims (absent: declared only). */
export type LlamaWeights = (name: string, dims: number[]) => Tensor;

/**
 * Seeded random weights of a plausible scale (1/sqrt(fan-in) for matrices, 1 +- 0.1 for norm gains,
 * N(0, 1)-ish embeddings) and the true RoPE cos/sin tables (theta 10000).
 */
export function randomLlamaWeights(seed: number, dtype: DType = 'float32'): LlamaWeights {
  let s = seed >>> 0;
  const r = () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  };
  return (name, dims) => {
    const n = dims.reduce((a, c) => a * c, 1);
    const v = new Float64Array(n);
    if (/rope\.(cos|sin)_cache/.test(name)) {
      const [P, half] = [dims[0]!, dims[1]!];
      for (let p = 0; p < P; p++) {
        for (let i = 0; i < half; i++) {
          const a = p / Math.pow(10000, i / half);
          v[p * half + i] = name.includes('cos') ? Math.cos(a) : Math.sin(a);
        }
      }
    } else if (/norm/.test(name)) for (let i = 0; i < n; i++) v[i] = 1 + 0.2 * r();
    else if (/embed_tokens/.test(name)) for (let i = 0; i < n; i++) v[i] = 2 * r();
    else for (let i = 0; i < n; i++) v[i] = (2 * r() * Math.sqrt(3)) / Math.sqrt(dims[0]!);
    return Tensor.from(dtype, dims, v);
  };
}

export const LLAMA3_8B: LlamaConfig = {
  layers: 32, hidden: 4096, heads: 32, kvHeads: 8, ffn: 14336, vocab: 128256, maxPositions: 8192, dtype: 'float16',
};

export function buildLlamaGraph(cfg: LlamaConfig, weights?: LlamaWeights): Graph {
  const b = new GraphBuilder('llama', { '': 23 });
  const dt = cfg.dtype;
  const headDim = cfg.headDim ?? cfg.hidden / cfg.heads;
  const S = 'sequence_length';
  const w = (name: string, dims: number[]) => b.constant(name, weights ? weights(name, dims) : new DeclaredTensor(dt, dims, name));
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
    const q = rope(linear(x, `${p}.self_attn.q_proj`, cfg.hidden, cfg.heads * headDim), cfg.heads, `/${p}/rope_q`);
    const k = rope(linear(x, `${p}.self_attn.k_proj`, cfg.hidden, cfg.kvHeads * headDim), cfg.kvHeads, `/${p}/rope_k`);
    const v = linear(x, `${p}.self_attn.v_proj`, cfg.hidden, cfg.kvHeads * headDim);
    const a = b.op1('Attention', [q, k, v], dt, act(cfg.heads * headDim), {
      q_num_heads: attr.int(cfg.heads), kv_num_heads: attr.int(cfg.kvHeads), is_causal: attr.int(1),
    }, { name: `/${p}/attention` });
    h = b.op1('Add', [h, linear(a, `${p}.self_attn.o_proj`, cfg.heads * headDim, cfg.hidden)], dt, act(cfg.hidden));
    const y = norm(h, `${p}.post_attention_layernorm`);
    const gate = linear(y, `${p}.mlp.gate_proj`, cfg.hidden, cfg.ffn);
    const silu = b.op1('Mul', [gate, b.op1('Sigmoid', [gate], dt, act(cfg.ffn))], dt, act(cfg.ffn));
    const up = linear(y, `${p}.mlp.up_proj`, cfg.hidden, cfg.ffn);
    const down = linear(b.op1('Mul', [silu, up], dt, act(cfg.ffn)), `${p}.mlp.down_proj`, cfg.ffn, cfg.hidden);
    h = b.op1('Add', [h, down], dt, act(cfg.hidden));
  }
  const logits = b.op1('MatMul', [norm(h, 'model.norm'), w('lm_head.weight', [cfg.hidden, cfg.vocab])], dt, act(cfg.vocab), {}, { outName: 'logits' });
  b.output(logits);
  return b.graph;
}
