// The pass API as another toolchain uses it: only the package entry points (fhec/ir, fhec/passes,
// fhec/runtime), a graph built by hand, one pass run alone, then a pipeline string, results read back.
import { describe, expect, it } from 'vitest';
import { attr, GraphBuilder, inferGraph, Tensor, verifyGraph, type Graph } from '../ir/index.js';
import { canonicalPasses, CANONICAL_PIPELINE, graphPasses, PassManager, raiseSiluPass, type PassRun } from '../passes/index.js';
import { runGraph } from '../runtime/index.js';
import { importOnnx } from '../compiler/onnx/import.js';
import { IMPORT_PIPELINE } from '../passes/index.js';
import { MODELS } from './helpers/shared.js';
import * as path from 'node:path';

/** y = down(silu(x @ Wg) * (x @ Wu)) with a no-op Cast on the way, as an exporter might write it. */
function mlp(): Graph {
  const b = new GraphBuilder('mlp', { '': 17 });
  const x = b.input('x', 'float32', [1, 3, 4]);
  const w = (name: string, k: number, n: number, seed: number) =>
    b.constant(name, Tensor.from('float32', [k, n], Array.from({ length: k * n }, (_, i) => Math.sin(seed + i))));
  const xc = b.op1('Cast', [x], 'float32', undefined, { to: attr.int(1) });
  const g = b.op1('MatMul', [xc, w('wg', 4, 6, 1)], 'float32');
  const u = b.op1('MatMul', [xc, w('wu', 4, 6, 2)], 'float32');
  const h = b.op1('Mul', [b.op1('Mul', [g, b.op1('Sigmoid', [g], 'float32')], 'float32'), u], 'float32');
  b.output(b.op1('MatMul', [h, w('wd', 6, 4, 3)], 'float32', undefined, {}, { outName: 'y' }));
  inferGraph(b.graph);
  return b.graph;
}

const x = Tensor.from('float32', [1, 3, 4], [0.5, -1, 2, 0.25, 1, 1, -0.5, 0, 3, -2, 0.1, 0.7]);

describe('pass API from outside', () => {
  it('runs one pass object directly and reads its result', () => {
    const g = mlp();
    const before = runGraph(g, { x })['y']!;
    const res = raiseSiluPass.run(g, {});
    expect(raiseSiluPass.reads).toBe('graph');
    expect(res.changed).toBe(true);
    expect(res.stats).toEqual({ silu: 1, swiglu: 1 });
    expect(res.error?.maxAbs).toBe(0);
    expect(res.error?.how).toMatch(/same function/);
    verifyGraph(g);
    expect(g.nodes.map((n) => `${n.domain}::${n.op}`)).toEqual(['::Cast', '::MatMul', '::MatMul', 'fhec::swiglu', '::MatMul']);
    const after = runGraph(g, { x })['y']!;
    for (let i = 0; i < after.size; i++) expect(after.data[i]).toBeCloseTo(before.data[i]!, 6);
  });

  it('runs a named pipeline with the manager: timing, per-pass results, canonical graph out', () => {
    const g = mlp();
    const before = runGraph(g, { x })['y']!;
    const printed: string[] = [];
    const pm = new PassManager(new Map([...graphPasses, ...canonicalPasses]), {
      verify: verifyGraph,
      verifyEach: true,
      print: (ir) => ir.nodes.map((n) => n.op).join(' '),
      printAfter: new Set(['raise-linear']),
      emit: (header, text) => printed.push(`${header}\n${text}`),
    });
    pm.addPipeline(CANONICAL_PIPELINE);
    expect(pm.pipeline).toBe(CANONICAL_PIPELINE.replace(/\{[^}]*\}/g, ''));
    const runs: PassRun[] = pm.run(g);
    const byName = Object.fromEntries(runs.map((r) => [r.pass, r]));
    expect(byName['drop-noop-casts']!.result.stats).toEqual({ dropped: 1 });
    expect(byName['raise-linear']!.result.stats['raised']).toBe(3);
    expect(byName['merge-projections']!.result.stats).toEqual({ merged: 1, fusedSwiglu: 1 });
    expect(runs.every((r) => r.ms >= 0)).toBe(true);
    expect(printed.length).toBe(1);
    expect(printed[0]).toMatch(/^\/\/ -----\/\/ IR after raise-linear \/\/----- \/\/\n(linear|Sigmoid|Mul| )+$/);
    // gate|up merged into one linear feeding the one-input swiglu, then down.
    expect(g.nodes.map((n) => n.op)).toEqual(['linear', 'swiglu', 'linear']);
    expect(g.nodes[0]!.inputs[1]!.constant!.dims).toEqual([4, 12]);
    const after = runGraph(g, { x })['y']!;
    for (let i = 0; i < after.size; i++) expect(after.data[i]).toBeCloseTo(before.data[i]!, 6);
  });

  it('specializes an imported model for decode and raises it with one pipeline string', () => {
    const { graph } = importOnnx(path.join(MODELS, 'A_kvcache_opset14.onnx'));
    const pm = new PassManager(new Map([...graphPasses, ...canonicalPasses]), { verify: verifyGraph, verifyEach: true });
    const runs = pm.addPipeline(`specialize-generator{decode=5},${IMPORT_PIPELINE},${CANONICAL_PIPELINE}`).run(graph);
    expect(runs[0]!.result.stats).toMatchObject({ 'dim:sequence_length': 1, 'dim:past_sequence_length': 5, 'dim:total_sequence_length': 6 });
    expect(graph.inputs.find((v) => v.name === 'past_key_values.0.key')!.shape).toEqual([1, 2, 5, 16]);
    expect(new Set(graph.nodes.map((n) => n.domain))).toEqual(new Set(['fhec']));
    const att = runs.find((r) => r.pass === 'raise-attention')!.result;
    expect(att.stats).toMatchObject({ decomposed: 2, causal: 2, withPadding: 2 });
    expect(() => new PassManager(canonicalPasses).addPipeline('specialize-generator{prefill=4,decode=2}').run(importOnnx(path.join(MODELS, 'A_kvcache_opset14.onnx')).graph)).toThrow(/exactly one of prefill=S or decode=P/);
  });

  it('rejects an unknown pass by name, listing the known ones', () => {
    const pm = new PassManager(canonicalPasses);
    expect(() => pm.addPipeline('raise-everything')).toThrow(/unknown pass 'raise-everything' \(known: .*raise-rope/);
  });
});
