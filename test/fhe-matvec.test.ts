import * as path from 'node:path';
// Encrypted linear layers with the real weight matrices of model A (the ONNX MatMul initializers).
import { MODELS } from './helpers/shared.js';
import { describe, expect, it } from 'vitest';
import { importOnnx } from '../compiler/onnx/import.js';
import { FheBuilder } from '../ir/fhe/index.js';
import { fheCost } from '../passes/fhe/analysis/cost.js';
import { manageScales } from '../passes/fhe/manage/manage-scales.js';
import { columnBlocks, lowerMatVec, lowerMatVecReplicated, matMulWeights, type MatrixView } from '../passes/fhe/layout/matvec.js';
import { nextPow2, replicatedLayout } from '../passes/fhe/layout/packing.js';
import { runProgram } from '../runtime/ckks/execute.js';
import { fheChain, makeParameters, selectParameters, type CkksParameters } from '../ir/ckks/params.js';
import { sealBackend } from '../runtime/seal/backend.js';
import { makeSimBackend } from '../runtime/sim/backend.js';

const MODEL = path.join(MODELS, 'A_nocache_opset14.onnx');

function modelWeights(): Map<string, { w: Float64Array; k: number; m: number; name: string }> {
  const g = importOnnx(MODEL).graph;
  const out = new Map<string, { w: Float64Array; k: number; m: number; name: string }>();
  for (const n of g.nodes) {
    if (n.op !== 'MatMul') continue;
    const c = n.inputs[1]?.constant;
    if (!c || c.dims.length !== 2) continue;
    const [k, m] = c.dims as [number, number];
    const key = `${k}x${m}`;
    if (!out.has(key)) out.set(key, { w: c.load().data, k, m, name: n.inputs[1]!.name });
  }
  return out;
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  };
}

function reference(m: MatrixView, x: Float64Array, tokens: number): Float64Array {
  const y = new Float64Array(tokens * m.rows);
  for (let t = 0; t < tokens; t++) {
    for (let r = 0; r < m.rows; r++) {
      let s = 0;
      for (let c = 0; c < m.cols; c++) s += m.at(r, c) * x[t * m.cols + c]!;
      y[t * m.rows + r] = s;
    }
  }
  return y;
}

function linearProgram(m: MatrixView, slots: number, tokens = 1, stride?: number) {
  const b = new FheBuilder('linear', slots);
  const blocks = columnBlocks(m.cols, stride ?? (tokens === 1 ? slots : slots / tokens));
  const inputs = blocks.map((blk, j) => {
    const layout = replicatedLayout(blk.cols, slots, tokens, stride);
    return { value: b.input(`x${j}`, layout), layout, colStart: blk.colStart };
  });
  const res = lowerMatVec(b, m, inputs);
  res.outputs.forEach((o, i) => b.output(`y${i}`, o.value, o.layout));
  return { program: b.build(), res, blocks };
}

/** Fewest rotations of the diagonal method with BSGS for D diagonals: min over B of (B-1)+(ceil(D/B)-1). */
function optimumBsgs(d: number): number {
  let best = Infinity;
  for (let b = 1; b <= d; b++) best = Math.min(best, b - 1 + Math.ceil(d / b) - 1);
  return best;
}

function inputsFor(blocks: { colStart: number; cols: number }[], x: Float64Array, cols: number, tokens: number) {
  const t: Record<string, Float64Array> = {};
  blocks.forEach((blk, j) => {
    const v = new Float64Array(tokens * blk.cols);
    for (let tk = 0; tk < tokens; tk++) for (let c = 0; c < blk.cols; c++) v[tk * blk.cols + c] = x[tk * cols + blk.colStart + c]!;
    t[`x${j}`] = v;
  });
  return t;
}

function gather(outputs: Map<string, { values: Float64Array }>, res: ReturnType<typeof lowerMatVec>, rows: number, tokens: number) {
  const y = new Float64Array(tokens * rows);
  res.outputs.forEach((o, i) => {
    const v = outputs.get(`y${i}`)!.values;
    for (let t = 0; t < tokens; t++) for (let r = 0; r < o.rows; r++) y[t * rows + o.rowStart + r] = v[t * o.rows + r]!;
  });
  return y;
}

