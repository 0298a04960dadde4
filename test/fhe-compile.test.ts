// Graph -> encrypted plan: the float32 ONNX node tests for MatMul, Gemm, Add, Sub, Mul and Neg compile
// and run ENCRYPTED on SEAL (every graph input encrypted) within |err| <= 1e-3 + 1e-3 |expected|; integer
// tests are refused; graphs with plaintext weights, chained layers, relayouts, transposes and tensors
// larger than the slots match the float64 reference interpreter. Keys are shared per parameter set.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileGraphToFhe, compileOnnxToFhe, summarizeFhe, writeFhePlan, type CompiledFhe } from '../compiler/fhe-compile.js';
import { checkRunInputs, keysFor, loadFhePlan, openFheSession, runFhe, type FheSession } from '../compiler/fhe-run.js';
import { importOnnx } from '../compiler/onnx/import.js';
import { readTensorProtoFile } from '../compiler/onnx/tensor-proto.js';
import { FhecError } from '../ir/errors.js';
import { attr, GraphBuilder } from '../ir/graph/builder.js';
import type { Graph, Value } from '../ir/graph/types.js';
import { verifyGraph } from '../ir/graph/verify.js';
import { Tensor } from '../ir/tensor.js';
import { IMPORT_PIPELINE, graphPasses } from '../passes/graph/registry.js';
import { PassManager } from '../passes/pass-manager.js';
import { lowerGraph } from '../passes/fhe/lower/lower-graph.js';
import { holdsToRuns, packCiphertext, unpackTensor } from '../passes/fhe/lower/interface.js';
import { parametersId } from '../ir/ckks/params.js';
import { runGraph } from '../runtime/reference/interpreter.js';
import { sealBackend } from '../runtime/seal/backend.js';
import { simBackend } from '../runtime/sim/backend.js';
import { NODE_TESTS } from './helpers/shared.js';

const ARITH = /^test_(matmul|gemm|add|sub|mul|neg)(_|$)/;
const folders = fs.existsSync(NODE_TESTS) ? fs.readdirSync(NODE_TESTS).filter((d) => ARITH.test(d)).sort() : [];

interface NodeTest {
  name: string;
  model: string;
  inputs: Record<string, Tensor>;
  expected: Record<string, Tensor>;
  float: boolean;
}

function loadNodeTest(name: string): NodeTest {
  const dir = path.join(NODE_TESTS, name);
  const model = path.join(dir, 'model.onnx');
  const { graph } = importOnnx(model);
  const data = path.join(dir, 'test_data_set_0');
  const inputs: Record<string, Tensor> = {};
  graph.inputs.forEach((v, k) => (inputs[v.name] = readTensorProtoFile(path.join(data, `input_${k}.pb`)).tensor));
  const expected: Record<string, Tensor> = {};
  graph.outputs.forEach((v, k) => (expected[v.name] = readTensorProtoFile(path.join(data, `output_${k}.pb`)).tensor));
  const float = [...graph.inputs, ...graph.outputs].every((v) => v.dtype === 'float32');
  return { name, model, inputs, expected, float };
}

/** Worst |got - want| / (1e-3 + 1e-3 |want|) over all elements (<= 1 passes), and the worst absolute error. */
function errorRatio(got: Tensor, want: Tensor): { ratio: number; abs: number } {
  expect(got.dims).toEqual(want.dims);
  let ratio = 0;
  let abs = 0;
  for (let i = 0; i < want.size; i++) {
    const d = Math.abs(got.data[i]! - want.data[i]!);
    abs = Math.max(abs, d);
    ratio = Math.max(ratio, d / (1e-3 + 1e-3 * Math.abs(want.data[i]!)));
  }
  return { ratio, abs };
}

/** One session per parameter set, with the union of the keys every plan on it needs. */
async function sessionsFor(plans: CompiledFhe[], backend = sealBackend): Promise<Map<string, FheSession>> {
  const groups = new Map<string, CompiledFhe[]>();
  for (const c of plans) groups.set(parametersId(c.params), [...(groups.get(parametersId(c.params)) ?? []), c]);
  const sessions = new Map<string, FheSession>();
  for (const [id, cs] of groups) {
    const steps = new Set<number>();
    let relin = false;
    for (const c of cs) {
      const k = keysFor(c.program, c.params);
      k.galoisSteps.forEach((s) => steps.add(s));
      relin ||= k.relin;
    }
    sessions.set(id, await openFheSession(backend, cs[0]!.params, { galoisSteps: [...steps], relin }));
  }
  return sessions;
}

