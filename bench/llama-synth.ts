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
  /** past_key_values.{l}.key/value inputs and present.{l}.key/value outputs (decode with a KV cache). */
  kvCache?: boolean;
  /** The LM head reads the embedding table (Llama 3.2): logits = h @ Transpose(embed_tokens). */
  tiedEmbeddings?: boolean;
  /** RoPE base (default 10000) and Llama 3.1 frequency scaling, for the cos/sin tables randomLlamaWeights makes. */
  rope?: RopeConfig;
}

/** RoPE frequencies: theta, and Llama 3.1's scaling of the low frequencies (rope_scaling, rope_type "llama3"). */
export interface RopeConfig {
  theta: number;
  scaling?: { factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number };
}

/** Inverse frequency of channel pair i of `half` (transformers' _compute_llama3_parameters). */
export function ropeInverseFrequency(i: number, half: number, rope: RopeConfig = { theta: 10000 }): number {
  const f = 1 / Math.pow(rope.theta, i / half);
  const s = rope.scaling;
  if (!s) return f;
  const wavelen = (2 * Math.PI) / f;
  const low = s.originalMaxPositions / s.lowFreqFactor;
  const high = s.originalMaxPositions / s.highFreqFactor;
  if (wavelen < high) return f;
  if (wavelen > low) return f / s.factor;
  const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
  return (1 - smooth) * (f / s.factor) + smooth * f;
}

/** Values for a weight by its name and dims (absent: declared only). */
export type LlamaWeights = (name: string, dims: number[]) => Tensor;

/**
 * Seeded random weights of a plausible scale (1/sqrt(fan-in) for matrices, 1 +- 0.1 for norm gains,
 * N(0, 1)-ish embeddings) and the true RoPE cos/sin tables (theta 10000).
 */
export function randomLlamaWeights(seed: number, dtype: DType = 'float32', rope?: RopeConfig): LlamaWeights {
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
          const a = p * ropeInverseFrequency(i, half, rope);
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
  layers: 32, hidden: 4096, heads: 32, kvHeads: 8, ffn: 14336, vocab: 128256, maxPositions: 8192, dtype: 'float16', rope: { theta: 500000 },
};

/** Llama-3.2-1B: tied embeddings, head dim 64, RoPE theta 500000 with Llama 3.1 scaling (config.json). */
export const LLAMA32_1B: LlamaConfig = {
  layers: 16, hidden: 2048, heads: 32, kvHeads: 8, headDim: 64, ffn: 8192, vocab: 128256, maxPositions: 131072, dtype: 'float16', tiedEmbeddings: true,
  rope: { theta: 500000, scaling: { factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 } },
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
  const embed = w('model.embed_tokens', [cfg.vocab, cfg.hidden]);
  let h = b.op1('Gather', [embed, ids], dt, act(cfg.hidden), { axis: attr.int(0) });
  const presents: Value[] = [];
  for (let l = 0; l < cfg.layers; l++) {
    const p = `model.layers.${l}`;
    const x = norm(h, `${p}.input_layernorm`);
    const rope = (v: Value, heads: number, name: string) =>
      b.op1('RotaryEmbedding', [v, cos, sin, pos], dt, act(heads * headDim), { num_heads: attr.int(heads) }, { name });
    const q = rope(linear(x, `${p}.self_attn.q_proj`, cfg.hidden, cfg.heads * headDim), cfg.heads, `/${p}/rope_q`);
    const k = rope(linear(x, `${p}.self_attn.k_proj`, cfg.hidden, cfg.kvHeads * headDim), cfg.kvHeads, `/${p}/rope_k`);
    const v = linear(x, `${p}.self_attn.v_proj`, cfg.hidden, cfg.kvHeads * headDim);
    const attrs = { q_num_heads: attr.int(cfg.heads), kv_num_heads: attr.int(cfg.kvHeads), is_causal: attr.int(1) };
    let a: Value;
    if (cfg.kvCache) {
      const cache = (s: string) => [1, cfg.kvHeads, s, headDim];
      const past = ['key', 'value'].map((kv) => b.input(`past_key_values.${l}.${kv}`, dt, cache('past_sequence_length')));
      const n = b.node('Attention', [q, k, v, null, past[0]!, past[1]!], [
        { dtype: dt, shape: act(cfg.heads * headDim) },
        { name: `present.${l}.key`, dtype: dt, shape: cache('total_sequence_length') },
        { name: `present.${l}.value`, dtype: dt, shape: cache('total_sequence_length') },
      ], attrs, { name: `/${p}/attention` });
      a = n.outputs[0]!;
      presents.push(n.outputs[1]!, n.outputs[2]!);
    } else a = b.op1('Attention', [q, k, v], dt, act(cfg.heads * headDim), attrs, { name: `/${p}/attention` });
    h = b.op1('Add', [h, linear(a, `${p}.self_attn.o_proj`, cfg.heads * headDim, cfg.hidden)], dt, act(cfg.hidden));
    const y = norm(h, `${p}.post_attention_layernorm`);
    const gate = linear(y, `${p}.mlp.gate_proj`, cfg.hidden, cfg.ffn);
    const silu = b.op1('Mul', [gate, b.op1('Sigmoid', [gate], dt, act(cfg.ffn))], dt, act(cfg.ffn));
    const up = linear(y, `${p}.mlp.up_proj`, cfg.hidden, cfg.ffn);
    const down = linear(b.op1('Mul', [silu, up], dt, act(cfg.ffn)), `${p}.mlp.down_proj`, cfg.ffn, cfg.hidden);
    h = b.op1('Add', [h, down], dt, act(cfg.hidden));
  }
  const head = cfg.tiedEmbeddings
    ? b.op1('Transpose', [embed], dt, [cfg.hidden, cfg.vocab], { perm: attr.ints([1, 0]) }, { name: '/lm_head/Transpose' })
    : w('lm_head.weight', [cfg.hidden, cfg.vocab]);
  const logits = b.op1('MatMul', [norm(h, 'model.norm'), head], dt, act(cfg.vocab), {}, { outName: 'logits' });
  b.output(logits);
  for (const v of presents) b.output(v);
  return b.graph;
}