const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxErr = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe('encrypted linear layers of model A on seal', () => {
  const weights = modelWeights();
  const params = selectParameters({ depth: 1 });
  for (const shape of ['64x64', '64x192', '192x64', '64x256']) {
    it(`${shape} (${weights.get(shape)?.name})`, async () => {
      const { w, k, m: mOut } = weights.get(shape)!;
      const mat = matMulWeights(w, k, mOut);
      const { program, res, blocks } = linearProgram(mat, params.ringDegree / 2);
      const managed = manageScales(program, { chain: fheChain(params), topScale: params.scale });
      const x = Float64Array.from({ length: k }, rng(k * 31 + mOut));
      const want = reference(mat, x, 1);
      const run = await runProgram(managed, params, sealBackend, inputsFor(blocks, x, k, 1));
      const got = gather(run.outputs, res, mOut, 1);
      const err = maxErr(got, want);
      const cost = fheCost(managed);
      for (const blk of res.cost.blocks) {
        const bound = 2 * Math.ceil(Math.sqrt(blk.diagonals)) + blk.sumRotations;
        console.log(
          `linear ${shape}: rows ${blk.rowStart}..${blk.rowStart + blk.rows}: ${blk.rotations} rotations ` +
            `(D=${blk.diagonals}, B=${blk.baby}, giant=${blk.giant}, rotate-and-sum=${blk.sumRotations}; ` +
            `optimum ${optimumBsgs(blk.diagonals) + blk.sumRotations}, bound ${bound}); ` +
            `max err ${err.toExponential(2)} vs max|y| ${maxAbs(want).toFixed(3)}; depth ${cost.depth}`,
        );
        expect(blk.rotations).toBeLessThanOrEqual(bound);
        expect(blk.rotations).toBeLessThanOrEqual(optimumBsgs(blk.diagonals) + blk.sumRotations + 2);
      }
      expect(cost.rotations).toBe(res.cost.rotations);
      expect(cost.depth).toBe(1);
      expect(err).toBeLessThanOrEqual(1e-3 * maxAbs(want));
    });
  }
});

describe('matrix-vector lowering on the simulator', () => {
  const sim = makeSimBackend(5);

  it('packs several tokens into one ciphertext with the same rotations', async () => {
    const { w, k, m: mOut } = modelWeights().get('64x192')!;
    const mat = matMulWeights(w, k, mOut);
    const params = selectParameters({ depth: 1 });
    const slots = params.ringDegree / 2;
    const tokens = 8;
    const one = linearProgram(mat, slots);
    const many = linearProgram(mat, slots, tokens);
    expect(many.res.cost.rotations).toBe(one.res.cost.rotations);
    const managed = manageScales(many.program, { chain: fheChain(params), topScale: params.scale });
    const x = Float64Array.from({ length: tokens * k }, rng(3));
    const run = await runProgram(managed, params, sim, inputsFor(many.blocks, x, k, tokens));
    const want = reference(mat, x, tokens);
    expect(maxErr(gather(run.outputs, many.res, mOut, tokens), want)).toBeLessThan(1e-5 * maxAbs(want));
  });

  it('blocks a matrix larger than the slots (700 x 600 on 512 slots)', async () => {
    const params: CkksParameters = makeParameters({ ringDegree: 1024, bitSizes: [50, 30, 50], scale: 2 ** 30, insecure: true });
    const r = rng(9);
    const data = Float64Array.from({ length: 700 * 600 }, () => r() / 30);
    const mat: MatrixView = { rows: 700, cols: 600, at: (i, j) => data[i * 600 + j]! };
    const { program, res, blocks } = linearProgram(mat, 512);
    expect(blocks.length).toBe(2);
    expect(res.outputs.length).toBe(2);
    const managed = manageScales(program, { chain: fheChain(params), topScale: params.scale });
    const x = Float64Array.from({ length: 600 }, r);
    const run = await runProgram(managed, params, sim, inputsFor(blocks, x, 600, 1));
    const want = reference(mat, x, 1);
    expect(maxErr(gather(run.outputs, res, 700, 1), want)).toBeLessThan(1e-3 * maxAbs(want));
    expect(run.label).toMatch(/SIMULATION/);
  });
});

/** y = M x by lowerMatVecReplicated on one token; the output declared as all the slots, to check every copy. */
function replicatedProgram(m: MatrixView, slots: number) {
  const b = new FheBuilder('linear', slots);
  const blocks = columnBlocks(m.cols, slots);
  const inputs = blocks.map((blk, j) => {
    const layout = replicatedLayout(blk.cols, slots);
    return { value: b.input(`x${j}`, layout), layout, colStart: blk.colStart };
  });
  const res = lowerMatVecReplicated(b, m, inputs);
  b.output('y', res.value, { length: slots, tokens: 1, stride: slots, period: slots, copies: 1 });
  return { program: b.build(), res, blocks };
}

