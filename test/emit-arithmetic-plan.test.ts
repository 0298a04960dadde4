// `fhec compile --emit ts` on plans of arithmetic programs (what `fhec compile` writes for an arithmetic ONNX
// graph): the module is the one model and step plans get (compiler/emit/plan-module.ts, one PlanRuntime call
// per op), so op semantics live in runtime/ckks/op-semantics.ts alone. On hand-built programs with every op
// kind, sidecar weights, inline and splat constants and refreshes, the module type-checks under strict
// settings, and run through runEmittedPlan it gives exactly what executeProgram gives on the same
// evaluator, keys and ciphertexts (bit for bit on the simulator with the same seed, byte-identical
// ciphertexts on SEAL), and what plain arithmetic gives within the CKKS error.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadEmittedModule } from '../compiler/emit/load-module.js';
import { emitPlanModule } from '../compiler/emit/plan-module.js';
import { FheBuilder, type FheProgram, type SlotLayout } from '../ir/fhe/index.js';
import type { CkksClient, CkksEvaluator, CkksHandle, CkksRefresher } from '../runtime/backend.js';
import { chebyshevValue, evalChebyshev, type ChebyshevPolynomial } from '../passes/fhe/approximate/chebyshev.js';
import { multiplicativeDepth } from '../passes/fhe/analysis/depth.js';
import { manageScales } from '../passes/fhe/manage/manage-scales.js';
import { columnBlocks, lowerMatVec, type MatrixView } from '../passes/fhe/layout/matvec.js';
import { replicatedLayout } from '../passes/fhe/layout/packing.js';
import { placeRefreshes } from '../passes/fhe/refresh/refresh-placement.js';
import { decryptOutputs, encryptInputs, executeProgram, keyRequestFor } from '../runtime/ckks/execute.js';
import { runEmittedPlan, type EmittedPlanModule, type ExecuteOptions } from '../runtime/ckks/program-runtime.js';
import { fheChain, selectParameters, topLevel, type CkksParameters } from '../ir/ckks/params.js';
import { loadPlan, writePlan, type Plan } from '../runtime/plan/plan.js';
import { executionOrder } from '../runtime/refresh/rounds.js';
import { RefreshKeyHolder } from '../runtime/refresh/key-holder.js';
import { MaskedRefresher } from '../runtime/refresh/refresher.js';
import { sealBackend } from '../runtime/seal/backend.js';
import { SimClient, SimEvaluator } from '../runtime/sim/backend.js';
import { typeCheck } from './helpers/type-check.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-emit-ts-'));
// The generated modules are ES modules.
fs.writeFileSync(path.join(dir, 'package.json'), '{ "type": "module" }\n');

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  };
}

const fullLayout = (slots: number): SlotLayout => ({ length: slots, tokens: 1, stride: slots, period: slots, copies: 1 });

interface Case {
  name: string;
  params: CkksParameters;
  program: FheProgram;
  inputs: Record<string, Float64Array>;
  /** Plain-arithmetic value of each output. */
  expected: Record<string, Float64Array>;
  /** Error allowed against `expected` on SEAL (relative to max |expected|). */
  tolerance: number;
}

/** y = W x with an 8x8 matrix on a replicated input (rotations, weights in the sidecar). */
function linearCase(): Case {
  const params = selectParameters({ depth: 1 });
  const slots = params.ringDegree / 2;
  const r = rng(11);
  const w = Float64Array.from({ length: 64 }, r);
  const m: MatrixView = { rows: 8, cols: 8, at: (i, j) => w[i * 8 + j]! };
  const b = new FheBuilder('linear', slots);
  const layout = replicatedLayout(8, slots);
  const res = lowerMatVec(b, m, [{ value: b.input('x', layout), layout, colStart: 0 }]);
  b.output('y', res.outputs[0]!.value, res.outputs[0]!.layout);
  const x = Float64Array.from({ length: 8 }, r);
  const y = Float64Array.from({ length: 8 }, (_, i) => x.reduce((s, v, j) => s + m.at(i, j) * v, 0));
  return { name: 'linear', params, program: manage(b, params), inputs: { x }, expected: { y }, tolerance: 1e-5 };
}

