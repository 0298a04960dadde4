// Repeated blocks of a graph (a transformer's decoder layers): the longest run of consecutive nodes
// that is k >= 2 copies of one block, found by structure alone (op, attributes, shapes, dtypes, and
// where each input comes from, as an offset back in node order), never by names. A cost estimate
// prices the graph with the run cut to 1 and 2 copies and extrapolates, instead of materializing the
// program of every copy (compiler/cost-estimate.ts).

import type { AttrValue, Graph, Node, Value } from './types.js';

/** Nodes [start, start + period * count) are `count` structurally identical blocks of `period` nodes. */
export interface RepeatedRun {
  start: number;
  period: number;
  count: number;
}

function attrKey(a: AttrValue): unknown {
  return a.kind === 'tensor' ? ['tensor', a.value.dtype, a.value.dims] : [a.kind, a.value];
}

/** Each node's structure relative to its position, interned to a number (equal numbers: same structure). */
function structureIds(graph: Graph): number[] {
  const index = new Map<Node, number>(graph.nodes.map((n, i) => [n, i]));
  const outputs = new Set(graph.outputs);
  const ids = new Map<string, number>();
  return graph.nodes.map((n, i) => {
    const from = (v: Value | null) => {
      if (v === null) return null;
      const p = v.producer ? index.get(v.producer) : undefined;
      const where = p !== undefined ? [i - p, v.producer!.outputs.indexOf(v)] : v.constant ? 'constant' : 'input';
      return [v.dtype, v.shape, where];
    };
    const key = JSON.stringify([
      n.domain, n.op,
      Object.entries(n.attrs).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, a]) => [k, attrKey(a)]),
      n.inputs.map(from),
      n.outputs.map((o) => [o.dtype, o.shape, outputs.has(o)]),
    ]);
    let id = ids.get(key);
    if (id === undefined) ids.set(key, (id = ids.size));
    return id;
  });
}

/**
 * The run covering the most nodes (ties: the shortest period, so the most copies), or undefined
 * when no block repeats. A block's inputs from an earlier copy must come from the same offset back,
 * so copies chained through a residual stream match and copies reading one shared node do not.
 */
export function findRepeatedRun(graph: Graph): RepeatedRun | undefined {
  const id = structureIds(graph);
  const n = id.length;
  let best: RepeatedRun | undefined;
  for (let p = 1; 2 * p <= n; p++) {
    // A stretch of equal ids at distance p, of length len, from s: blocks s.., s+p.., ..., floor(len/p)+1 of them.
    let s = 0;
    while (s + p < n) {
      if (id[s] !== id[s + p]) {
        s++;
        continue;
      }
      let len = 0;
      while (s + len + p < n && id[s + len] === id[s + len + p]) len++;
      const count = Math.floor(len / p) + 1;
      if (count >= 2 && (!best || p * count > best.period * best.count)) best = { start: s, period: p, count };
      s += len + 1;
    }
  }
  return best;
}

/**
 * Cuts the run to its first `keep` copies, in place: the nodes of the other copies go, what came
 * after the run reads the last kept copy's values instead of the last copy's, and the graph inputs
 * and outputs only the removed copies had go with them.
 */
export function keepRepeats(graph: Graph, run: RepeatedRun, keep: number): void {
  if (keep < 1 || keep > run.count) throw new Error(`internal: cannot keep ${keep} of ${run.count} copies`);
  const cutFrom = run.start + keep * run.period;
  const cutTo = run.start + run.count * run.period;
  const shift = cutTo - cutFrom;
  const removed = new Set(graph.nodes.slice(cutFrom, cutTo));
  // Only the last copy feeds what follows the run: its values become the last kept copy's.
  const replacement = new Map<Value, Value>();
  for (let i = cutTo - run.period; i < cutTo; i++) {
    const kept = graph.nodes[i - shift]!;
    graph.nodes[i]!.outputs.forEach((o, j) => replacement.set(o, kept.outputs[j]!));
  }
  const resolve = (v: Value): Value => replacement.get(v) ?? v;
  const rest = graph.nodes.filter((n) => !removed.has(n));
  for (const n of rest.slice(cutFrom)) n.inputs = n.inputs.map((v) => (v === null ? null : resolve(v)));
  const read = new Set(rest.flatMap((n) => n.inputs));
  graph.nodes = rest;
  graph.inputs = graph.inputs.filter((v) => read.has(v));
  graph.outputs = graph.outputs.filter((v) => !v.producer || !removed.has(v.producer));
}