describe('ONNX node tests for MatMul, Gemm, Add, Sub, Mul, Neg: compiled and run encrypted on SEAL', () => {
  const tests = folders.map(loadNodeTest);
  const floats = tests.filter((t) => t.float);
  const compiled = new Map<string, { c: CompiledFhe; ms: number }>();
  let sessions = new Map<string, FheSession>();
  const rows: string[] = [];

  beforeAll(async () => {
    for (const t of floats) {
      const t0 = performance.now();
      compiled.set(t.name, { c: compileOnnxToFhe(t.model), ms: performance.now() - t0 });
    }
    sessions = await sessionsFor([...compiled.values()].map((x) => x.c));
  });

  afterAll(() => {
    for (const s of sessions.values()) s.dispose();
    console.log(`node test | N | depth | rotations | ct x ct | max abs error | error / tolerance | compile ms | encrypt+evaluate+decrypt ms\n${rows.join('\n')}`);
  });

  it('finds the float32 and integer tests', () => {
    expect(floats.map((t) => t.name)).toContain('test_gemm_all_attributes');
    expect(floats.length).toBe(22);
    expect(tests.length - floats.length).toBe(18);
  });

  for (const name of folders) {
    it(name, async () => {
      const t = tests.find((x) => x.name === name)!;
      if (!t.float) {
        // Integer arithmetic would come out approximate under CKKS: refused, naming the dtype.
        expect(() => compileOnnxToFhe(t.model)).toThrow(FhecError);
        expect(() => compileOnnxToFhe(t.model)).toThrow(/only float32 tensors can be encrypted/);
        expect(() => compileOnnxToFhe(t.model)).toThrow(/'x' is u?int\d+/);
        return;
      }
      const { c, ms } = compiled.get(name)!;
      // Every graph input is encrypted (at least one ciphertext each); nothing about them is plaintext.
      expect(c.interface.inputs.map((p) => p.name).sort()).toEqual(Object.keys(t.inputs).sort());
      for (const p of c.interface.inputs) expect(p.ciphertexts.length).toBeGreaterThan(0);
      expect(c.params.insecure).toBeUndefined();
      expect(c.params.ringDegree).toBe(8192);
      const r = await runFhe(c.program, c.params, c.interface, t.inputs, { backend: sealBackend, session: sessions.get(parametersId(c.params)) });
      expect(r.simulated).toBe(false);
      expect(r.label).toMatch(/^encrypted with SEAL/);
      for (const [out, want] of Object.entries(t.expected)) {
        const { ratio, abs } = errorRatio(r.outputs[out]!, want);
        const run = r.timings.encryptMs + r.timings.evaluateMs + r.timings.decryptMs;
        rows.push(
          `${name} | ${c.params.ringDegree} | ${c.cost.depth} | ${c.cost.rotations} | ${c.cost.ctMultiplications} | ` +
            `${abs.toExponential(2)} | ${ratio.toExponential(2)} | ${ms.toFixed(0)} | ${run.toFixed(0)}`,
        );
        expect(ratio).toBeLessThanOrEqual(1);
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------------
// Graphs built here: plaintext weights, chains, relayouts. Checked against the reference interpreter.

function prepared(build: (b: GraphBuilder) => void): Graph {
  const b = new GraphBuilder('t', { '': 17 });
  build(b);
  const pm = new PassManager(graphPasses, { verify: verifyGraph });
  pm.addPipeline(IMPORT_PIPELINE);
  pm.run(b.graph);
  return b.graph;
}

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296 - 0.5;
  };
}

function randomTensor(dims: number[], seed: number, scale = 1): Tensor {
  const r = rng(seed);
  return Tensor.from('float32', dims, Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => scale * r()));
}

function fin(b: GraphBuilder, op: string, ins: (Value | null)[], attrs: Record<string, ReturnType<typeof attr.int>> = {}, name?: string): Value {
  return b.op1(op, ins, 'float32', undefined, attrs, name ? { name } : {});
}

async function expectMatchesReference(graph: Graph, inputs: Record<string, Tensor>, c: CompiledFhe, backend = simBackend, tol = 1e-4) {
  const want = runGraph(graph, inputs);
  const r = await runFhe(c.program, c.params, c.interface, inputs, { backend, insecure: true });
  for (const [name, w] of Object.entries(want)) {
    const got = r.outputs[name]!;
    expect(got.dims).toEqual(w.dims);
    let worst = 0;
    let mag = 0;
    for (let i = 0; i < w.size; i++) {
      worst = Math.max(worst, Math.abs(got.data[i]! - w.data[i]!));
      mag = Math.max(mag, Math.abs(w.data[i]!));
    }
    expect(worst, `${name}: max error ${worst} (max |value| ${mag})`).toBeLessThanOrEqual(tol * Math.max(1, mag));
  }
  return r;
}

describe('lowering graphs with plaintext weights, chains and relayouts', () => {
  it('a linear layer with plaintext weights uses the BSGS matrix-vector product, several rows per ciphertext', async () => {
    const W = randomTensor([24, 10], 1);
    const bias = randomTensor([10], 2);
    const g = prepared((b) => {
      const x = b.input('x', 'float32', [6, 24]);
      const y = fin(b, 'MatMul', [x, b.constant('W', W)]);
      const z = fin(b, 'Add', [y, b.constant('bias', bias)]);
      const s = fin(b, 'Mul', [z, b.constant('half', Tensor.scalar('float32', 0.5))]);
      b.output(fin(b, 'Neg', [s], {}, 'neg'));
    });
    const c = compileGraphToFhe(g);
    const mm = c.lowering.nodes.find((n) => n.op === 'MatMul')!;
    expect(mm.notes.join()).toMatch(/BSGS matrix-vector: 10x24 weight, 6 vector\(s\), 8 per ciphertext/);
    // 32 diagonals (P = nextPow2(24)): B = G = 6 -> 5 baby + at most 5 giant rotations, whatever the row count.
    expect(mm.rotations).toBeLessThanOrEqual(2 * Math.ceil(Math.sqrt(32)));
    expect(mm.ctMultiplications).toBe(0);
    expect(c.interface.inputs[0]!.ciphertexts.length).toBe(1);
    expect(c.cost.depth).toBe(2);
    await expectMatchesReference(g, { x: randomTensor([6, 24], 3) }, c);
  });

  it('a plaintext weight on the left (W @ X, batched X) runs the matrix-vector product over the columns', async () => {
    const W = randomTensor([5, 8], 4);
    const g = prepared((b) => {
      const x = b.input('x', 'float32', [2, 8, 3]);
      b.output(fin(b, 'MatMul', [b.constant('W', W), x]));
    });
    const c = compileGraphToFhe(g);
    expect(c.lowering.nodes[0]!.notes.join()).toMatch(/BSGS matrix-vector: 5x8 weight, 6 vector/);
    await expectMatchesReference(g, { x: randomTensor([2, 8, 3], 5) }, c);
  });

  it('Gemm with plaintext B and C folds alpha and beta into the constants (depth 1)', async () => {
    const B = randomTensor([7, 4], 6);
    const C = randomTensor([4], 7);
    const g = prepared((b) => {
      const a = b.input('a', 'float32', [7, 3]);
      b.output(fin(b, 'Gemm', [a, b.constant('B', B), b.constant('C', C)], { alpha: attr.float(0.25), beta: attr.float(-2), transA: attr.int(1) }));
    });
    const c = compileGraphToFhe(g);
    expect(c.cost.depth).toBe(1);
    await expectMatchesReference(g, { a: randomTensor([7, 3], 8) }, c);
  });

  it('chained layers relayout their intermediates (rotations and masks) and still match', async () => {
    const W1 = randomTensor([16, 12], 9);
    const W2 = randomTensor([12, 16], 10);
    const g = prepared((b) => {
      const x = b.input('x', 'float32', [1, 16]);
      const h = fin(b, 'MatMul', [x, b.constant('W1', W1)]);
      const h2 = fin(b, 'Mul', [h, h]);
      b.output(fin(b, 'MatMul', [h2, b.constant('W2', W2)]));
    });
    const c = compileGraphToFhe(g);
    // The second layer needs h2 replicated: gathered once (mask), then doubled: far fewer than one rotation per copy.
    const second = c.lowering.nodes[2]!;
    expect(second.plainMultiplications).toBeGreaterThan(16);
    expect(second.rotations).toBeLessThan(2 * Math.ceil(Math.sqrt(16)) + Math.log2(4096 / 16) + 2);
    expect(c.cost.depth).toBe(4);
    expect(c.params.ringDegree).toBe(16384);
    await expectMatchesReference(g, { x: randomTensor([1, 16], 11) }, c);
  });

  it('ct x ct products of intermediates, a transpose of an intermediate and broadcasting an intermediate row', async () => {
    const W = randomTensor([4, 6], 12);
    const g = prepared((b) => {
      const xt = b.input('xt', 'float32', [4, 3]);
      const x = fin(b, 'Transpose', [xt], { perm: attr.ints([1, 0]) }); // a transposed graph input: packed by the client
      const y = b.input('y', 'float32', [3, 6]);
      const h = fin(b, 'MatMul', [x, b.constant('W', W)]); // [3, 6]
      const t = fin(b, 'Transpose', [h], { perm: attr.ints([1, 0]) }); // [6, 3]
      const p = fin(b, 'MatMul', [y, t]); // [3, 3] = y h^T, both encrypted
      const r = fin(b, 'Reshape', [p, b.constant('shape', Tensor.from('int64', [1], [9]))]);
      b.output(fin(b, 'Add', [r, fin(b, 'Flatten', [p], { axis: attr.int(0) })]));
    });
    const c = compileGraphToFhe(g);
    await expectMatchesReference(g, { xt: randomTensor([4, 3], 13), y: randomTensor([3, 6], 14) }, c);
  });

  it('a key budget too small for one key per step composes rotations from power-of-two keys', async () => {
    const W = randomTensor([40, 40], 23);
    const g = prepared((b) => b.output(fin(b, 'MatMul', [b.input('x', 'float32', [1, 40]), b.constant('W', W)])));
    const roomy = compileGraphToFhe(g);
    expect(roomy.keys.composed).toBe(false);
    // Room for 8 key-switching keys at N=8192 with 3 primes (2 x 2 x 3 x 8192 x 8 bytes each): the 14 BSGS
    // steps do not fit, the 6 powers of two (+ the relinearization key's share of the budget) do.
    const budget = 8 * 2 * 2 * 3 * 8192 * 8;
    const tight = compileGraphToFhe(g, { keyBudgetBytes: budget });
    expect(roomy.keys.keySteps.length).toBeGreaterThan(4);
    expect(tight.keys.composed).toBe(true);
    expect(tight.keys.keySteps.every((s) => (s & (s - 1)) === 0)).toBe(true);
    expect(tight.keyBytes).toBeLessThanOrEqual(budget);
    const x = randomTensor([1, 40], 24);
    const want = runGraph(g, { x });
    const r = await runFhe(tight.program, tight.params, tight.interface, { x }, { backend: sealBackend, keyBudgetBytes: budget });
    const got = r.outputs[g.outputs[0]!.name]!;
    want[g.outputs[0]!.name]!.data.forEach((v, i) => expect(Math.abs(got.data[i]! - v)).toBeLessThan(1e-4));
  });

  it('an encrypted row computed in the circuit is broadcast over an input matrix', async () => {
    const g = prepared((b) => {
      const x = b.input('x', 'float32', [4, 5]);
      const v = b.input('v', 'float32', [5]);
      const sq = fin(b, 'Mul', [v, v]); // intermediate [5]
      b.output(fin(b, 'Add', [x, sq]));
    });
    const c = compileGraphToFhe(g);
    expect(c.lowering.nodes[1]!.rotations).toBeGreaterThan(0);
    expect(c.params.ringDegree).toBe(8192);
    const r = await expectMatchesReference(g, { x: randomTensor([4, 5], 15), v: randomTensor([5], 16) }, c, sealBackend);
    expect(r.simulated).toBe(false);
  });

  it('tensors larger than the slots are cut into blocks (elementwise, products with chunks, column blocks)', async () => {
    // N = 1024 (512 slots), insecure on purpose to keep the test small; the simulator runs it.
    const W = randomTensor([600, 3], 17, 0.1);
    const g = prepared((b) => {
      const x = b.input('x', 'float32', [2, 600]);
      const y = b.input('y', 'float32', [600, 2]);
      const big = fin(b, 'Add', [x, fin(b, 'Neg', [x])]); // 1200 elements: 3 blocks
      const s = fin(b, 'Mul', [x, b.constant('k', Tensor.scalar('float32', 3))]);
      const lin = fin(b, 'MatMul', [s, b.constant('W', W)]); // k = 600 > 512: column blocks
      const prod = fin(b, 'MatMul', [x, y]); // ct x ct, k = 600: 2 chunks
      b.output(big);
      b.output(lin);
      b.output(prod);
    });
    const c = compileGraphToFhe(g, { ringDegree: 1024, insecure: true });
    expect(c.params.ringDegree).toBe(1024);
    expect(c.warning).toMatch(/INSECURE/);
    expect(c.interface.outputs[0]!.ciphertexts.length).toBe(3);
    expect(c.lowering.nodes.find((n) => n.op === 'MatMul' && n.ctMultiplications > 0)!.notes.join()).toMatch(/2 chunk/);
    expect(c.lowering.nodes.find((n) => n.op === 'MatMul' && n.ctMultiplications === 0)!.notes.join()).toMatch(/2 column block/);
    await expectMatchesReference(g, { x: randomTensor([2, 600], 18), y: randomTensor([600, 2], 19) }, c, simBackend, 1e-4);
  });
});

describe('errors, security and the plan file', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-compile-'));

  it('lists every unsupported op with its nodes', () => {
    const g = prepared((b) => {
      const x = b.input('x', 'float32', [4]);
      const r = b.op1('Relu', [x], 'float32', undefined, {}, { name: 'relu_a' });
      const r2 = b.op1('Relu', [r], 'float32', undefined, {}, { name: 'relu_b' });
      const d = b.op1('Div', [r2, x], 'float32', undefined, {}, { name: 'div_1' });
      b.output(fin(b, 'Add', [d, x]));
    });
    expect(() => lowerGraph(g, { slots: 4096 })).toThrow(/not supported under encryption: Relu \(relu_a, relu_b\); Div \(div_1\)/);
  });

  it('refuses symbolic dims that were not bound', () => {
    const b = new GraphBuilder('t');
    const x = b.input('x', 'float32', ['batch', 4]);
    b.output(b.op1('Neg', [x], 'float32', ['batch', 4]));
    expect(() => lowerGraph(b.graph, { slots: 4096 })).toThrow(/not concrete; bind its symbolic dims with --bind/);
  });

  it('insecure parameters only with the flag, at compile and at run time', async () => {
    const g = prepared((b) => b.output(fin(b, 'Neg', [b.input('x', 'float32', [3])])));
    const secure = compileGraphToFhe(g);
    expect(secure.warning).toBeUndefined();
    expect(summarizeFhe(secure).join('\n')).toMatch(/security: 128-bit/);
    const c = compileGraphToFhe(g, { insecure: true });
    expect(c.params.insecure).toBe(true);
    expect(c.warning).toMatch(/INSECURE PARAMETERS/);
    expect(summarizeFhe(c).join('\n')).toMatch(/security: INSECURE/);
    const x = Tensor.from('float32', [3], [1, 2, 3]);
    await expect(runFhe(c.program, c.params, c.interface, { x }, { backend: simBackend })).rejects.toThrow(/below 128-bit security; pass --insecure/);
    const r = await runFhe(c.program, c.params, c.interface, { x }, { backend: simBackend, insecure: true });
    expect(Array.from(r.outputs[g.outputs[0]!.name]!.data)).toEqual([-1, -2, -3]);
  });

  it('checks input names, dtypes and dims against the plan', () => {
    const g = prepared((b) => b.output(fin(b, 'Add', [b.input('a', 'float32', [2, 3]), b.input('b', 'float32', [3])])));
    const c = compileGraphToFhe(g);
    const a = Tensor.zeros('float32', [2, 3]);
    const bb = Tensor.zeros('float32', [3]);
    expect(() => checkRunInputs(c.interface, { a })).toThrow(/missing input\(s\) 'b' \(the plan's inputs: a, b\)/);
    expect(() => checkRunInputs(c.interface, { a, b: bb, z: bb })).toThrow(/unknown input\(s\) 'z'/);
    expect(() => checkRunInputs(c.interface, { a, b: Tensor.zeros('float32', [2]) })).toThrow(/dims \[2\] do not match the plan's \[3\]/);
    expect(() => checkRunInputs(c.interface, { a, b: Tensor.zeros('int64', [3]) })).toThrow(/dtype is int64 but the plan expects float32/);
    expect(() => checkRunInputs(c.interface, { a, b: bb })).not.toThrow();
  });

  it('writes a plan that loads back (interface included) and gives the same results; a broken interface is refused', async () => {
    const W = randomTensor([8, 8], 20);
    const g = prepared((b) => {
      const x = b.input('x', 'float32', [2, 8]);
      b.output(fin(b, 'Gemm', [x, b.constant('W', W), b.input('c', 'float32', [8])], { beta: attr.float(0.5) }));
    });
    const c = compileGraphToFhe(g);
    const file = path.join(tmp, 'plan.json');
    const { weights, programText } = writeFhePlan(file, c);
    expect(fs.statSync(weights).size).toBeGreaterThan(0);
    expect(programText).toMatch(/^fhe\.program @t slots=4096/);
    const loaded = loadFhePlan(file);
    expect(loaded.interface).toEqual(c.interface);
    const inputs = { x: randomTensor([2, 8], 21), c: randomTensor([8], 22) };
    const a = await runFhe(c.program, c.params, c.interface, inputs, { backend: simBackend });
    const b = await runFhe(loaded.plan.program, loaded.plan.params, loaded.interface, inputs, { backend: simBackend });
    // Same program, same packing: the two runs differ only by the simulated noise.
    const [ya, yb] = [a.outputs[g.outputs[0]!.name]!, b.outputs[g.outputs[0]!.name]!];
    expect(yb.dims).toEqual(ya.dims);
    ya.data.forEach((v, i) => expect(Math.abs(yb.data[i]! - v)).toBeLessThan(1e-5));
    await expectMatchesReference(g, inputs, c);

    const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
    const broken = path.join(tmp, 'broken.json');
    fs.writeFileSync(broken, JSON.stringify({ ...doc, interface: { inputs: [{ name: 'x' }], outputs: [] } }));
    expect(() => loadFhePlan(broken)).toThrow(/malformed plan: interface\.inputs\[0\]\.dtype/);
    const none = path.join(tmp, 'none.json');
    fs.writeFileSync(none, JSON.stringify({ ...doc, interface: undefined }));
    expect(() => loadFhePlan(none)).toThrow(/no tensor interface/);
    const renamed = path.join(tmp, 'renamed.json');
    doc.interface.inputs[0].ciphertexts[0].fhe = 'nope';
    fs.writeFileSync(renamed, JSON.stringify(doc));
    expect(() => loadFhePlan(renamed)).toThrow(/plan interface does not match the program's inputs \('x' unlisted, 'nope' not in the program\)/);
  });

  it('slot runs pack and unpack exactly (replicated, strided, several ciphertexts)', () => {
    const holds = Int32Array.from([0, 1, 2, 0, 1, 2, -1, 5, 3, -2, 4, 4]);
    const runs = holdsToRuns(holds);
    const data = [10, 11, 12, 13, 14, 15];
    const packed = packCiphertext(runs, 12, data);
    expect(Array.from(packed)).toEqual([10, 11, 12, 10, 11, 12, 0, 15, 13, 0, 14, 14]);
    const seen = new Set<number>();
    const outRuns = holdsToRuns(holds, seen);
    const t = unpackTensor({ name: 'y', dtype: 'float32', dims: [6], ciphertexts: [{ fhe: 'y', runs: outRuns }] }, () => packed);
    expect(Array.from(t)).toEqual(data);
    expect(() => unpackTensor({ name: 'y', dtype: 'float32', dims: [7], ciphertexts: [{ fhe: 'y', runs: outRuns }] }, () => packed)).toThrow(
      /element 6 is in no ciphertext/,
    );
  });
});
