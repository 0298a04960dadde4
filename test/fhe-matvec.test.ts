import * as path from 'node:path';
// Encrypted linear layers with the real weight matrices of model A (the ONNX MatMul initializers).
import { MODELS } from './helpers/shared.js';
import { describe, expect, it } from 'vitest';
import { importOnnx } from '../compiler/onnx/import.js';
import { FheBuilder } from '../ir/fhe/index.js';
import { fheCost } from '../passes/fhe/analysis/cost.js';
import { manageScales } from '../passes/fhe/manage/manage-scales.js';
import { columnBlocks, lowerMatVec, matMulWeights, type MatrixView } from '../passes/fhe/layout/matvec.js';
import { replicatedLayout } from '../passes/fhe/layout/packing.js';
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
