// The canonical lowering's per-token kernels (passes/fhe/lower-canonical: lowerRmsNormBlock,
// lowerRopeBlock, and silu/swiglu as lower-model.ts lowers them) on the CKKS simulator (and SEAL for
// swiglu and rms_norm) against the float64 canonical reference kernels, on random inputs and on real
// activations of model A (canonical graph run by the reference interpreter, ranges from calibration),
// with the approximations lower-model.ts fits. Checks every copy of every token block, and the depth
// and rotation counts each kernel's header states.

import { beforeAll, describe, expect, it } from 'vitest';
import { FheBuilder } from '../ir/fhe/index.js';
import type { FheValue, SlotLayout } from '../ir/fhe/types.js';
import { fheChain, selectParameters, topLevel } from '../ir/ckks/params.js';
import { attrFloat, attrInt } from '../ir/graph/attrs.js';
import { Tensor } from '../ir/tensor.js';
import { applyApproximation } from '../passes/fhe/approximate/approximation.js';
import { fheCost, type FheCost } from '../passes/fhe/analysis/cost.js';
import { lowerRmsNormBlock } from '../passes/fhe/lower-canonical/rms-norm.js';
import { lowerRopeBlock } from '../passes/fhe/lower-canonical/rope.js';
import { manageScales } from '../passes/fhe/manage/manage-scales.js';
import { replicatedLayout } from '../passes/fhe/layout/packing.js';
import { placeRefreshesGreedy } from '../passes/fhe/refresh/refresh-greedy.js';
import type { CkksBackend } from '../runtime/backend.js';
import { runProgram } from '../runtime/ckks/execute.js';
import { sealBackend } from '../runtime/seal/backend.js';
import { simBackend } from '../runtime/sim/backend.js';
import { expandHeads, f64, fullLayout, invsqrtFor, loadModelA, maxAbs, maxDiff, reference, replicated, rng, rowsOf, siluFor, type ModelA } from './helpers/fhe-lower.js';
import { calibratedRefreshBounds } from '../passes/fhe/refresh/refresh-bounds.js';
import { kernelMaskPolicy } from './helpers/refresh-mask.js';

interface RunOptions {
  backend?: CkksBackend;
  scaleBits?: number;
  /** Run on a chain of this many levels, with refreshes placed greedily (passes/fhe/refresh-greedy.ts). */
  chainDepth?: number;
}

/** Builds a kernel on fresh inputs, manages it for the smallest secure chain at ring degree n, runs it. */
async function run(
  n: number,
  build: (b: FheBuilder, input: (name: string, l: SlotLayout) => FheValue) => FheValue,
  tensors: Record<string, ArrayLike<number>>,
  outLayout: SlotLayout,
  opts: RunOptions = {},
): Promise<{ slots: Float64Array; cost: FheCost; refreshes: number }> {
  const b = new FheBuilder('kernel', n / 2);
  const value = build(b, (name, l) => b.input(name, l));
  b.output('y', value, fullLayout(outLayout));
  let program = b.build();
  const cost = fheCost(program);
  const params = selectParameters({ depth: opts.chainDepth ?? cost.depth, ringDegree: n, scaleBits: opts.scaleBits });
  let refreshes = 0;
  if (opts.chainDepth !== undefined) {
    const placed = placeRefreshesGreedy(program, topLevel(params));
    program = placed.program;
    refreshes = placed.refreshed.length;
  }
  const managed = manageScales(program, { chain: fheChain(params), topScale: params.scale, inputLevel: opts.chainDepth === undefined ? undefined : topLevel(params) });
  // Refresh bounds calibrated on these inputs, without margin, and the widest mask that fits: greedy
  // placement refreshes at level 0, where the modulus leaves 18 bits above the scale, and these values
  // reach 2^12 (model plans refresh at level >= 1, with 58 bits). These tests are about the kernels.
  const bounds = calibratedRefreshBounds(managed, [tensors], 0);
  const res = await runProgram(managed, params, opts.backend ?? simBackend, tensors, { refreshBounds: bounds, mask: kernelMaskPolicy(managed, params, bounds) });
  return { slots: res.outputs.get('y')!.values, cost, refreshes };
}

const costText = (c: FheCost) => `${c.rotations} rotations, ${c.ctMultiplications} ct x ct, ${c.plainMultiplications} pt muls, depth ${c.depth}`;

let A: ModelA;
const T = 64;
beforeAll(() => {
  A = loadModelA();
});

