// Folds the gain of an rms_norm into the linears that read it: rms_norm(x, g) @ W = rms_norm(x) @ (diag(g) W).
// Done only when every reader of the rms_norm is a linear (as in Llama: q/k/v after the input norm,
// gate/up after the post-attention norm, lm_head after the final norm), so the norm loses a plaintext
// multiplication and a level in FHE. The folded weights are rounded to the weight dtype; the largest
// rounding change of a weight is reported as the pass's error.

import type { Graph, Node } from '../../ir/graph/types.js';
import { RowScaledTensor } from './lazy.js';
import type { PassResult, Pass } from '../pass.js';
import { Rewriter } from './rewrite.js';
import { FHEC_DOMAIN } from '../../ir/canonical/ops.js';

/**
 * Weights are read to measure the rounding until this many elements have been read in one run (the
 * first weights in graph order); the rest stay lazy, so a model of any size folds in bounded time
 * and memory (an 8B model's k/v projections alone are 268M elements).
 */
const MEASURE_UP_TO = 1 << 22;

export const foldRmsGainPass: Pass<Graph, Record<string, never>> = {
  name: 'fold-rms-gain',
  summary: 'fold rms_norm gains into the weights of the linears that read the norm',
  reads: 'canonical',
  writes: 'canonical',
  options: [],
  run(graph): PassResult {
    const rw = new Rewriter(graph);
    let folded = 0;
    let weights = 0;
    let maxAbs = 0;
    let unmeasured = 0;
    let measured = 0;
    const notes: string[] = [];
    for (const node of [...graph.nodes]) {
      if (node.domain !== FHEC_DOMAIN || node.op !== 'rms_norm' || !node.inputs[1]) continue;
      const y = node.outputs[0]!;
      const readers = rw.usesOf(y);
      const allLinear = readers.length > 0 && !rw.isGraphOutput(y) && readers.every((r: Node) => r.domain === FHEC_DOMAIN && r.op === 'linear' && r.inputs[0] === y && r.inputs[1] !== y);
      if (!allLinear) continue;
      const g = node.inputs[1]!.constant!.load();
      for (const lin of readers) {
        const wV = lin.inputs[1]!;
        const w = wV.constant!;
        const [K, N] = w.dims as [number, number];
        if (K !== g.size) {
          notes.push(`${lin.name}: gain of ${g.size} does not match weight [${K}, ${N}]`);
          continue;
        }
        const scaled = new RowScaledTensor(w, g.data);
        if (measured + K * N <= MEASURE_UP_TO) {
          measured += K * N;
          const exact = scaled.exact();
          const stored = scaled.load().data;
          for (let i = 0; i < exact.length; i++) maxAbs = Math.max(maxAbs, Math.abs(stored[i]! - exact[i]!));
        } else {
          unmeasured++;
        }
        lin.inputs[1] = rw.constant(`${wV.name}.gain_folded`, scaled);
        weights++;
      }
      node.inputs = [node.inputs[0]!];
      folded++;
    }
    rw.finish();
    return {
      changed: folded > 0,
      stats: { folded, weights },
      notes,
      error: {
        maxAbs,
        how: `largest change of a folded weight from rounding gain*weight to the weight dtype${unmeasured ? ` (${unmeasured} weights past the first ${MEASURE_UP_TO} elements not read: one rounding each)` : ''}`,
      },
    };
  },
};
