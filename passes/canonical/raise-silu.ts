// Raises SiLU and SwiGLU: x * Sigmoid(x) (either operand order) becomes `fhec::silu(x)`, and
// silu(g) * u becomes `fhec::swiglu(g, u)` when the silu has no other reader. x * Sigmoid(c * x) with
// c != 1 (Swish-beta, QuickGELU) is a different function and is left alone with a note.

import type { Graph, Node, Value } from '../../ir/graph/types.js';
import { isFloat } from '../../ir/dtype.js';
import type { Pass } from '../pass.js';
import { constScalar, producedBy, producedByCanonical, raised, Rewriter, shortNum, where } from './rewrite.js';

/** x when v = c * x with a constant scalar c (returns c too). */
function scaled(v: Value | null | undefined): { x: Value; c: number } | undefined {
  const m = producedBy(v, 'Mul');
  if (!m) return undefined;
  for (const [a, b] of [[0, 1], [1, 0]] as const) {
    const c = constScalar(m.inputs[b]);
    if (c !== undefined) return { x: m.inputs[a]!, c };
  }
  return undefined;
}

export const raiseSiluPass: Pass<Graph, Record<string, never>> = {
  name: 'raise-silu',
  summary: 'raise x * sigmoid(x) to fhec::silu and silu(g) * u to fhec::swiglu',
  reads: 'graph',
  writes: 'canonical',
  options: [],
  run(graph) {
    const rw = new Rewriter(graph);
    const notes: string[] = [];
    let silus = 0;
    let swiglus = 0;
    const siluOf = new Map<Value, Node>();
    for (const node of [...graph.nodes]) {
      if (node.op !== 'Mul' || node.domain !== '') continue;
      const y = node.outputs[0]!;
      if (!isFloat(y.dtype)) continue;
      for (const [a, b] of [[0, 1], [1, 0]] as const) {
        const sig = producedBy(node.inputs[b], 'Sigmoid');
        if (!sig) continue;
        const x = node.inputs[a]!;
        if (sig.inputs[0] === x) {
          const s = rw.canonical('silu', [x], [{ name: `${node.name}.silu`, dtype: y.dtype, shape: y.shape }], {}, node);
          rw.replace(y, s.outputs[0]!);
          siluOf.set(s.outputs[0]!, s);
          silus++;
          break;
        }
        const sc = scaled(sig.inputs[0]);
        if (sc && sc.x === x) notes.push(`${where(node)}: SiLU-like pattern left alone: x * sigmoid(${shortNum(sc.c)} * x) is not SiLU`);
      }
    }
    // silu(g) * u -> swiglu(g, u).
    for (const node of [...graph.nodes]) {
      if (node.op !== 'Mul' || node.domain !== '') continue;
      for (const [a, b] of [[0, 1], [1, 0]] as const) {
        const s = producedByCanonical(node.inputs[a], 'silu');
        if (!s || rw.soleUse(s.outputs[0]!) !== node || node.inputs[b] === node.inputs[a]) continue;
        const y = node.outputs[0]!;
        const sw = rw.canonical('swiglu', [s.inputs[0]!, node.inputs[b]!], [{ name: `${node.name}.swiglu`, dtype: y.dtype, shape: y.shape }], {}, node);
        rw.replace(y, sw.outputs[0]!);
        swiglus++;
        break;
      }
    }
    rw.finish();
    return raised(silus > 0, { silu: silus, swiglu: swiglus }, notes);
  },
};
