// silu / swiglu / rms_norm / rope kernels on the CKKS simulator (and SEAL for silu and rms_norm) against
// the float64 canonical reference kernels, on random inputs inside the calibrated ranges and on real
// activations of model A (canonical graph run by the reference interpreter, ranges from calibration.txt).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { textCalibrationSets } from '../compiler/calibration-data.js';
import { loadModel } from '../compiler/driver.js';
import { attrFloat, attrInt } from '../ir/graph/attrs.js';
import { runGraph } from '../runtime/reference/interpreter.js';
import type { Graph, Node, Value } from '../ir/graph/types.js';
import { FheBuilder } from '../ir/fhe/index.js';
import type { FheValue, SlotLayout } from '../ir/fhe/types.js';
import { Tensor } from '../ir/tensor.js';
import { calibrate } from '../passes/calibrate/calibrate.js';
import { multiplicativeDepth } from '../passes/fhe/depth.js';
import { lowerRmsNorm } from '../passes/fhe/kernels/rms-norm.js';
import { lowerRope } from '../passes/fhe/kernels/rope.js';
import { lowerSilu, lowerSwiglu, lowerSwigluFused } from '../passes/fhe/kernels/silu.js';
import { manageScales } from '../passes/fhe/manage.js';
import { replicatedLayout } from '../passes/fhe/packing.js';
import type { CkksBackend } from '../runtime/backend.js';
import { runProgram } from '../runtime/ckks/execute.js';
import { fheChain, selectParameters } from '../ir/ckks/params.js';
import { canonicalKernels } from '../runtime/reference/ops/canonical.js';
import { sealBackend } from '../runtime/seal/backend.js';
import { simBackend } from '../runtime/sim/backend.js';
import { MODELS } from './helpers/shared.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** The whole slot vector of a layout's blocks (all copies), to check that the output is replicated. */
const fullLayout = (l: SlotLayout): SlotLayout => ({ length: l.stride, tokens: l.tokens, stride: l.stride, period: l.stride, copies: 1 });

/** Expected slots of a replicated layout for row-major [tokens, length] data. */
function replicated(l: SlotLayout, data: ArrayLike<number>): Float64Array {
  const out = new Float64Array(l.stride * l.tokens);
  for (let t = 0; t < l.tokens; t++) for (let r = 0; r < l.copies; r++) for (let j = 0; j < l.length; j++) out[t * l.stride + r * l.period + j] = data[t * l.length + j]!;
  return out;
}

interface Built {
  inputs: Record<string, { layout: SlotLayout; data: ArrayLike<number> }>;
  output: { value: FheValue; layout: SlotLayout };
}

/** Builds with fresh inputs, manages for the smallest secure chain, runs; returns all output slots. */
async function run(n: number, build: (b: FheBuilder, input: (name: string, l: SlotLayout) => FheValue) => FheValue, layouts: Record<string, [SlotLayout, ArrayLike<number>]>, outLayout: SlotLayout, backend: CkksBackend = simBackend) {
  const b = new FheBuilder('kernel', n / 2);
  const value = build(b, (name, l) => b.input(name, l));
  b.output('y', value, fullLayout(outLayout));
  const program = b.build();
  const depth = multiplicativeDepth(program);
  const params = selectParameters({ depth, ringDegree: n });
  const managed = manageScales(program, { chain: fheChain(params), topScale: params.scale });
  const tensors = Object.fromEntries(Object.entries(layouts).map(([k, [, d]]) => [k, d]));
  const res = await runProgram(managed, params, backend, tensors);
  return { slots: res.outputs.get('y')!.values, depth };
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, x) => Math.max(m, Math.abs(x)), 0);

// ---------------------------------------------------------------------------------------------------
// Model A: canonical graph, calibrated, activations of one window.