describe('silu and swiglu (applyApproximation of the silu fit, times up)', () => {
  it('silu on random inputs inside the range (sim): error within the approximation bound, depth as stated', async () => {
    const N = 16384;
    const layout = replicatedLayout(192, N / 2, 16);
    const r = rng(3);
    const range = { lo: -7.2, hi: 5.4 };
    const xs = Float64Array.from({ length: 192 * 16 }, () => range.lo + (range.hi - range.lo) * r());
    const silu = siluFor(range);
    const out = await run(N, (b, input) => applyApproximation(b, input('x', layout), silu).value, { x: xs }, layout);
    const want = replicated(layout, reference('silu', {}, [f64([16, 192], xs)])[0]!.data);
    const err = maxDiff(out.slots, want);
    console.log(`silu random, 16 tokens x 192 (sim): ${silu.describe()}; ${costText(out.cost)}, max error ${err.toExponential(2)} (bound ${silu.maxError.toExponential(2)})`);
    expect(out.cost.depth).toBe(silu.depth);
    expect(out.cost.rotations).toBe(0);
    expect(err).toBeLessThan(silu.maxError + 1e-5);
  });

  for (const backend of [simBackend, sealBackend]) {
    it(`swiglu of model A layer 1 (real gate/up of 16 tokens, ${backend === simBackend ? 'sim' : 'seal'})`, async () => {
      // Model A's swiglu takes the merged gate/up linear: lower-model.ts lowers its two halves as two
      // column blocks (gate, up), each a replicated ciphertext, then silu(gate) * up.
      const node = A.opsOf('swiglu')[1]!;
      const fused = A.tensorOf(node.inputs[0]!);
      const range = node.inputs[0]!.range!;
      const tokens = 16;
      const half = 192;
      const gate = new Float64Array(tokens * half);
      const up = new Float64Array(tokens * half);
      for (let t = 0; t < tokens; t++) for (let j = 0; j < half; j++) {
        gate[t * half + j] = fused.data[t * 2 * half + j]!;
        up[t * half + j] = fused.data[t * 2 * half + half + j]!;
      }
      // SEAL: N=8192 on a 3-level 35-bit chain with refreshes (4x cheaper per op than N=16384).
      const seal = backend === sealBackend;
      const N = seal ? 8192 : 16384;
      const layout = replicatedLayout(half, N / 2, tokens);
      const silu = siluFor(range);
      const out = await run(N, (b, input) => b.mul(applyApproximation(b, input('gate', layout), silu).value, input('up', layout)), { gate, up }, layout, seal ? { backend, scaleBits: 35, chainDepth: 3 } : {});
      const want = replicated(layout, rowsOf(A.tensorOf(node.outputs[0]!), 0, tokens));
      const err = maxDiff(out.slots, want);
      const bound = silu.maxError * maxAbs(up);
      console.log(`swiglu layer 1, gate range [${range.lo.toFixed(2)}, ${range.hi.toFixed(2)}]: ${silu.describe()}; ${costText(out.cost)}, ${out.refreshes} refreshes, max error ${err.toExponential(2)} vs bound ${bound.toExponential(2)}, |y| <= ${maxAbs(want).toFixed(2)}`);
      expect(out.cost.depth).toBe(silu.depth + 1);
      expect(err).toBeLessThan(bound + 1e-4);
    });
  }
});

