// Calibration statistics the encrypted softmax needs beyond the value ranges: for every attention op,
// the range of the scores relative to a per-row shift the circuit can compute (the query's own,
// always-visible diagonal score), and of the resulting row sums. Encrypted softmax cannot take a row
// max, so it normalizes by that shift instead; these ranges size its exp and reciprocal.

import type { Graph, Node, Value } from '../../../ir/graph/types.js';
import type { Tensor } from '../../../ir/tensor.js';
import { attrFloat, attrInt } from '../../../ir/graph/attrs.js';
import { runGraph } from '../../../runtime/reference/interpreter.js';

export interface AttentionStats {
  /** min/max over rows and keys of s_ij - s_ii (visible keys only). */
  relMin: number;
  relMax: number;
  /** min/max over rows of sum_j exp(s_ij - s_ii). */
  sumMin: number;
  sumMax: number;
  /** Range of the diagonal (the query's own) score. */
  diagMin: number;
  diagMax: number;
  /** Raw score range. */
  scoreMin: number;
  scoreMax: number;
  rows: number;
}

function emptyStats(): AttentionStats {
  return { diagMin: Infinity, diagMax: -Infinity, relMin: Infinity, relMax: -Infinity, sumMin: Infinity, sumMax: -Infinity, scoreMin: Infinity, scoreMax: -Infinity, rows: 0 };
}

/** Scores of one prefill attention op (q [1,S,N*H], k [1,S,Nkv*H], past ignored) folded into `st`. */
export function observeAttention(node: Node, q: Tensor, k: Tensor, st: AttentionStats, past?: Tensor): void {
  const n = attrInt(node, 'num_heads');
  const nkv = attrInt(node, 'kv_num_heads', n);
  const scale = attrFloat(node, 'scale', NaN);
  const S = q.dims[1]!;
  const H = q.dims[2]! / n;
  const sc = Number.isNaN(scale) ? 1 / Math.sqrt(H) : scale;
  const P = past ? past.dims[2]! : 0;
  const keyAt = (j: number, kh: number, c: number): number =>
    j < P ? past!.data[(kh * P + j) * H + c]! : k.data[(j - P) * nkv * H + kh * H + c]!;
  for (let h = 0; h < n; h++) {
    const kh = Math.floor(h / (n / nkv));
    for (let i = 0; i < S; i++) {
      const scores: number[] = [];
      for (let j = 0; j <= P + i; j++) {
        let s = 0;
        for (let c = 0; c < H; c++) s += q.data[i * n * H + h * H + c]! * keyAt(j, kh, c);
        scores.push(s * sc);
      }
      const diag = scores[P + i]!;
      st.diagMin = Math.min(st.diagMin, diag);
      st.diagMax = Math.max(st.diagMax, diag);
      let sum = 0;
      for (const s of scores) {
        st.relMin = Math.min(st.relMin, s - diag);
        st.relMax = Math.max(st.relMax, s - diag);
        st.scoreMin = Math.min(st.scoreMin, s);
        st.scoreMax = Math.max(st.scoreMax, s);
        sum += Math.exp(s - diag);
      }
      st.sumMin = Math.min(st.sumMin, sum);
      st.sumMax = Math.max(st.sumMax, sum);
      st.rows++;
    }
  }
}

/**
 * A runGraph onNode hook folding one run's attention ops (the run on `inputs`) into `stats`, by node
 * name: calibration passes it along with its own (Calibrator.observe), so one run of the graph serves both.
 */
export function attentionObserver(graph: Graph, inputs: Record<string, Tensor>, stats: Map<string, AttentionStats>): (node: Node, outs: Tensor[]) => void {
  // Only the values attention ops read are held, until the end of the run.
  const read = new Set(graph.nodes.filter(isAttention).flatMap((n) => n.inputs.filter((v): v is Value => !!v)));
  const env = new Map<Value, Tensor>();
  for (const v of graph.inputs) if (read.has(v) && inputs[v.name]) env.set(v, inputs[v.name]!);
  return (node, outs) => {
    node.outputs.forEach((v, i) => {
      if (read.has(v)) env.set(v, outs[i]!);
    });
    if (!isAttention(node)) return;
    const get = (i: number): Tensor | undefined => {
      const v = node.inputs[i];
      if (!v) return undefined;
      return env.get(v) ?? v.constant?.load();
    };
    const st = stats.get(node.name) ?? emptyStats();
    observeAttention(node, get(0)!, get(1)!, st, get(3));
    stats.set(node.name, st);
  };
}

const isAttention = (node: Node): boolean => node.domain === 'fhec' && node.op === 'attention';

/** Runs the canonical graph on every set and collects AttentionStats per attention node name. */
export function collectAttentionStats(graph: Graph, sets: Iterable<Record<string, Tensor>>): Map<string, AttentionStats> {
  const stats = new Map<string, AttentionStats>();
  for (const inputs of sets) runGraph(graph, inputs, { onNode: attentionObserver(graph, inputs, stats) });
  return stats;
}

/** Statistics of two sets of rows together (a decode bucket's pasts, each run on its own specialization). */
export function mergeAttentionStats(a: AttentionStats, b: AttentionStats): AttentionStats {
  return {
    relMin: Math.min(a.relMin, b.relMin),
    relMax: Math.max(a.relMax, b.relMax),
    sumMin: Math.min(a.sumMin, b.sumMin),
    sumMax: Math.max(a.sumMax, b.sumMax),
    diagMin: Math.min(a.diagMin, b.diagMin),
    diagMax: Math.max(a.diagMax, b.diagMax),
    scoreMin: Math.min(a.scoreMin, b.scoreMin),
    scoreMax: Math.max(a.scoreMax, b.scoreMax),
    rows: a.rows + b.rows,
  };
}
