// Merges linears that read the same input (Q/K/V after the input norm, gate/up after the MLP norm)
// into one linear with the weights side by side, followed by `fhec::split`; a merged gate/up whose two
// halves feed one swiglu becomes the one-input swiglu. Exact: every output element is the same sum.
//
// When it pays (option `when=cost`, the default): an encrypted matrix-vector product with the
// baby-step/giant-step diagonal method rotates its input about 2*sqrt(K) times, and linears that read
// the same input each pay that again. Merged, the input is rotated once, and the split costs about one
// rotation per extra part; outputs wider than one ciphertext (`slots`) need another pass over the
// input per extra ciphertext. So merged = r(K) * ceil(N_total / slots) + (m - 1) against separate =
// sum of r(K) * ceil(N_i / slots), with r(K) = ceil(2 sqrt(K)).

import type { Graph, Node, Value } from '../../ir/graph/types.js';
import { Tensor } from '../../ir/tensor.js';
import { FhecError } from '../../ir/errors.js';
import { FHEC_DOMAIN } from '../../ir/canonical/ops.js';
import { result, type Pass } from '../pass.js';
import { ColumnConcatTensor } from './lazy.js';
import { Rewriter } from './rewrite.js';

export interface MergeOptions {
  when: 'cost' | 'always' | 'never';
  /** Slots of one ciphertext (N/2 for ring dimension N). */
  slots: number;
}

const rotations = (k: number): number => Math.ceil(2 * Math.sqrt(k));

/** The cost model above: rotations separate vs merged. */
export function mergeCost(K: number, widths: number[], slots: number): { separate: number; merged: number } {
  const total = widths.reduce((a, n) => a + n, 0);
  return {
    separate: widths.reduce((a, n) => a + rotations(K) * Math.ceil(n / slots), 0),
    merged: rotations(K) * Math.ceil(total / slots) + (widths.length - 1),
  };
}

export const mergeProjectionsPass: Pass<Graph, MergeOptions> = {
  name: 'merge-projections',
  summary: 'merge linears reading the same input into one linear + split (when the cost model says so)',
  reads: 'canonical',
  writes: 'canonical',
  options: [
    { name: 'when', type: 'string', help: 'cost | always | never', default: 'cost' },
    { name: 'slots', type: 'int', help: 'ciphertext slots for the cost model', default: 8192 },
  ],
  run(graph, opts) {
    if (!['cost', 'always', 'never'].includes(opts.when)) throw new FhecError(`merge-projections: when must be cost, always or never, got '${opts.when}'`);
    const rw = new Rewriter(graph);
    const notes: string[] = [];
    let merged = 0;
    let fusedSwiglu = 0;
    if (opts.when === 'never') return result(false, { merged });
    const groups = new Map<Value, Node[]>();
    for (const n of graph.nodes) {
      if (n.domain !== FHEC_DOMAIN || n.op !== 'linear') continue;
      const x = n.inputs[0]!;
      groups.set(x, [...(groups.get(x) ?? []), n]);
    }
    for (const [x, lins] of groups) {
      if (lins.length < 2) continue;
      const ws = lins.map((l) => l.inputs[1]!.constant!);
      const K = ws[0]!.dims[0]!;
      if (ws.some((w) => w.dims[0] !== K || w.dtype !== ws[0]!.dtype)) continue;
      const widths = ws.map((w) => w.dims[1]!);
      const cost = mergeCost(K, widths, opts.slots);
      if (opts.when === 'cost' && cost.merged >= cost.separate) {
        notes.push(`'${x.name}': kept ${lins.length} linears (merged ${cost.merged} >= separate ${cost.separate} rotations)`);
        continue;
      }
      const total = widths.reduce((a, n) => a + n, 0);
      const hasBias = lins.some((l) => l.inputs[2]);
      const bias = new Float64Array(total);
      let off = 0;
      lins.forEach((l, i) => {
        const b = l.inputs[2]?.constant?.load();
        if (b) bias.set(b.data, off);
        off += widths[i]!;
      });
      const first = lins[0]!;
      const wV = rw.constant(`${first.inputs[1]!.name}.merged`, new ColumnConcatTensor(ws));
      const bV = hasBias ? rw.constant(`${first.name}.merged_bias`, new Tensor(ws[0]!.dtype, [total], bias)) : null;
      const y0 = first.outputs[0]!;
      const shape = y0.shape ? [...y0.shape.slice(0, -1), total] : undefined;
      const lin = rw.canonical('linear', [x, wV, bV], [{ name: `${first.name}.merged`, dtype: y0.dtype, shape }], {}, first);
      const outs = lins.map((l) => ({ name: `${l.outputs[0]!.name}.part`, dtype: l.outputs[0]!.dtype, shape: l.outputs[0]!.shape }));
      const sp = rw.canonical('split', [lin.outputs[0]!], outs, { sizes: { kind: 'ints', value: widths } }, first);
      lins.forEach((l, i) => rw.replace(l.outputs[0]!, sp.outputs[i]!));
      merged++;
      // split into [g, u] read only by one swiglu(g, u): the one-input swiglu on the merged output.
      if (lins.length === 2 && widths[0] === widths[1]) {
        const [g, u] = sp.outputs as [Value, Value];
        const sw = rw.soleUse(g);
        if (sw && sw.domain === FHEC_DOMAIN && sw.op === 'swiglu' && sw.inputs[0] === g && sw.inputs[1] === u && rw.soleUse(u) === sw) {
          const y = sw.outputs[0]!;
          const fused = rw.canonical('swiglu', [lin.outputs[0]!], [{ name: `${y.name}.fused`, dtype: y.dtype, shape: y.shape }], {}, sw);
          rw.replace(y, fused.outputs[0]!);
          fusedSwiglu++;
        }
      }
    }
    rw.finish();
    return result(merged > 0, { merged, fusedSwiglu }, notes);
  },
};
