// Exports that fuse Q/K/V (GQA: unequal parts) and gate/up into one MatMul cut by a Split or by Slices
// raise to the same canonical ops as the unfused export (passes/canonical/unfuse-projections.ts).
// The fused files are made from the shared model A by test/helpers/fuse-projections.ts, exported
// with fhec's own ONNX writer to a temp dir, and checked: same values as the unfused model in the
// reference interpreter, the same canonical op sequence and histogram (prefill and decode), a pinned
// canonical IR, and the same logits on `sim` through `fhec compile --calibration` and `fhec run`.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { referenceLogits } from '../compiler/accuracy.js';
import { canonicalOps } from '../compiler/commands/inspect.js';
import { loadModel } from '../compiler/driver.js';
import { exportOnnx } from '../compiler/onnx/export.js';
import { importOnnx } from '../compiler/onnx/import.js';
import { attr, GraphBuilder } from '../ir/graph/builder.js';
import { inferGraph } from '../ir/ops/infer-graph.js';
import { raiseLinearPass } from '../passes/canonical/raise-linear.js';
import { unfuseProjectionsPass } from '../passes/canonical/unfuse-projections.js';

import type { Graph } from '../ir/graph/types.js';
import { Tensor } from '../ir/tensor.js';
import { printGraph } from '../ir/text/print.js';


import { generatorBindings, type GeneratorShape } from '../passes/canonical/specialize.js';

import { runGraph } from '../runtime/reference/interpreter.js';
import { verifyGraph } from '../ir/graph/verify.js';
import { maxAbsDiff } from './helpers/compare.js';
import { addProjectionBiases, fuseProjections, type FuseOptions } from './helpers/fuse-projections.js';
import { fhecInProcess } from './helpers/in-process.js';
import { MODELS, ROOT } from './helpers/shared.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-fused-'));
const A17 = path.join(MODELS, 'A_nocache_opset17.onnx');
const AKV = path.join(MODELS, 'A_kvcache_opset14.onnx');

/** Writes a fused copy of `src` (optionally with biases added first, to both the copy and an unfused twin). */
function fusedCopy(src: string, name: string, opts: FuseOptions, biased = false): { fused: string; unfused: string; groups: ReturnType<typeof fuseProjections> } {
  let unfused = src;
  const g = importOnnx(src).graph;
  if (biased) {
    addProjectionBiases(g, 3);
    unfused = path.join(dir, `${name}.unfused.onnx`);
    exportOnnx(g, unfused);
  }
  const groups = fuseProjections(g, opts);
  const fused = path.join(dir, `${name}.onnx`);
  exportOnnx(g, fused);
  return { fused, unfused, groups };
}

function canonical(model: string, shape: GeneratorShape): Graph {
  const g = loadModel(model, { canonical: true, bindings: (gr) => generatorBindings(gr, shape) }).graph;
  delete g.metadata['modelPath'];
  return g;
}

/** The canonical ops of a graph in order (`fhec::linear`, ...), names left out. */
const opSequence = (g: Graph) => g.nodes.map((n) => `${n.domain}::${n.op}`);

/** Inputs for a specialized graph: byte ids, all-ones mask, positions after the past, a seeded past. */
function inputsFor(g: Graph): Record<string, Tensor> {
  let s = 11;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5);
  const past = g.inputs.find((v) => v.name.includes('past'))?.shape?.[2] as number | undefined;
  const out: Record<string, Tensor> = {};
  for (const v of g.inputs) {
    const dims = v.shape as number[];
    const n = dims.reduce((a, d) => a * d, 1);
    const data = v.name === 'input_ids' ? Array.from({ length: n }, (_, i) => (i * 53 + 7) % 256)
      : v.name === 'attention_mask' ? new Array(n).fill(1)
      : v.name === 'position_ids' ? Array.from({ length: n }, (_, i) => (past ?? 0) + i)
      : Array.from({ length: n }, rnd);
    out[v.name] = Tensor.from(v.dtype, dims, data);
  }
  return out;
}

/** Max difference over every output of two graphs run on the same inputs. */
function outputsDiff(a: Graph, b: Graph): number {
  const inputs = inputsFor(a);
  const x = runGraph(a, inputs);
  const y = runGraph(b, inputs);
  expect(Object.keys(x).length).toBeGreaterThan(0);
  expect(Object.keys(y).sort()).toEqual(Object.keys(x).sort());
  return Math.max(...Object.keys(x).map((k) => maxAbsDiff(x[k]!.data, y[k]!.data)));
}

const SHAPES: { label: string; model: string; shape: GeneratorShape }[] = [
  { label: 'prefill 8', model: A17, shape: { kind: 'prefill', sequence: 8 } },
  { label: 'decode after 3', model: AKV, shape: { kind: 'decode', past: 3 } },
];

