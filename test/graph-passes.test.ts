// The import pipeline's output, pinned as IR text (FileCheck-style golden files), and the
// folding/DCE passes' behaviour on small graphs.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../compiler/driver.js';
import { attr, GraphBuilder } from '../ir/graph/builder.js';
import type { Graph, LazyTensor } from '../ir/graph/types.js';
import { printGraph } from '../ir/text/print.js';
import { Tensor } from '../ir/tensor.js';
import { runGraph } from '../runtime/reference/interpreter.js';
import { PassManager } from '../passes/pass-manager.js';
import { graphPasses } from '../passes/graph/registry.js';
import { verifyGraph } from '../ir/graph/verify.js';
import { MODELS, ROOT } from './helpers/shared.js';

/** IR text without the machine-specific model path. */
function pinned(graph: Graph): string {
  const { modelPath: _drop, ...metadata } = graph.metadata;
  return printGraph({ ...graph, metadata });
}

function golden(name: string, text: string) {
  const file = path.join(ROOT, 'test', 'golden', 'ir', name);
  if (process.env.UPDATE_GOLDEN) fs.writeFileSync(file, text);
  expect(text).toBe(fs.readFileSync(file, 'utf8'));
}

describe('import pipeline (specialize, infer-shapes, fold-constants, dce)', () => {
  it('pins the specialized IR of model A (opset 14, sequence_length=4)', () => {
    const m = loadModel(path.join(MODELS, 'A_nocache_opset14.onnx'), { bindings: { sequence_length: 4 } });
    golden('A_nocache_opset14.seq4.ir', pinned(m.graph));
  });

  it('pins the specialized IR of the opset-23 KV-cache model in decode shape', () => {
    const m = loadModel(path.join(MODELS, 'A_kvcache_opset23.onnx'), {
      bindings: { sequence_length: 1, past_sequence_length: 7, total_sequence_length: 8 },
    });
    golden('A_kvcache_opset23.decode7.ir', pinned(m.graph));
  });

  it('--print-after prints the IR after the named pass only', () => {
    const printed: string[] = [];
    loadModel(path.join(MODELS, 'A_nocache_opset23.onnx'), {
      bindings: { sequence_length: 2 },
      printAfter: new Set(['fold-constants']),
      emit: (h) => printed.push(h),
    });
    expect(printed).toEqual(['// -----// IR after fold-constants //----- //']);
  });
});

describe('fold-constants and dce', () => {
  function smallGraph() {
    const b = new GraphBuilder('g', { '': 17 });
    const x = b.input('x', 'float32', [2, 3]);
    const shape = b.op1('Shape', [x], 'int64');
    const twice = b.op1('Mul', [shape, b.constant('two', Tensor.from('int64', [1], [2]))], 'int64');
    const zeros = b.op1('ConstantOfShape', [twice], 'float32', undefined, { value: attr.tensor(Tensor.from('float32', [1], [1.5])) });
    const dead = b.op1('Neg', [x], 'float32'); // unused
    void dead;
    const s = b.op1('ReduceSum', [zeros], 'float32', undefined, { keepdims: attr.int(0) });
    b.output(b.op1('Add', [x, s], 'float32', undefined, {}, { outName: 'y' }));
    return b.graph;
  }

  it('folds shape arithmetic to constants, removes dead nodes, and keeps the result', () => {
    const g = smallGraph();
    const x = Tensor.from('float32', [2, 3], [1, 2, 3, 4, 5, 6]);
    const before = runGraph(g, { x }).y!;
    const runs = new PassManager(graphPasses, { verify: verifyGraph, verifyEach: true }).addPipeline('fold-constants').run(g);
    expect(runs[0]!.result.stats.folded).toBe(4); // Shape, Mul, ConstantOfShape, ReduceSum
    expect(runs[0]!.result.stats.removedNodes).toBe(1); // Neg
    expect(g.nodes.map((n) => n.op)).toEqual(['Add']);
    const after = runGraph(g, { x }).y!;
    expect(Array.from(after.data)).toEqual(Array.from(before.data));
    // Shape [2,3] doubled is [4,6]: 24 elements of 1.5 sum to 36.
    expect(Array.from(after.data)).toEqual([1, 2, 3, 4, 5, 6].map((v) => v + 36));
  });

  it('respects max-elements', () => {
    const g = smallGraph();
    const runs = new PassManager(graphPasses).addPipeline('fold-constants{max-elements=3}').run(g);
    // Shape (3 in + 2 out = 5 elements > 3) is shape-only, so it still folds; Mul (2+1+2=5) does not.
    expect(runs[0]!.result.stats.folded).toBe(1);
    expect(g.nodes.map((n) => n.op)).toEqual(['Mul', 'ConstantOfShape', 'ReduceSum', 'Add']);
  });

  it('folds a weight\'s dtype and layout changes past max-elements, but nothing that grows it', () => {
    // An fp16 weight read through Cast to float and Transpose (a tied embedding's lm_head): 6 elements in,
    // 6 out, over a limit of 3. The Tile that doubles it (12 elements) stays a node.
    const b = new GraphBuilder('g', { '': 17 });
    const x = b.input('x', 'float32', [1, 2]);
    // The weight counts its reads: folding must not read it (a graph priced by shape only, `--cost-only`,
    // never loads its weights); running the folded graph reads it.
    const stored = Tensor.from('float16', [3, 2], [1, 2, 3, 4, 5, 0.5]);
    let reads = 0;
    const lazy: LazyTensor = { dtype: 'float16', dims: [3, 2], location: 'external:w@0+12', byteLength: 12, load: () => (reads++, stored) };
    const w16 = b.constant('w16', lazy);
    const w = b.op1('Cast', [w16], 'float32', undefined, { to: attr.int(1) });
    const wt = b.op1('Transpose', [w], 'float32', undefined, { perm: attr.ints([1, 0]) });
    b.output(b.op1('MatMul', [x, wt], 'float32', undefined, {}, { outName: 'y' }));
    b.output(b.op1('Tile', [w, b.constant('reps', Tensor.from('int64', [2], [2, 1]))], 'float32', undefined, {}, { outName: 'big' }));
    const g = b.graph;
    const before = runGraph(g, { x: Tensor.from('float32', [1, 2], [1, -1]) });
    reads = 0;
    const runs = new PassManager(graphPasses, { verify: verifyGraph, verifyEach: true }).addPipeline('fold-constants{max-elements=3}').run(g);
    expect(runs[0]!.result.stats.folded).toBe(2); // Cast, Transpose
    expect(g.nodes.map((n) => n.op)).toEqual(['MatMul', 'Tile']);
    expect(reads).toBe(0);
    expect(g.constants.find((c) => c.name === wt.name)!.constant!.location).toBe('transpose(cast(external:w@0+12))');
    const after = runGraph(g, { x: Tensor.from('float32', [1, 2], [1, -1]) });
    expect(Array.from(after.y!.data)).toEqual(Array.from(before.y!.data));
    expect(Array.from(after.y!.data)).toEqual([-1, -1, 4.5]);
  });

  it('rejects unknown passes and options with the list of what exists', () => {
    expect(() => new PassManager(graphPasses).addPipeline('fold')).toThrowError(/unknown pass 'fold'.*fold-constants/);
    expect(() => new PassManager(graphPasses).addPipeline('dce{x=1}')).toThrowError(/has no option 'x'/);
    expect(() => new PassManager(graphPasses).addPipeline('fold-constants{max-elements=abc}')).toThrowError(/must be an integer/);
  });
});
