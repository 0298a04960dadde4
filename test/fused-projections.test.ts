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
import { canonicalOps } from '../compiler/commands/inspect.js';
import { loadModel } from '../compiler/driver.js';
import { exportOnnx } from '../compiler/onnx/export.js';
import { importOnnx } from '../compiler/onnx/import.js';

import type { Graph } from '../ir/graph/types.js';
import { Tensor } from '../ir/tensor.js';
import { printGraph } from '../ir/text/print.js';


import { generatorBindings, type GeneratorShape } from '../passes/canonical/specialize.js';

import { runGraph } from '../runtime/reference/interpreter.js';
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
];

describe('fused projections raise like unfused ones', () => {
  for (const s of SHAPES) {
    for (const f of FORMS) {
      it(`${path.basename(s.model, '.onnx')} ${f.name}, ${s.label}: same values, same canonical ops`, () => {
        const { fused, unfused, groups } = fusedCopy(s.model, `${path.basename(s.model, '.onnx')}.${f.name}`, f.opts, f.biased);
        // Two layers, each with Q/K/V (64, 32, 32: GQA) and gate/up (192, 192) fused.
        expect(groups.map((g) => [...g.sizes].sort((a, b) => b - a))).toEqual([[64, 32, 32], [192, 192], [64, 32, 32], [192, 192]]);
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

  it('pins the canonical IR of a fused KV-cache model (Slices, parts out of order), decode after 3', () => {
    const { fused } = fusedCopy(AKV, 'golden', FORMS[2]!.opts);
    const text = printGraph(canonical(fused, { kind: 'decode', past: 3 }));
    const file = path.join(ROOT, 'test', 'golden', 'canonical', 'A_kvcache_opset14.fused-qkv.decode3.ir');
    if (process.env.UPDATE_GOLDEN) fs.writeFileSync(file, text);
    expect(text).toBe(fs.readFileSync(file, 'utf8'));
  });
});