let graph: Graph;
let acts: Map<string, Tensor>;
const T = 64;
const tensorOf = (v: Value): Tensor => acts.get(v.name) ?? v.constant!.load();
const opsOf = (op: string): Node[] => graph.nodes.filter((n) => n.domain === 'fhec' && n.op === op);
/** Rows [t0, t0+count) of a [1, T, D] tensor. */
const rows = (t: Tensor, t0: number, count: number): Float64Array => {
  const D = t.dims[t.dims.length - 1]!;
  return t.data.slice(t0 * D, (t0 + count) * D);
};
/** Runs the canonical float64 reference kernel of `op` (float64 tensors, so no float32 rounding). */
function reference(op: string, attrs: Record<string, number>, ins: (Tensor | null)[]): Tensor {
  const node = {
    op,
    domain: 'fhec',
    name: op,
    inputs: [],
    outputs: [],
    attrs: Object.fromEntries(Object.entries(attrs).map(([k, v]) => [k, Number.isInteger(v) && k !== 'epsilon' ? { kind: 'int', value: v } : { kind: 'float', value: v }])),
  } as unknown as Node;
  return canonicalKernels[op]!({ node, opset: 1 }, ins)[0]!;
}
const f64 = (dims: number[], data: ArrayLike<number>) => Tensor.from('float64', dims, Array.from(data));

beforeAll(() => {
  graph = loadModel(path.join(MODELS, 'A_nocache_opset14.onnx'), { canonical: true, bindings: { sequence_length: T } }).graph;
  const text = fs.readFileSync(path.join(MODELS, 'calibration.txt'));
  const sets = textCalibrationSets(graph, text, 'calibration.txt', { maxWindows: 3 }).map((s) => s.inputs);
  calibrate(graph, sets);
  acts = new Map();
  runGraph(graph, sets[1]!, { onNode: (node, outs) => node.outputs.forEach((v, i) => acts.set(v.name, outs[i]!)) });
});

describe('silu and swiglu', () => {
  it('silu on random inputs inside the range (sim): error within the approximation bound', async () => {
    const N = 16384;
    const layout = replicatedLayout(192, N / 2, 16);
    const r = rng(3);
    const range = { lo: -7.2, hi: 5.4 };
    const xs = Float64Array.from({ length: 192 * 16 }, () => range.lo + (range.hi - range.lo) * r());
    let bound = 0;
    const out = await run(N, (b, input) => {
      const res = lowerSilu(b, input('x', layout), layout, range);
      bound = res.approximations[0]!.maxError;
      expect(res.cost.depth).toBe(res.approximations[0]!.depth);
      return res.values[0]!;
    }, { x: [layout, xs] }, layout);
    const want = replicated(layout, reference('silu', {}, [f64([16, 192], xs)]).data);
    const err = maxDiff(out.slots, want);
    console.log(`silu random, 16 tokens x 192 (sim): depth ${out.depth}, max error ${err.toExponential(2)} (approximation bound ${bound.toExponential(2)})`);
    expect(err).toBeLessThan(bound + 1e-5);
  });

  for (const backend of [simBackend, sealBackend]) {
    it(`swiglu of model A layer 1 (real gate/up of 16 tokens, ${backend === simBackend ? 'sim' : 'seal'})`, async () => {
      const node = opsOf('swiglu')[1]!;
      const fused = tensorOf(node.inputs[0]!);
      const range = node.inputs[0]!.range!;
      const tokens = 16;
      const half = 192;
      const gate = new Float64Array(tokens * half);
      const up = new Float64Array(tokens * half);
      for (let t = 0; t < tokens; t++) for (let j = 0; j < half; j++) {
        gate[t * half + j] = fused.data[t * 2 * half + j]!;
        up[t * half + j] = fused.data[t * 2 * half + half + j]!;
      }
      const N = 16384;
      const layout = replicatedLayout(half, N / 2, tokens);
      let bound = 0;
      const out = await run(N, (b, input) => {
        const res = lowerSwiglu(b, input('gate', layout), input('up', layout), layout, range);
        bound = res.approximations[0]!.maxError * maxAbs(up);
        return res.values[0]!;
      }, { gate: [layout, gate], up: [layout, up] }, layout, backend);
      const want = replicated(layout, rows(tensorOf(node.outputs[0]!), 0, tokens));
      const err = maxDiff(out.slots, want);
      console.log(`swiglu layer 1, gate range [${range.lo.toFixed(2)}, ${range.hi.toFixed(2)}]: depth ${out.depth}, max error ${err.toExponential(2)} vs bound ${bound.toExponential(2)}, |y| <= ${maxAbs(want).toFixed(2)}`);
      expect(err).toBeLessThan(bound + 1e-4);
    });
  }
});