// Fused forms: parts in the exporter's order or another, cut by Split or by Slices, with and without a bias.
const FORMS: { name: string; opts: FuseOptions; biased?: boolean }[] = [
  { name: 'split-qkv', opts: { cut: 'split' } },
  { name: 'split-kqv', opts: { cut: 'split', order: (n) => (n === 3 ? [1, 0, 2] : [1, 0]) } },
  { name: 'slice-vqk', opts: { cut: 'slice', order: (n) => (n === 3 ? [2, 0, 1] : [1, 0]) } },
  { name: 'split-qkv-bias', opts: { cut: 'split' }, biased: true },
  // Q/K/V viewed as heads first ([B, S, 8, 16]), then cut by heads (4, 2, 2).
  { name: 'heads-split-kqv', opts: { cut: 'split', view: 'heads', order: (n) => (n === 3 ? [1, 0, 2] : [1, 0]) } },
  { name: 'heads-slice-qkv', opts: { cut: 'slice', view: 'heads' } },
];

describe('fused projections raise like unfused ones', () => {
  for (const s of SHAPES) {
    for (const f of FORMS) {
      it(`${path.basename(s.model, '.onnx')} ${f.name}, ${s.label}: same values, same canonical ops`, () => {
        const { fused, unfused, groups } = fusedCopy(s.model, `${path.basename(s.model, '.onnx')}.${f.name}`, f.opts, f.biased);
        // Two layers, each with Q/K/V (64, 32, 32: GQA) and gate/up (192, 192) fused.
        expect(groups.map((g) => [...g.sizes].sort((a, b) => b - a))).toEqual([[64, 32, 32], [192, 192], [64, 32, 32], [192, 192]]);
        if (f.opts.view) expect(groups.map((g) => g.heads && [...g.heads].sort((a, b) => b - a))).toEqual([[4, 2, 2], undefined, [4, 2, 2], undefined]);
        expect(importOnnx(fused).graph.nodes.filter((n) => n.op === 'MatMul').length).toBe(importOnnx(unfused).graph.nodes.filter((n) => n.op === 'MatMul').length - 6);
        const bindings = (gr: Graph) => generatorBindings(gr, s.shape);
        // The reference interpreter on the imported (specialized, folded) graphs: the same function.
        const plainDiff = outputsDiff(loadModel(unfused, { bindings }).graph, loadModel(fused, { bindings }).graph);
        expect(plainDiff).toBeLessThan(1e-5);
        const cu = canonical(unfused, s.shape);
        const cf = canonical(fused, s.shape);
        expect(cf.nodes.every((n) => n.domain === 'fhec')).toBe(true);
        expect(opSequence(cf)).toEqual(opSequence(cu));
        expect(canonicalOps(fused, s.shape)).toEqual(canonicalOps(unfused, s.shape));
        expect(outputsDiff(cu, cf)).toBeLessThan(1e-5);
      });
    }
  }

  it('the unfused model A histogram is what the fused one gets (prefill 8)', () => {
    const { fused } = fusedCopy(A17, 'hist', { cut: 'split', order: (n) => (n === 3 ? [1, 0, 2] : [1, 0]) });
    expect(canonicalOps(fused, { kind: 'prefill', sequence: 8 })).toEqual({
      'fhec::embedding': 1, 'fhec::rms_norm': 5, 'fhec::linear': 9, 'fhec::split': 2, 'fhec::rope': 4, 'fhec::attention': 2, 'fhec::add': 4, 'fhec::swiglu': 2,
    });
  });

  it('pins the canonical IR of a fused KV-cache model (Slices, parts out of order), decode after 3', async () => {
    const { fused } = fusedCopy(AKV, 'golden', FORMS[2]!.opts);
    const text = printGraph(canonical(fused, { kind: 'decode', past: 3 }));
    const file = path.join(ROOT, 'test', 'golden', 'canonical', 'A_kvcache_opset14.fused-qkv.decode3.ir');
    if (process.env.UPDATE_GOLDEN) fs.writeFileSync(file, text);
    expect(text).toBe(fs.readFileSync(file, 'utf8'));
    // The CLI verbs on the fused file: `fhec ir --canonical`, `fhec inspect --canonical --json`.
    const ir = await fhecInProcess('ir', fused, '--canonical', '--decode', '3');
    expect(ir.status, ir.stderr).toBe(0);
    expect(ir.stdout).toMatch(/fhec::split\(.*\{sizes = \[64, 32, 32\]\}/);
    expect(ir.stdout).not.toMatch(/= (Split|Slice|MatMul)\(/);
    const j = await fhecInProcess('inspect', fused, '--canonical', '--json', '--decode', '3');
    expect(j.status, j.stderr).toBe(0);
    expect(JSON.parse(j.stdout).canonicalOps).toEqual(canonicalOps(AKV, { kind: 'decode', past: 3 }));
  });
});

describe('unfuse-projections on hand-built cuts', () => {
  const X = Tensor.from('float32', [1, 3, 8], Array.from({ length: 24 }, (_, i) => Math.cos(i)));
  const W = Tensor.from('float32', [8, 12], Array.from({ length: 96 }, (_, i) => Math.sin(i) / 4));

  /** x @ W, cut by `cut` (which adds nodes and returns the values to output). */
  function graph(cut: (b: GraphBuilder, y: ReturnType<GraphBuilder['op1']>) => ReturnType<GraphBuilder['op1']>[]): Graph {
    const b = new GraphBuilder('g', { '': 18 });
    const x = b.input('x', 'float32', [1, 3, 8]);
    const y = b.op1('MatMul', [x, b.constant('w', W)], 'float32', undefined, {}, { name: 'fused' });
    for (const o of cut(b, y)) b.output(o);
    inferGraph(b.graph);
    return b.graph;
  }
  const i64 = (b: GraphBuilder, data: number[]) => b.constant('c', Tensor.from('int64', [data.length], data));
  const split = (b: GraphBuilder, y: Parameters<Parameters<typeof graph>[0]>[1], sizes: number[], axis = -1) =>
    b.node('Split', [y, i64(b, sizes)], sizes.map(() => ({ dtype: 'float32' as const })), { axis: attr.int(axis) }, { name: 'cut' }).outputs;

  /** Raises linears, then unfuses; returns the pass result and checks the values did not change. */
  function unfuse(g: Graph) {
    const before = runGraph(g, { x: X });
    raiseLinearPass.run(g, {});
    const res = unfuseProjectionsPass.run(g, {});
    verifyGraph(g);
    const after = runGraph(g, { x: X });
    for (const k of Object.keys(before)) expect(maxAbsDiff(after[k]!.data, before[k]!.data), k).toBeLessThan(1e-6);
    return res;
  }

  it('a Split with unequal sizes and a bias added to each part: one biased linear per part', () => {
    const g = graph((b, y) => split(b, y, [2, 6, 4]).map((p, i) =>
      b.op1('Add', [p, b.constant(`b${i}`, Tensor.from('float32', [[2, 6, 4][i]!], new Array([2, 6, 4][i]!).fill(i + 1)))], 'float32')));
    const res = unfuse(g);
    expect(res.stats).toEqual({ fused: 1, parts: 3, biases: 3 });
    expect(g.nodes.map((n) => `${n.domain}::${n.op}`)).toEqual(['fhec::linear', 'fhec::linear', 'fhec::linear']);
    expect(g.nodes.map((n) => n.inputs[1]!.shape)).toEqual([[8, 2], [8, 6], [8, 4]]);
  });

  it('a bias added before the cut is sliced with the weight; Slices may leave columns unread', () => {
    const g = graph((b, y) => {
      const yb = b.op1('Add', [y, b.constant('bias', Tensor.from('float32', [12], Array.from({ length: 12 }, (_, i) => i / 10)))], 'float32');
      const sl = (s: number, e: number) => b.op1('Slice', [yb, i64(b, [s]), i64(b, [e]), i64(b, [2])], 'float32');
      return [sl(8, 1e9), sl(0, 3)];
    });
    expect(unfuse(g).stats).toEqual({ fused: 1, parts: 2, biases: 0 });
    expect(g.nodes.map((n) => [n.op, n.inputs[1]!.shape, n.inputs[2]!.shape])).toEqual([['linear', [8, 4], [4]], ['linear', [8, 3], [3]]]);
  });

  it('a view as heads cut within each head (interleaved q|k|v per head): gathered columns, then the view', () => {
    const g = graph((b, y) => {
      const heads = b.op1('Reshape', [y, i64(b, [1, 3, 2, 6])], 'float32');
      const sl = (s: number, e: number) => b.op1('Slice', [heads, i64(b, [s]), i64(b, [e]), i64(b, [3])], 'float32');
      return [sl(0, 2), sl(2, 4), sl(4, 6)];
    });
    expect(unfuse(g).stats).toEqual({ fused: 1, parts: 3, biases: 0 });
    expect(g.nodes.map((n) => `${n.domain}::${n.op}`).sort()).toEqual(['::Reshape', '::Reshape', '::Reshape', 'fhec::linear', 'fhec::linear', 'fhec::linear']);
    expect(g.nodes.filter((n) => n.op === 'linear').map((n) => n.inputs[1]!.constant!.location)).toEqual(
      ['columns(inline, 4 of 12)', 'columns(inline, 4 of 12)', 'columns(inline, 4 of 12)']);
    expect(g.nodes.filter((n) => n.op === 'Reshape').map((n) => n.outputs[0]!.shape)).toEqual([[1, 3, 2, 2], [1, 3, 2, 2], [1, 3, 2, 2]]);
  });

  it('a view that only reshapes the rows (a 2-D product back to [B, S, N]), then a Split', () => {
    const g = graph((b, y) => {
      const v = b.op1('Reshape', [y, i64(b, [3, 12])], 'float32');
      return b.node('Split', [v, i64(b, [8, 4])], [{ dtype: 'float32' }, { dtype: 'float32' }], { axis: attr.int(1) }).outputs;
    });
    expect(unfuse(g).stats).toEqual({ fused: 1, parts: 2, biases: 0 });
    expect(g.nodes.filter((n) => n.op === 'Reshape').map((n) => n.outputs[0]!.shape)).toEqual([[3, 8], [3, 4]]);
  });

  const leftAlone: [string, Parameters<typeof graph>[0], RegExp][] = [
    ['a cut read next to another reader', (b, y) => [...split(b, y, [4, 8]), b.op1('Relu', [y], 'float32')], /left fused: read by .*Relu/],
    ['a Split of another axis', (b, y) => split(b, y, [1, 2], 1), /left fused: cut \(Split\) splits another axis/],
    ['a view that mixes rows and columns', (b, y) => {
      const v = b.op1('Reshape', [y, i64(b, [1, 6, 6])], 'float32');
      return b.node('Split', [v, i64(b, [3, 3])], [{ dtype: 'float32' }, { dtype: 'float32' }], { axis: attr.int(2) }).outputs;
    }, /left fused: .*Reshape.* mixes rows and columns/],
    ['an empty part', (b, y) => split(b, y, [12, 0]), /left fused: a part is empty/],
    ['a Slice with step 2', (b, y) => [b.op1('Slice', [y, i64(b, [0]), i64(b, [12]), i64(b, [-1]), i64(b, [2])], 'float32', undefined, {}, { name: 'strided' })], /left fused: strided \(Slice\) is not a constant step-1 cut/],
  ];
  it.each(leftAlone)('leaves %s fused, and says why', (_, cut, why) => {
    const g = graph(cut);
    const res = unfuse(g);
    expect(res.changed).toBe(false);
    expect(res.notes.join('\n')).toMatch(why);
    expect(g.nodes.filter((n) => n.op === 'linear')).toHaveLength(1);
  });
});

describe('fhec compile of a fused model', () => {
  it('gives the unfused model\'s plan and, on sim, its logits within the plan\'s error (prefill 8, N=16384)', async () => {
    const { fused } = fusedCopy(A17, 'compile', FORMS[1]!.opts);
    const tokens = Array.from(fs.readFileSync(path.join(MODELS, 'calibration.txt')).subarray(100, 108));
    const inputs = path.join(dir, 'tokens.json');
    fs.writeFileSync(inputs, JSON.stringify({ inputs: { input_ids: { dtype: 'int64', dims: [1, 8], data: tokens } } }));
    const compileAndRun = async (model: string, name: string): Promise<{ logits: number[]; summary: string }> => {
      const plan = path.join(dir, `${name}.json`);
      const c = await fhecInProcess('compile', model, '-o', plan, '--calibration', path.join(MODELS, 'calibration.txt'), '--prefill', '8', '--ring-degree', '16384', '--max-windows', '16');
      expect(c.status, c.stderr).toBe(0);
      const out = path.join(dir, `${name}.out.json`);
      const r = await fhecInProcess('run', plan, '--backend', 'sim', '--inputs', inputs, '--out', out);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/SIMULATION/);
      return { logits: JSON.parse(fs.readFileSync(out, 'utf8')).outputs.logits.data, summary: c.stdout.split('\n').filter((l) => /^(parameters|\d+ ops lowered)/.test(l)).join('\n').replace(/\(table in [^)]*\)/, '') };
    };
    const u = await compileAndRun(A17, 'unfused');
    const f = await compileAndRun(fused, 'fused');
    // The same parameters, op count and refreshes: the same program up to names.
    expect(f.summary).toMatch(/\d+ ops lowered, \d+ refreshes/);
    expect(f.summary).toBe(u.summary);
    const ref = referenceLogits(A17, tokens).data;
    const errU = maxAbsDiff(u.logits, ref);
    const errF = maxAbsDiff(f.logits, ref);
    // Both plans are as far from the plaintext model as the plan's noise and approximations make them,
    // and closer to each other than that (only the simulator's noise draws differ).
    expect(errF).toBeLessThan(0.1);
    expect(errU).toBeLessThan(0.1);
    expect(maxAbsDiff(f.logits, u.logits)).toBeLessThanOrEqual(Math.max(errU, errF));
  }, 180_000);
});