/** A 64x64 matrix: a few hundred ops, baby-step rotations live across many ops. */
function wideLinearCase(): Case {
  const params = selectParameters({ depth: 1 });
  const slots = params.ringDegree / 2;
  const r = rng(5);
  const w = Float64Array.from({ length: 64 * 64 }, () => r() / 8);
  const m: MatrixView = { rows: 64, cols: 64, at: (i, j) => w[i * 64 + j]! };
  expect(columnBlocks(64, slots).length).toBe(1);
  const b = new FheBuilder('wide', slots);
  const layout = replicatedLayout(64, slots);
  const res = lowerMatVec(b, m, [{ value: b.input('x', layout), layout, colStart: 0 }]);
  b.output('y', res.outputs[0]!.value, res.outputs[0]!.layout);
  const x = Float64Array.from({ length: 64 }, r);
  const y = Float64Array.from({ length: 64 }, (_, i) => x.reduce((s, v, j) => s + m.at(i, j) * v, 0));
  return { name: 'wide', params, program: manage(b, params), inputs: { x }, expected: { y }, tolerance: 1e-5 };
}

/** A degree-7 Chebyshev polynomial: ct x ct products, relinearizations, scalar products, depth 3. */
function chebyshevCase(): Case {
  const r = rng(7);
  const p: ChebyshevPolynomial = { coeffs: Array.from({ length: 8 }, (_, i) => r() / (1 + i / 2)), a: -1, b: 1 };
  const probe = new FheBuilder('cheb', 8);
  evalChebyshev(probe, probe.input('x', fullLayout(8)), p);
  // 30-bit scales keep depth 3 inside N=8192's 218-bit budget.
  const params = selectParameters({ depth: multiplicativeDepth(probe.build()), scaleBits: 30 });
  expect(params.ringDegree).toBe(8192);
  const slots = params.ringDegree / 2;
  const b = new FheBuilder('cheb', slots);
  const { value } = evalChebyshev(b, b.input('x', fullLayout(slots)), p);
  b.output('y', value, fullLayout(slots));
  const x = Float64Array.from({ length: slots }, (_, i) => -1 + (2 * i) / (slots - 1));
  return {
    name: 'cheb',
    params,
    program: manage(b, params),
    inputs: { x },
    expected: { y: x.map((v) => chebyshevValue(p, v)) },
    tolerance: 1e-3,
  };
}

/**
 * Two inputs and three outputs with names that are not identifiers: ct x ct product, rotation, negate,
 * sub, additions across levels (mod_switch), a short inline constant and a splat; one output is an input.
 */
function mixedCase(): Case {
  const params = selectParameters({ depth: 2 });
  const slots = params.ringDegree / 2;
  const L = fullLayout(slots);
  const b = new FheBuilder('mixed', slots);
  const x = b.input('x.0', L);
  const z = b.input('class', L);
  const c = b.add(b.mul(x, z), b.sub(b.rotate(x, 3), b.negate(z)));
  const bias = [0.25, -0.5, 0.75, 1];
  const e = b.mulConst(b.addConst(c, { kind: 'dense', values: Float64Array.from(bias) }, 'bias'), { kind: 'splat', value: 0.5 }, 'half');
  b.output('c', c, L);
  b.output('e-out', e, L);
  b.output('echo', x, L);
  const r = rng(3);
  const xs = Float64Array.from({ length: slots }, r);
  const zs = Float64Array.from({ length: slots }, r);
  const cs = xs.map((v, i) => v * zs[i]! + xs[(i + 3) % slots]! + zs[i]!);
  const es = cs.map((v, i) => 0.5 * (v + (bias[i] ?? 0)));
  return { name: 'mixed', params, program: manage(b, params), inputs: { 'x.0': xs, class: zs }, expected: { c: cs, 'e-out': es, echo: xs }, tolerance: 1e-6 };
}