describe('swiglu, fused gate/up input', () => {
  it('model A layer 0 (the merged gate/up output of 16 tokens, sim): halves split in slots', async () => {
    const node = opsOf('swiglu')[0]!;
    const fused = tensorOf(node.inputs[0]!);
    const tokens = 16;
    const N = 32768;
    const layout = replicatedLayout(384, N / 2, tokens);
    let outLayout: SlotLayout = layout;
    let bound = 0;
    let cost = '';
    const b0 = rows(fused, 0, tokens);
    let up = 0;
    for (let t = 0; t < tokens; t++) for (let j = 192; j < 384; j++) up = Math.max(up, Math.abs(b0[t * 384 + j]!));
    const out = await run(N, (b, input) => {
      const res = lowerSwigluFused(b, input('x', layout), layout, node.inputs[0]!.range!);
      outLayout = res.layout;
      bound = res.approximations[0]!.maxError * up;
      cost = `${res.cost.rotations} rotations, depth ${res.cost.depth}`;
      return res.values[0]!;
    }, { x: [layout, b0] }, replicatedLayout(192, N / 2, tokens));
    expect(outLayout).toEqual(replicatedLayout(192, N / 2, tokens));
    const want = replicated(outLayout, rows(tensorOf(node.outputs[0]!), 0, tokens));
    const err = maxDiff(out.slots, want);
    console.log(`fused swiglu layer 0: ${cost}, max error ${err.toExponential(2)} vs bound ${bound.toExponential(2)}`);
    expect(err).toBeLessThan(bound + 1e-4);
  });
});

describe('rms_norm', () => {
  const cases: [string, number, number, string][] = [
    ['layer 0 input norm, one token (sim)', 0, 1, 'sim'],
    ['layer 0 input norm, 64 tokens (sim)', 0, 64, 'sim'],
    ['final norm, 64 tokens (sim)', 4, 64, 'sim'],
    ['layer 0 input norm, one token (seal)', 0, 1, 'seal'],
  ];
  for (const [name, which, tokens, backend] of cases) {
    it(`${name}: model A activations vs the reference kernel`, async () => {
      const node = opsOf('rms_norm')[which]!;
      const x = rows(tensorOf(node.inputs[0]!), tokens === 1 ? 5 : 0, tokens);
      const eps = attrFloat(node, 'epsilon');
      const normArg = node.outputs[0]!.range!.inner!.norm_arg!;
      const N = tokens === 1 ? 16384 : which === 4 ? 32768 : 16384;
      const layout = replicatedLayout(64, N / 2, tokens);
      let rel = 0;
      let depth = 0;
      let cost = '';
      const out = await run(N, (b, input) => {
        const res = lowerRmsNorm(b, input('x', layout), layout, { epsilon: eps, normArg });
        rel = res.approximations[0]!.maxRelError;
        depth = res.cost.depth;
        cost = `${res.cost.rotations} rotations, ${res.cost.ctMultiplications} ct x ct, ${res.cost.plainMultiplications} pt muls`;
        return res.value;
      }, { x: [layout, x] }, layout, backend === 'sim' ? simBackend : sealBackend);
      const ref = reference('rms_norm', { epsilon: eps }, [f64([tokens, 64], x)]).data;
      const want = replicated(layout, ref);
      const err = maxDiff(out.slots, want);
      console.log(`rms_norm ${name}: norm_arg [${normArg.lo.toPrecision(3)}, ${normArg.hi.toPrecision(3)}], ${cost}, depth ${depth}, max error ${err.toExponential(2)} (|y| <= ${maxAbs(ref).toFixed(2)}, 1/sqrt rel error ${rel.toExponential(2)})`);
      expect(depth).toBe(out.depth);
      expect(err).toBeLessThan(rel * maxAbs(ref) + 1e-4);
    });
  }

  it('random inputs with gains, 8 tokens (sim)', async () => {
    const r = rng(9);
    const d = 48;
    const tokens = 8;
    const x = Float64Array.from({ length: d * tokens }, () => 2 * r() - 1);
    const gamma = Float64Array.from({ length: d }, () => 0.5 + r());
    let lo = Infinity;
    let hi = 0;
    for (let t = 0; t < tokens; t++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += x[t * d + j]! ** 2;
      lo = Math.min(lo, s / d);
      hi = Math.max(hi, s / d);
    }
    const N = 16384;
    const layout = replicatedLayout(d, N / 2, tokens);
    const out = await run(N, (b, input) => lowerRmsNorm(b, input('x', layout), layout, { epsilon: 1e-5, normArg: { lo: 0.8 * lo, hi: 1.2 * hi }, gamma }).value, { x: [layout, x] }, layout);
    const ref = reference('rms_norm', { epsilon: 1e-5 }, [f64([tokens, d], x), f64([d], gamma)]).data;
    const err = maxDiff(out.slots, replicated(layout, ref));
    console.log(`rms_norm random d=${d} with gamma: max error ${err.toExponential(2)}`);
    expect(err).toBeLessThan(1e-3);
  });
});