/** Slot u must hold y[u mod R] (0 in the padding rows): the largest deviation over all slots. */
function replicatedError(slotsGot: Float64Array, want: Float64Array, rows: number): number {
  const R = nextPow2(rows);
  let err = 0;
  for (let u = 0; u < slotsGot.length; u++) err = Math.max(err, Math.abs(slotsGot[u]! - (u % R < rows ? want[u % R]! : 0)));
  return err;
}

describe('replicated-output products: one token in the whole ciphertext', () => {
  const sim = makeSimBackend(7);
  const weights = modelWeights();
  const params = selectParameters({ depth: 1 });
  const slots = params.ringDegree / 2;
  const cases: { name: string; mat: () => MatrixView }[] = [
    ...['64x64', '64x192', '192x64'].map((shape) => ({ name: `model A ${shape}`, mat: () => matMulWeights(weights.get(shape)!.w, weights.get(shape)!.k, weights.get(shape)!.m) })),
    {
      name: '48 x 100 random (neither a power of two)',
      mat: () => {
        const r = rng(11);
        const d = Float64Array.from({ length: 48 * 100 }, r);
        return { rows: 48, cols: 100, at: (i, j) => d[i * 100 + j]! };
      },
    },
  ];
  for (const c of cases) {
    it(`${c.name}: every slot holds y[u mod R], with R diagonals and no doubling rotations (sim)`, async () => {
      const mat = c.mat();
      const { program, res, blocks } = replicatedProgram(mat, slots);
      const managed = manageScales(program, { chain: fheChain(params), topScale: params.scale });
      const x = Float64Array.from({ length: mat.cols }, rng(mat.rows * 7 + mat.cols));
      const run = await runProgram(managed, params, sim, inputsFor(blocks, x, mat.cols, 1));
      const want = reference(mat, x, 1);
      expect(replicatedError(run.outputs.get('y')!.values, want, mat.rows)).toBeLessThan(1e-5 * maxAbs(want));
      // Diagonals: P for a tall matrix, R = nextPow2(rows) for a wide one; then log2(P/R) rotate-and-sum rotations.
      const R = nextPow2(mat.rows);
      const P = nextPow2(mat.cols);
      const D = Math.min(P, R);
      expect(res.cost.plainMultiplications).toBe(D);
      expect(res.cost.blocks[0]!.sumRotations).toBe(R >= P ? 0 : Math.log2(P / R));
      expect(res.cost.rotations).toBe(optimumBsgs(D) + res.cost.blocks[0]!.sumRotations);
      expect(fheCost(managed).depth).toBe(1);
      // The product with padded rows and replication by doubling (the multi-token path) needs more rotations.
      const old = lowerMatVec(new FheBuilder('old', slots), { ...mat, rows: Math.max(R, P) }, blocks.map((blk) => ({ value: { name: 'x', type: { kind: 'ct' } } as never, layout: replicatedLayout(blk.cols, slots), colStart: blk.colStart })), Math.max(R, P));
      expect(res.cost.rotations).toBeLessThan(old.cost.rotations + Math.log2(slots / R));
    });
  }

  for (const shape of ['64x64', '64x192', '192x64']) {
    it(`model A ${shape}, 8 tokens side by side: each block written to its room, then doubled (sim)`, async () => {
      const { w, k, m: mOut } = weights.get(shape)!;
      const mat = matMulWeights(w, k, mOut);
      const tokens = 8;
      const stride = slots / tokens;
      const b = new FheBuilder('linear', slots);
      const layout = replicatedLayout(k, slots, tokens, stride);
      const res = lowerMatVecReplicated(b, mat, [{ value: b.input('x', layout), layout, colStart: 0 }]);
      b.output('y', res.value, { length: slots, tokens: 1, stride: slots, period: slots, copies: 1 });
      const managed = manageScales(b.build(), { chain: fheChain(params), topScale: params.scale });
      const x = Float64Array.from({ length: tokens * k }, rng(23 + k));
      const run = await runProgram(managed, params, sim, { x });
      const want = reference(mat, x, tokens);
      const got = run.outputs.get('y')!.values;
      let err = 0;
      for (let t = 0; t < tokens; t++) err = Math.max(err, replicatedError(got.subarray(t * stride, (t + 1) * stride), want.subarray(t * mOut, (t + 1) * mOut), mOut));
      expect(err).toBeLessThan(1e-5 * maxAbs(want));
      // P diagonals (no rotate-and-sum across a token's edge); the first E slots of a block written, E + P - 1 <= stride.
      const R = nextPow2(mOut);
      const P = nextPow2(k);
      let E = R;
      while (2 * E + P - 1 <= stride) E *= 2;
      expect(res.cost.plainMultiplications).toBe(P);
      expect(res.cost.rotations).toBe(optimumBsgs(P) + Math.log2(stride / E));
      // The padded product then doubling from R (lowerMatVec and replicateBlock) needs log2(E / R) more.
      const old = lowerMatVec(new FheBuilder('old', slots), { ...mat, rows: Math.max(R, P) }, [{ value: { name: 'x', type: { kind: 'ct' } } as never, layout, colStart: 0 }], Math.max(R, P));
      expect(old.cost.rotations + Math.log2(stride / R)).toBe(res.cost.rotations + Math.log2(E / R));
      // At 8 tokens (512-slot blocks): 64 output rows get 4 copies written directly (2 doublings fewer); 192 (R = 256) no room.
      expect(Math.log2(E / R)).toBe(shape === '64x192' ? 0 : 2);
    });
  }

  it('two input blocks of different periods (300 x 600 on 512 slots)', async () => {
    const p: CkksParameters = makeParameters({ ringDegree: 1024, bitSizes: [50, 30, 50], scale: 2 ** 30, insecure: true });
    const r = rng(13);
    const data = Float64Array.from({ length: 300 * 600 }, () => r() / 30);
    const mat: MatrixView = { rows: 300, cols: 600, at: (i, j) => data[i * 600 + j]! };
    const { program, blocks } = replicatedProgram(mat, 512);
    expect(blocks.map((blk) => blk.cols)).toEqual([512, 88]);
    const managed = manageScales(program, { chain: fheChain(p), topScale: p.scale });
    const x = Float64Array.from({ length: 600 }, r);
    const run = await runProgram(managed, p, sim, inputsFor(blocks, x, 600, 1));
    const want = reference(mat, x, 1);
    expect(replicatedError(run.outputs.get('y')!.values, want, 300)).toBeLessThan(1e-3 * maxAbs(want));
  });

  it('products of the same input share its baby steps (Q, K and V read one x)', () => {
    const b = new FheBuilder('qkv', slots);
    const layout = replicatedLayout(64, slots);
    const x = { value: b.input('x', layout), layout, colStart: 0 };
    const r = rng(17);
    const mat = (rows: number): MatrixView => {
      const d = Float64Array.from({ length: rows * 64 }, r);
      return { rows, cols: 64, at: (i, j) => d[i * 64 + j]! };
    };
    const q = lowerMatVecReplicated(b, mat(64), [x]).cost;
    const k = lowerMatVecReplicated(b, mat(32), [x]).cost;
    const v = lowerMatVecReplicated(b, mat(32), [x]).cost;
    // Q: 7 baby + 7 giant; K and V reuse Q's 7 baby steps (B = 8: 3 giant) and add one rotate-and-sum.
    expect([q.rotations, k.rotations, v.rotations]).toEqual([14, 4, 4]);
    expect(b.build().ops.filter((op) => op.kind === 'rotate').length).toBe(22);
  });

  it('a wide product of model A on seal (64 x 192: R = 64 diagonals of the 256-period input)', async () => {
    const { w, k, m: mOut } = weights.get('192x64')!;
    const mat = matMulWeights(w, k, mOut);
    const { program, res, blocks } = replicatedProgram(mat, slots);
    expect(res.cost.plainMultiplications).toBe(64);
    const managed = manageScales(program, { chain: fheChain(params), topScale: params.scale });
    const x = Float64Array.from({ length: k }, rng(19));
    const run = await runProgram(managed, params, sealBackend, inputsFor(blocks, x, k, 1));
    const want = reference(mat, x, 1);
    expect(replicatedError(run.outputs.get('y')!.values, want, mOut)).toBeLessThan(1e-3 * maxAbs(want));
    expect(run.label).not.toMatch(/SIMULATION/);
  });
});