/** A degree-3 polynomial composed three times (depth 6) on a 2-level chain: refreshes placed by the DP. */
function refreshCase(): Case {
  const params = selectParameters({ depth: 2 });
  const slots = params.ringDegree / 2;
  const L = fullLayout(slots);
  const p: ChebyshevPolynomial = { coeffs: [0, 0.6, 0, 0.3], a: -1, b: 1 };
  const b = new FheBuilder('refreshed', slots);
  let v = b.input('x', L);
  for (let r = 0; r < 3; r++) v = evalChebyshev(b, v, p).value;
  b.output('y', v, L);
  // Refreshes at level 1 and above: level 0 alone cannot carry the 40-bit refresh mask.
  const placed = placeRefreshes(b.build(), { levels: 1 });
  expect(placed.count).toBeGreaterThanOrEqual(2);
  const program = manageScales(placed.program, { chain: fheChain(params), topScale: params.scale, inputLevel: topLevel(params) });
  const x = Float64Array.from({ length: slots }, (_, i) => -1 + (2 * i) / (slots - 1));
  const y = x.map((t) => chebyshevValue(p, chebyshevValue(p, chebyshevValue(p, t))));
  return { name: 'refreshed', params, program, inputs: { x }, expected: { y }, tolerance: 1e-3 };
}

function manage(b: FheBuilder, params: CkksParameters): FheProgram {
  return manageScales(b.build(), { chain: fheChain(params), topScale: params.scale });
}

const hasRefresh = (program: FheProgram) => program.ops.some((op) => op.kind === 'refresh');

/**
 * Refreshes through the key holder (a declared bound of 1); deterministic on the simulator for a seeded
 * client and evaluator (the mask comes off exactly, so its randomness does not reach the values).
 */
class ClientRefresher implements CkksRefresher {
  private readonly inner: MaskedRefresher;
  constructor(ev: CkksEvaluator, client: CkksClient) {
    this.inner = new MaskedRefresher(ev, new RefreshKeyHolder(client, 'unchecked').transport(), { mask: { valueBound: 1 } });
  }
  refresh(ct: CkksHandle, scale: number, name?: string): CkksHandle {
    return this.inner.refresh(ct, scale, name);
  }
}

/** The client-aided protocol's masking and byte messages (a declared bound of 1; no plan schedule here). */
function maskedRefresher(ev: CkksEvaluator, client: CkksClient): CkksRefresher {
  return new MaskedRefresher(ev, new RefreshKeyHolder(client, 'unchecked').transport(), { mask: { valueBound: 1 } });
}

/** Records what a refresher is asked and answers, so a second run can be checked against it and replayed. */
class RecordingRefresher implements CkksRefresher {
  readonly calls: { input: Uint8Array; output: Uint8Array; scale: number; name: string | undefined }[] = [];
  constructor(
    private readonly ev: CkksEvaluator,
    private readonly inner: CkksRefresher,
  ) {}
  refresh(ct: CkksHandle, scale: number, name?: string): CkksHandle {
    const fresh = this.inner.refresh(ct, scale, name);
    this.calls.push({ input: this.ev.saveCiphertext(ct), output: this.ev.saveCiphertext(fresh), scale, name });
    return fresh;
  }
}

/** Replays a recording: the same ciphertexts must come in, in the same order, and get the same answers. */
class ReplayingRefresher implements CkksRefresher {
  used = 0;
  constructor(
    private readonly ev: CkksEvaluator,
    private readonly recording: RecordingRefresher,
  ) {}
  refresh(ct: CkksHandle, scale: number, name?: string): CkksHandle {
    const call = this.recording.calls[this.used++];
    if (!call) throw new Error('more refreshes than recorded');
    expect({ scale, name }).toEqual({ scale: call.scale, name: call.name });
    expect(Buffer.compare(Buffer.from(this.ev.saveCiphertext(ct)), Buffer.from(call.input)), 'refreshed ciphertext differs').toBe(0);
    return this.ev.loadCiphertext(call.output);
  }
}