describe('rope', () => {
  it('model A layer 0 q and k (rotate-half, 64 tokens, sim): matches the reference', async () => {
    for (const node of opsOf('rope').slice(0, 2)) {
      const x = tensorOf(node.inputs[0]!);
      const positions = Array.from(tensorOf(node.inputs[1]!).data);
      const cos = tensorOf(node.inputs[2]!).data;
      const sin = tensorOf(node.inputs[3]!).data;
      const heads = attrInt(node, 'num_heads');
      const D = x.dims[2]!;
      const N = 16384;
      const layout = replicatedLayout(D, N / 2, T);
      let cost = { rotations: 0, depth: 0 };
      const out = await run(N, (b, input) => {
        const res = lowerRope(b, input('x', layout), layout, { positions, cos, sin, numHeads: heads, headDim: 16 });
        cost = res.cost;
        return res.value;
      }, { x: [layout, x.data] }, layout);
      const want = replicated(layout, tensorOf(node.outputs[0]!).data);
      const err = maxDiff(out.slots, want);
      console.log(`rope ${heads} heads: ${cost.rotations} rotations, depth ${cost.depth}, max error ${err.toExponential(2)} (|y| <= ${maxAbs(want).toFixed(2)})`);
      expect(cost.depth).toBe(1);
      expect(cost.rotations).toBe(2);
      expect(err).toBeLessThan(1e-5 * maxAbs(want) + 1e-6);
    }
  });

  it('interleaved with a partial rotary dim on random inputs (sim)', async () => {
    const r = rng(4);
    const heads = 2;
    const H = 8;
    const rd = 6;
    const tokens = 4;
    const rowsN = 10;
    const x = Float64Array.from({ length: tokens * heads * H }, () => 2 * r() - 1);
    const cos = Float64Array.from({ length: rowsN * (rd / 2) }, () => 2 * r() - 1);
    const sin = Float64Array.from({ length: rowsN * (rd / 2) }, () => 2 * r() - 1);
    const positions = [3, 0, 9, 5];
    const N = 8192;
    const layout = replicatedLayout(heads * H, N / 2, tokens);
    const out = await run(N, (b, input) => lowerRope(b, input('x', layout), layout, { positions, cos, sin, numHeads: heads, headDim: H, rotaryDim: rd, interleaved: true }).value, { x: [layout, x] }, layout);
    const ref = reference('rope', { num_heads: heads, interleaved: 1, rotary_dim: rd }, [
      f64([1, tokens, heads * H], x),
      f64([1, tokens], positions),
      f64([rowsN, rd / 2], cos),
      f64([rowsN, rd / 2], sin),
    ]).data;
    const err = maxDiff(out.slots, replicated(layout, ref));
    expect(err).toBeLessThan(1e-5);
  });
});