describe('rms_norm (lowerRmsNormBlock)', () => {
  const cases: [string, number, number, string][] = [
    ['layer 0 input norm, one token (sim)', 0, 1, 'sim'],
    ['layer 0 input norm, 64 tokens (sim)', 0, 64, 'sim'],
    ['final norm, 64 tokens (sim)', 4, 64, 'sim'],
    ['layer 0 input norm, one token (seal)', 0, 1, 'seal'],
  ];
  for (const [name, which, tokens, backend] of cases) {
    it(`${name}: model A activations vs the reference kernel`, async () => {
      const node = A.opsOf('rms_norm')[which]!;
      const x = rowsOf(A.tensorOf(node.inputs[0]!), tokens === 1 ? 5 : 0, tokens);
      const eps = attrFloat(node, 'epsilon');
      const d = 64;
      const gamma = node.inputs[1] ? A.tensorOf(node.inputs[1]).data : undefined;
      const invsqrt = invsqrtFor(d, node.outputs[0]!.range!.inner!.norm_arg!);
      // Depth 8-9 does not fit N=16384 at 40-bit scales: 35-bit ones (noise far below the bound); SEAL
      // runs at N=8192 on a 3-level chain with refreshes (4x cheaper per op than one N=16384 chain).
      const seal = backend === 'seal';
      const N = seal ? 8192 : 16384;
      const layout = replicatedLayout(d, N / 2, tokens);
      const out = await run(N, (b, input) => lowerRmsNormBlock(b, input('x', layout), layout, eps, gamma, invsqrt).value, { x }, layout, seal ? { backend: sealBackend, scaleBits: 35, chainDepth: 3 } : { scaleBits: 35 });
      const ref = reference('rms_norm', { epsilon: eps }, [f64([tokens, d], x), gamma ? f64([d], gamma) : null])[0]!.data;
      const err = maxDiff(out.slots, replicated(layout, ref));
      console.log(`rms_norm ${name}: ${invsqrt.describe()}; ${costText(out.cost)}, ${out.refreshes} refreshes, max error ${err.toExponential(2)} (|y| <= ${maxAbs(ref).toFixed(2)}, 1/sqrt rel error ${invsqrt.maxRelError.toExponential(2)})`);
      // Square, masked combination, 1/sqrt, product; rotate-and-sum forward and backward over a period.
      // One token in the whole ciphertext: the forward sums wrap within the token, no mask, no backward sums.
      expect(out.cost.depth).toBe((tokens === 1 ? 2 : 3) + invsqrt.depth);
      expect(out.cost.rotations).toBe((tokens === 1 ? 1 : 2) * Math.log2(layout.period));
      expect(err).toBeLessThan(invsqrt.maxRelError * maxAbs(ref) + 1e-4);
    });
  }

  it('random inputs with gains, 8 tokens of 48 (sim)', async () => {
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
    const invsqrt = invsqrtFor(d, { lo, hi });
    const N = 16384;
    const layout = replicatedLayout(d, N / 2, tokens);
    const out = await run(N, (b, input) => lowerRmsNormBlock(b, input('x', layout), layout, 1e-5, gamma, invsqrt).value, { x }, layout, { scaleBits: 35 });
    const ref = reference('rms_norm', { epsilon: 1e-5 }, [f64([tokens, d], x), f64([d], gamma)])[0]!.data;
    const err = maxDiff(out.slots, replicated(layout, ref));
    console.log(`rms_norm random d=${d} with gamma: max error ${err.toExponential(2)}`);
    expect(err).toBeLessThan(invsqrt.maxRelError * maxAbs(ref) + 1e-4);
  });
});

describe('rope (lowerRopeBlock)', () => {
  it('model A layer 0 q and GQA-expanded k (rotate-half, 64 tokens, sim): matches the reference, 2 rotations, depth 1', async () => {
    for (const node of A.opsOf('rope').slice(0, 2)) {
      const heads = attrInt(node, 'num_heads');
      const H = 16;
      // K arrives from its projection with each KV head repeated for its query heads (4 heads in all).
      const group = 4 / heads;
      const x = expandHeads(A.tensorOf(node.inputs[0]!).data, T, heads, H, group);
      const want = expandHeads(A.tensorOf(node.outputs[0]!).data, T, heads, H, group);
      const N = 16384;
      const layout = replicatedLayout(4 * H, N / 2, T);
      const positions = A.tensorOf(node.inputs[1]!).data;
      const [cos, sin] = [A.tensorOf(node.inputs[2]!), A.tensorOf(node.inputs[3]!)];
      const out = await run(N, (b, input) => lowerRopeBlock(b, input('x', layout), layout, { headSize: H, rotaryDim: H, interleaved: false, positions, cos, sin }), { x }, layout);
      const err = maxDiff(out.slots, replicated(layout, want));
      console.log(`rope ${heads} heads (x${group}): ${costText(out.cost)}, max error ${err.toExponential(2)} (|y| <= ${maxAbs(want).toFixed(2)})`);
      expect(out.cost.depth).toBe(1);
      expect(out.cost.rotations).toBe(2);
      expect(err).toBeLessThan(1e-5 * maxAbs(want) + 1e-6);
    }
  });

  for (const interleaved of [true, false]) {
    it(`${interleaved ? 'interleaved' : 'rotate-half'} with a partial rotary dim on random inputs (sim)`, async () => {
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
      const table = (data: Float64Array) => Tensor.from('float64', [rowsN, rd / 2], Array.from(data));
      const out = await run(
        N,
        (b, input) => lowerRopeBlock(b, input('x', layout), layout, { headSize: H, rotaryDim: rd, interleaved, positions, cos: table(cos), sin: table(sin) }),
        { x },
        layout,
      );
      const ref = reference('rope', { num_heads: heads, interleaved: interleaved ? 1 : 0, rotary_dim: rd }, [
        f64([1, tokens, heads * H], x),
        f64([1, tokens], positions),
        f64([rowsN, rd / 2], cos),
        f64([rowsN, rd / 2], sin),
      ])[0]!.data;
      expect(maxDiff(out.slots, replicated(layout, ref))).toBeLessThan(1e-5);
      expect(out.cost.rotations).toBe(2);
    });
  }
});