interface Emitted {
  c: Case;
  /** Module variant: 'whole' (one function) or 'parts' (split into functions of a few ops). */
  variant: string;
  planFile: string;
  tsFile: string;
  source: string;
  plan: Plan;
}

function emitCase(c: Case, variant: 'whole' | 'parts', opsPerFunction: number): Emitted {
  const planFile = path.join(dir, `${c.name}.json`);
  // Refresh points with the bound the tests' refresher declares (values of these programs stay within 1).
  const points = c.program.ops.filter((op) => op.kind === 'refresh').map((op) => ({ value: op.args[0]!.name, bound: 1, source: 'declared' as const }));
  writePlan(planFile, c.program, c.params, points);
  const source = emitPlanModule(planFile, { opsPerFunction });
  const tsFile = path.join(dir, `${c.name}.${variant}.ts`);
  fs.writeFileSync(tsFile, source);
  return { c, variant, planFile, tsFile, source, plan: loadPlan(planFile) };
}

/** Runs the plan's program through its emitted module (or through executeProgram); serialized outputs. */
function runPlan(e: Emitted, mod: EmittedPlanModule | undefined, ev: CkksEvaluator, inputs: Map<string, Uint8Array>, options: ExecuteOptions = {}): Map<string, Uint8Array> {
  return (mod ? runEmittedPlan(mod, e.plan, e.planFile, ev, inputs, options) : executeProgram(e.plan.program, ev, inputs, options)).outputs;
}

function expectSameBytes(got: Map<string, Uint8Array>, want: Map<string, Uint8Array>): void {
  expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
  for (const [name, bytes] of want) {
    const g = got.get(name)!;
    expect(g.length, name).toBe(bytes.length);
    expect(Buffer.compare(Buffer.from(g), Buffer.from(bytes)), `output ${name} differs`).toBe(0);
  }
}

function maxErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

