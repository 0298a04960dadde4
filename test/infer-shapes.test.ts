// Type and shape inference: symbolic propagation through shape arithmetic, binding, conflicts.
import { describe, expect, it } from 'vitest';
import { importOnnx } from '../compiler/onnx/import.js';
import { attr, GraphBuilder } from '../ir/graph/builder.js';
import { FhecError } from '../ir/errors.js';
import { hasInferenceRule } from '../ir/ops/infer.js';
import { inferGraph } from '../ir/ops/infer-graph.js';
import { Tensor } from '../ir/tensor.js';
import { supportedOps } from '../runtime/reference/registry.js';
import { PassManager } from '../passes/pass-manager.js';
import { graphPasses } from '../passes/graph/registry.js';
import { verifyGraph } from '../ir/graph/verify.js';
import { ALL_MODELS } from './helpers/shared.js';

describe('shape inference', () => {
  it('has a rule for every op the interpreter supports', () => {
    const missing = supportedOps().filter((o) => o.op !== 'Constant' && !hasInferenceRule(o.domain, o.op));
    expect(missing).toEqual([]);
  });

  it('carries symbolic dims through Shape/Gather/Concat/Reshape', () => {
    const b = new GraphBuilder('g', { '': 17 });
    const x = b.input('x', 'float32', [1, 'seq', 64]);
    const shape = b.op1('Shape', [x], 'int64');
    const seq = b.op1('Gather', [shape, b.constant('one', Tensor.from('int64', [1], [1]))], 'int64', undefined, { axis: attr.int(0) });
    const target = b.op1('Concat', [b.constant('a', Tensor.from('int64', [1], [1])), seq, b.constant('b', Tensor.from('int64', [2], [4, 16]))], 'int64', undefined, { axis: attr.int(0) });
    const y = b.op1('Reshape', [x, target], 'float32');
    const t = b.op1('Transpose', [y], 'float32', undefined, { perm: attr.ints([0, 2, 1, 3]) });
    b.output(t);
    inferGraph(b.graph);
    expect(y.shape).toEqual([1, 'seq', 4, 16]);
    expect(t.shape).toEqual([1, 4, 'seq', 16]);
  });

  it('reports contradictory shapes naming the node', () => {
    const b = new GraphBuilder('g', { '': 17 });
    const x = b.input('x', 'float32', [2, 3]);
    const w = b.constant('w', Tensor.zeros('float32', [3, 4]));
    const y = b.op1('MatMul', [x, w], 'float32', [2, 5], {}, { name: 'mm' });
    b.output(y);
    expect(() => inferGraph(b.graph)).toThrowError(/contradictory shapes.*\[2, 5\].*\[2, 4\]/);
    try {
      inferGraph(b.graph);
    } catch (e) {
      expect((e as FhecError).where.node).toContain('mm');
    }
  });

  it('rejects a broadcast mismatch', () => {
    const b = new GraphBuilder('g', { '': 17 });
    const x = b.input('x', 'float32', [2, 3]);
    const y = b.input('y', 'float32', [4, 3]);
    b.output(b.op1('Add', [x, y], 'float32', undefined, {}, { name: 'add' }));
    expect(() => inferGraph(b.graph)).toThrowError(/cannot broadcast dims 2 and 4/);
  });

  // The generator's two shapes: prefill (S tokens, no past) and decode (1 token after P).
  const shapes = [{ seq: 5, past: 0 }, { seq: 1, past: 4 }];
  it.each(shapes)('every shared model becomes fully concrete once its dims are bound ($seq new, $past past)', ({ seq, past }) => {
    for (const file of ALL_MODELS) {
      const { graph } = importOnnx(file);
      const dims = new Set(graph.inputs.flatMap((v) => (v.shape ?? []).filter((d): d is string => typeof d === 'string')));
      const bindings: Record<string, number> = {};
      for (const d of dims) bindings[d] = d.startsWith('past') ? past : d.startsWith('total') ? seq + past : d.startsWith('batch') ? 1 : seq;
      const runs = new PassManager(graphPasses, { verify: verifyGraph, verifyEach: true })
        .add('specialize', { bindings })
        .addPipeline('infer-shapes,fold-constants,dce')
        .run(graph);
      expect(runs.map((r) => r.pass)).toEqual(['specialize', 'infer-shapes', 'fold-constants', 'dce']);
      const notConcrete = graph.nodes.flatMap((n) => n.outputs).filter((v) => !v.shape || v.shape.some((d) => typeof d !== 'number'));
      expect(notConcrete.map((v) => v.name), file).toEqual([]);
      // Only real computation is left: no Shape plumbing survives specialization.
      expect(graph.nodes.filter((n) => n.op === 'Shape'), file).toEqual([]);
    }
  });
});