describe('TypeScript emission of arithmetic plans', () => {
  const cases = [linearCase(), wideLinearCase(), chebyshevCase(), mixedCase(), refreshCase()];
  const emitted: Emitted[] = [];
  for (const c of cases) {
    emitted.push(emitCase(c, 'whole', 1e6));
    // Split into functions of a few ops each, so values cross function boundaries.
    emitted.push(emitCase(c, 'parts', c.name === 'wide' ? 40 : 5));
  }
  const modules = new Map<Emitted, EmittedPlanModule>();
  beforeAll(() => {
    for (const e of emitted) modules.set(e, loadEmittedModule(e.tsFile));
  });

  it('writes one runtime call per op with its level and scale, and splits long programs into functions', () => {
    for (const e of emitted) {
      const { program } = e.plan;
      const comments = e.source.split('\n').filter((l) => /^\s*\/\/ (%\S+ = |output )/.test(l));
      expect(comments.length, e.tsFile).toBe(program.ops.length);
      expect(e.source.match(/\brt\.\w+\(/g)?.length, e.tsFile).toBe(program.ops.length);
      for (const op of program.ops.filter((o) => o.result)) {
        const t = op.result!.type;
        expect(e.source).toContain(`// %${op.result!.name} = ${op.kind}`);
        expect(e.source).toContain(`${t.kind} at level ${t.level}, scale `);
      }
      const fns = e.source.match(/^function ops(_\d+)?\(/gm)?.length ?? 0;
      const per = e.variant === 'whole' ? 1e6 : e.c.name === 'wide' ? 40 : 5;
      // Runs of ops between inputs and outputs (in execution order), each cut every `per` ops.
      const runs = executionOrder(program)
        .map((i) => program.ops[i]!.kind)
        .join(' ')
        .split(/\b(?:input|output)\b/)
        .map((run) => run.trim().split(/\s+/).filter(Boolean).length)
        .filter((n) => n > 0);
      expect(fns, e.tsFile).toBe(runs.reduce((sum, n) => sum + Math.ceil(n / per), 0));
      // No data in the module: constants are encoded by name from the plan.
      expect(e.source.length).toBeLessThan(300 * program.ops.length + 3000);
    }
    expect(cases.find((c) => c.name === 'wide')!.program.ops.length).toBeGreaterThan(200);
    const mixed = emitted.find((x) => x.c.name === 'mixed')!;
    expect(mixed.source).toMatch(/rt\.encode\('bias'\)/);
    expect(mixed.source).not.toContain('0.75');
  });

  it('type-checks under strict settings with zero diagnostics', () => {
    // The check is real: a wrong call in a generated module is reported.
    const broken = path.join(dir, 'broken.ts');
    fs.writeFileSync(broken, emitted.find((e) => /rt\.rotate\(/.test(e.source))!.source.replace(/rt\.rotate\((\w+), -?\d+\)/, 'rt.rotate($1)'));
    const files = emitted.map((e) => e.tsFile);
    const diagnostics = typeCheck([...files, broken]);
    for (const f of files) expect(diagnostics.get(f), f).toEqual([]);
    expect(diagnostics.get(broken)!.join('\n')).toMatch(/Expected 2 arguments, but got 1/);
  });

  // dist/ is built by `npm test` (tsc -p tsconfig.json) before vitest runs; a stale build is skipped.
  const builtTypes = path.join(ROOT, 'dist/runtime/index.d.ts');
  const built = fs.existsSync(builtTypes) && fs.readFileSync(builtTypes, 'utf8').includes('PlanRuntime');
  it.skipIf(!built)('type-checks against the installed package (exports map, built types)', () => {
    const pkgDir = path.join(dir, 'installed');
    fs.mkdirSync(path.join(pkgDir, 'node_modules'), { recursive: true });
    fs.writeFileSync(path.join(pkgDir, 'package.json'), '{ "type": "module" }\n');
    fs.symlinkSync(ROOT, path.join(pkgDir, 'node_modules/fhec'), 'dir');
    const files = emitted.filter((e) => e.variant === 'parts').map((e) => {
      const f = path.join(pkgDir, path.basename(e.tsFile));
      fs.writeFileSync(f, e.source);
      return f;
    });
    const diagnostics = typeCheck(files, true);
    for (const f of files) expect(diagnostics.get(f), f).toEqual([]);
  });

  it('gives bit-for-bit the results of executeProgram on the simulator with the same seed', () => {
    for (const e of emitted) {
      const { params, inputs } = e.c;
      const program = e.plan.program;
      // Two clients and two evaluators with the same seeds draw the same noise, refreshes included.
      const clientA = new SimClient(params, keyRequestFor(program), 101);
      const clientB = new SimClient(params, keyRequestFor(program), 101);
      const keys = clientA.evaluationKeys();
      const encrypted = encryptInputs(program, clientA, inputs);
      expectSameBytes(encryptInputs(program, clientB, inputs), encrypted);
      const evA = new SimEvaluator(params, keys, 202);
      const evB = new SimEvaluator(params, keys, 202);
      const refresh = hasRefresh(program);
      const want = runPlan(e, undefined, evA, encrypted, refresh ? { refresher: new ClientRefresher(evA, clientA) } : {});
      const got = runPlan(e, modules.get(e)!, evB, encrypted, refresh ? { refresher: new ClientRefresher(evB, clientB) } : {});
      expectSameBytes(got, want);
      // And the simulated values agree with plain arithmetic.
      for (const [name, out] of decryptOutputs(program, clientA, got)) {
        const exp = e.c.expected[name]!;
        expect(maxErr(out.values, exp), `${e.tsFile} ${name}`).toBeLessThanOrEqual(e.c.tolerance * Math.max(1, maxAbs(exp)));
      }
    }
  });

  it('runs refreshes through the client-aided protocol on the simulator', () => {
    const refreshed = emitted.filter((x) => hasRefresh(x.plan.program));
    expect(refreshed.length).toBe(2);
    for (const e of refreshed) {
      const client = new SimClient(e.c.params, keyRequestFor(e.plan.program), 5);
      const ev = new SimEvaluator(e.c.params, client.evaluationKeys(), 6);
      const got = runPlan(e, modules.get(e)!, ev, encryptInputs(e.plan.program, client, e.c.inputs), { refresher: maskedRefresher(ev, client) });
      const y = decryptOutputs(e.plan.program, client, got).get('y')!.values;
      expect(maxErr(y, e.c.expected['y']!)).toBeLessThanOrEqual(e.c.tolerance);
    }
  });

  it('gives byte-identical ciphertexts to executeProgram on SEAL (same keys and encrypted inputs)', async () => {
    for (const c of cases) {
      const mine = emitted.filter((x) => x.c === c);
      const program = mine[0]!.plan.program;
      const client = await sealBackend.createClient(c.params, keyRequestFor(program));
      const ev = await sealBackend.createEvaluator(c.params, client.evaluationKeys());
      try {
        const encrypted = encryptInputs(program, client, c.inputs);
        // Refreshes draw fresh masks and encryption randomness: the reference run records them (real
        // protocol); the emitted module must ask for the same refreshes, and then gets the same answers.
        const recording = new RecordingRefresher(ev, maskedRefresher(ev, client));
        const want = runPlan(mine[0]!, undefined, ev, encrypted, hasRefresh(program) ? { refresher: recording } : {});
        expect(recording.calls.length).toBe(program.ops.filter((op) => op.kind === 'refresh').length);
        for (const e of mine) {
          const replay = new ReplayingRefresher(ev, recording);
          const got = runPlan(e, modules.get(e)!, ev, encrypted, hasRefresh(program) ? { refresher: replay } : {});
          expect(replay.used).toBe(recording.calls.length);
          expectSameBytes(got, want);
          for (const [name, out] of decryptOutputs(program, client, got)) {
            const exp = c.expected[name]!;
            expect(maxErr(out.values, exp), `${e.tsFile} ${name}`).toBeLessThanOrEqual(c.tolerance * Math.max(1, maxAbs(exp)));
          }
        }
      } finally {
        ev.dispose();
        client.dispose();
      }
    }
  });

  it('refuses a module of another plan, and inputs or refreshes that do not fit the program', () => {
    const lin = emitted.find((x) => x.c.name === 'linear' && x.variant === 'whole')!;
    const wide = emitted.find((x) => x.c.name === 'wide' && x.variant === 'whole')!;
    const { params, inputs } = lin.c;
    const client = new SimClient(params, keyRequestFor(lin.plan.program), 1);
    const ev = new SimEvaluator(params, client.evaluationKeys(), 2);
    const encrypted = encryptInputs(lin.plan.program, client, inputs);
    expect(() => runEmittedPlan(modules.get(wide)!, lin.plan, lin.planFile, ev, encrypted)).toThrow(/generated from another program/);
    expect(() => runPlan(lin, modules.get(lin)!, ev, new Map())).toThrow(/no ciphertext given for input "x"/);
    const low = ev.saveCiphertext(ev.modSwitch(ev.loadCiphertext(encrypted.get('x')!)));
    expect(() => runPlan(lin, modules.get(lin)!, ev, new Map([['x', low]]))).toThrow(/input "x" is at level 0, the program expects 1/);

    // A refresher that does not bring the ciphertext back to the level the program expects is caught.
    const r = emitted.find((y) => hasRefresh(y.plan.program) && y.variant === 'whole')!;
    const rc = new SimClient(r.c.params, keyRequestFor(r.plan.program), 1);
    const rev = new SimEvaluator(r.c.params, rc.evaluationKeys(), 2);
    const stale: CkksRefresher = { refresh: (ct) => rev.negate(ct) };
    expect(() => runPlan(r, modules.get(r)!, rev, encryptInputs(r.plan.program, rc, r.c.inputs), { refresher: stale })).toThrow(/refresh/);
  });
});
