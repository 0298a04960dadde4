// `fhec compile --emit ts`: the generated module type-checks under strict settings, and running it on
// an evaluator gives exactly what executeProgram gives on the same evaluator, keys and ciphertexts
// (bit for bit on the simulator with the same seed, byte-identical ciphertexts on SEAL), and what
// plain arithmetic gives within the CKKS error.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { beforeAll, describe, expect, it } from 'vitest';
import { emitTypeScript, weightsLayout } from '../compiler/emit/typescript.js';
import { FhecError } from '../ir/errors.js';
import { FheBuilder, parseFhe, type FheProgram, type SlotLayout } from '../ir/fhe/index.js';
import type { CkksClient, CkksEvaluator, CkksHandle, CkksRefresher } from '../runtime/backend.js';
import { chebyshevValue, evalChebyshev, type ChebyshevPolynomial } from '../passes/fhe/approximate/chebyshev.js';
import { multiplicativeDepth } from '../passes/fhe/analysis/depth.js';
import { manageScales } from '../passes/fhe/manage/manage-scales.js';
import { columnBlocks, lowerMatVec, type MatrixView } from '../passes/fhe/layout/matvec.js';
import { replicatedLayout } from '../passes/fhe/layout/packing.js';
import { placeRefreshes } from '../passes/fhe/refresh/refresh-placement.js';
import { decryptOutputs, encryptInputs, executeProgram, keyRequestFor } from '../runtime/ckks/execute.js';
import { fheChain, selectParameters, topLevel, type CkksParameters } from '../ir/ckks/params.js';
import { writePlan } from '../runtime/plan/plan.js';
import { RefreshKeyHolder } from '../runtime/refresh/key-holder.js';
import { MaskedRefresher } from '../runtime/refresh/refresher.js';
import { sealBackend } from '../runtime/seal/backend.js';
import { SimClient, SimEvaluator } from '../runtime/sim/backend.js';
import { typeCheck } from './helpers/type-check.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const GOLDEN = path.join(ROOT, 'test/golden/ts/small.ts.golden');
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

/** The golden module: every kind of constant (sidecar weights, inline, splat), rotation, negate, add_plain. */
function smallModule(): string {
  const params = selectParameters({ depth: 1 });
  const slots = params.ringDegree / 2;
  const L = fullLayout(slots);
  const b = new FheBuilder('small', slots);
  const x = b.input('x', L);
  const w = Float64Array.from({ length: 20 }, (_, i) => (i - 10) / 8);
  const y = b.mulConst(x, { kind: 'dense', values: w }, 'w');
  const s = b.add(y, b.rotate(y, 1));
  const t = b.addConst(b.negate(s), { kind: 'dense', values: Float64Array.from([1, -2, 0.5]) }, 'bias');
  b.output('y', b.addConst(t, { kind: 'splat', value: 0.125 }, 'shift'), L);
  const program = manage(b, params);
  const planFile = path.join(dir, 'small.json');
  writePlan(planFile, program, params);
  return emitTypeScript(program, { planFile, moduleName: 'small example' });
}

/** What a generated module exports, as seen from this (untyped) import. */
interface GeneratedModule {
  PROGRAM: { name: string; weightCount: number; weightsFile?: string; inputs: Record<string, { level: number; scale: number }> };
  decodeWeights(bytes: Uint8Array): Float64Array;
  run(ev: CkksEvaluator, inputs: Record<string, CkksHandle>, weights: Float64Array, refresher?: CkksRefresher): Promise<Record<string, CkksHandle>>;
}

interface Emitted {
  c: Case;
  /** Module variant: 'whole' (one function) or 'parts' (split into functions of a few ops). */
  variant: string;
  tsFile: string;
  source: string;
  weights: Uint8Array;
}

function emitCase(c: Case, variant: 'whole' | 'parts', opsPerFunction?: number): Emitted {
  const planFile = path.join(dir, `${c.name}.json`);
  // Refresh points with the bound the tests' refresher declares (values of these programs stay within 1).
  const points = c.program.ops.filter((op) => op.kind === 'refresh').map((op) => ({ value: op.args[0]!.name, bound: 1, source: 'declared' as const }));
  const sidecar = writePlan(planFile, c.program, c.params, points);
  const source = emitTypeScript(c.program, { planFile, ...(opsPerFunction ? { opsPerFunction } : {}) });
  const tsFile = path.join(dir, `${c.name}.${variant}.ts`);
  fs.writeFileSync(tsFile, source);
  return { c, variant, tsFile, source, weights: new Uint8Array(fs.readFileSync(sidecar)) };
}

/**
 * Strict type-check of the files; diagnostics of each file. `fhec/runtime` is the runtime's source, or
 * with `viaPackage` what a user who installed fhec gets: the package's exports map and built types.
 */

async function importModule(e: Emitted): Promise<GeneratedModule> {
  const js = ts.transpileModule(e.source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2023 } }).outputText;
  const file = e.tsFile.replace(/\.ts$/, '.mjs');
  fs.writeFileSync(file, js);
  return (await import(pathToFileURL(file).href)) as GeneratedModule;
}

/** Runs the generated module on `ev` with the given serialized inputs; serialized outputs. */
async function runGenerated(
  mod: GeneratedModule,
  ev: CkksEvaluator,
  inputs: Map<string, Uint8Array>,
  weights: Uint8Array,
  refresher?: CkksRefresher,
): Promise<Map<string, Uint8Array>> {
  const handles: Record<string, CkksHandle> = {};
  for (const [name, bytes] of inputs) handles[name] = ev.loadCiphertext(bytes);
  const out = await mod.run(ev, handles, mod.decodeWeights(weights), refresher);
  return new Map(Object.entries(out).map(([name, h]) => [name, ev.saveCiphertext(h)]));
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

describe('TypeScript emission of FHE programs', () => {
  const cases = [linearCase(), wideLinearCase(), chebyshevCase(), mixedCase(), refreshCase()];
  const emitted: Emitted[] = [];
  for (const c of cases) {
    emitted.push(emitCase(c, 'whole', 1e6));
    // Split into functions of a few ops each, so values cross function boundaries.
    emitted.push(emitCase(c, 'parts', c.name === 'wide' ? 40 : 5));
  }
  const modules = new Map<Emitted, GeneratedModule>();
  beforeAll(async () => {
    for (const e of emitted) modules.set(e, await importModule(e));
  });

  it('writes one statement per op with its level and scale, and splits long programs into functions', () => {
    for (const e of emitted) {
      const { program } = e.c;
      const comments = e.source.split('\n').filter((l) => /^\s*\/\/ (%\S+ = |output )/.test(l));
      expect(comments.length, e.tsFile).toBe(program.ops.length);
      for (const op of program.ops.filter((o) => o.result)) {
        const t = op.result!.type;
        expect(e.source).toContain(`// %${op.result!.name} = ${op.kind === 'rotate' ? 'rotate' : op.kind}`);
        expect(e.source).toContain(`${t.kind} at level ${t.level}, scale `);
      }
      const parts = e.source.match(/^function part\d+\(/gm)?.length ?? 0;
      const per = e.variant === 'whole' ? 1e6 : e.c.name === 'wide' ? 40 : 5;
      const body = program.ops.filter((o) => o.kind !== 'output').length;
      expect(parts, e.tsFile).toBe(program.ops.length <= per ? 0 : Math.ceil(body / per));
      // Weight vectors are referenced by sidecar offset, never inlined.
      expect(e.source.length).toBeLessThan(400 * program.ops.length + 6000);
    }
    expect(cases.find((c) => c.name === 'wide')!.program.ops.length).toBeGreaterThan(200);
  });

  it('type-checks under strict settings with zero diagnostics (the golden module too)', () => {
    const t0 = performance.now();
    // The check is real: a wrong call in a generated module is reported.
    const broken = path.join(dir, 'broken.ts');
    fs.writeFileSync(broken, emitted[0]!.source.replace(/ev\.rotate\((v\d+), \d+\)/, 'ev.rotate($1)'));
    const golden = path.join(dir, 'small.ts');
    fs.writeFileSync(golden, smallModule());
    const files = [...emitted.map((e) => e.tsFile), golden];
    const diagnostics = typeCheck([...files, broken]);
    for (const f of files) expect(diagnostics.get(f), f).toEqual([]);
    expect(diagnostics.get(broken)!.join('\n')).toMatch(/Expected 2 arguments, but got 1/);
    console.log(`type-checked ${files.length + 1} generated modules in ${(performance.now() - t0).toFixed(0)} ms`);
  });

  // dist/ is built by `npm test` (tsc -p tsconfig.json) before vitest runs; a stale build is skipped.
  const builtTypes = path.join(ROOT, 'dist/runtime/index.d.ts');
  const built = fs.existsSync(builtTypes) && fs.readFileSync(builtTypes, 'utf8').includes('CkksRefresher');
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

  it('gives bit-for-bit the results of executeProgram on the simulator with the same seed', async () => {
    for (const e of emitted) {
      const { program, params, inputs } = e.c;
      // Two clients and two evaluators with the same seeds draw the same noise, refreshes included.
      const clientA = new SimClient(params, keyRequestFor(program), 101);
      const clientB = new SimClient(params, keyRequestFor(program), 101);
      const keys = clientA.evaluationKeys();
      const encrypted = encryptInputs(program, clientA, inputs);
      expectSameBytes(encryptInputs(program, clientB, inputs), encrypted);
      const evA = new SimEvaluator(params, keys, 202);
      const evB = new SimEvaluator(params, keys, 202);
      const refresh = hasRefresh(program);
      const want = executeProgram(program, evA, encrypted, refresh ? { refresher: new ClientRefresher(evA, clientA) } : {}).outputs;
      const got = await runGenerated(modules.get(e)!, evB, encrypted, e.weights, refresh ? new ClientRefresher(evB, clientB) : undefined);
      expectSameBytes(got, want);
      // And the simulated values agree with plain arithmetic.
      for (const [name, out] of decryptOutputs(program, clientA, got)) {
        const exp = e.c.expected[name]!;
        expect(maxErr(out.values, exp), `${e.tsFile} ${name}`).toBeLessThanOrEqual(e.c.tolerance * Math.max(1, maxAbs(exp)));
      }
    }
  });

  it('runs refreshes through the client-aided protocol on the simulator', async () => {
    const c = cases.find((x) => hasRefresh(x.program))!;
    const client = new SimClient(c.params, keyRequestFor(c.program), 5);
    const ev = new SimEvaluator(c.params, client.evaluationKeys(), 6);
    for (const e of emitted.filter((x) => x.c === c)) {
      const got = await runGenerated(modules.get(e)!, ev, encryptInputs(c.program, client, c.inputs), e.weights, maskedRefresher(ev, client));
      const y = decryptOutputs(c.program, client, got).get('y')!.values;
      expect(maxErr(y, c.expected['y']!)).toBeLessThanOrEqual(c.tolerance);
    }
  });

  it('gives byte-identical ciphertexts to executeProgram on SEAL (same keys and encrypted inputs)', async () => {
    for (const c of cases) {
      const client = await sealBackend.createClient(c.params, keyRequestFor(c.program));
      const ev = await sealBackend.createEvaluator(c.params, client.evaluationKeys());
      try {
        const encrypted = encryptInputs(c.program, client, c.inputs);
        // Refreshes draw fresh masks and encryption randomness: the reference run records them (real
        // protocol); the generated module must ask for the same refreshes, and then gets the same answers.
        const recording = new RecordingRefresher(ev, maskedRefresher(ev, client));
        const want = executeProgram(c.program, ev, encrypted, hasRefresh(c.program) ? { refresher: recording } : {}).outputs;
        expect(recording.calls.length).toBe(c.program.ops.filter((op) => op.kind === 'refresh').length);
        for (const e of emitted.filter((x) => x.c === c)) {
          const replay = new ReplayingRefresher(ev, recording);
          const got = await runGenerated(modules.get(e)!, ev, encrypted, e.weights, hasRefresh(c.program) ? replay : undefined);
          expect(replay.used).toBe(recording.calls.length);
          expectSameBytes(got, want);
          for (const [name, out] of decryptOutputs(c.program, client, got)) {
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

  it('rejects an evaluator, inputs or weights that do not belong to the program', async () => {
    const e = emitted.find((x) => x.c.name === 'linear' && x.variant === 'whole')!;
    const mod = modules.get(e)!;
    const { program, params, inputs } = e.c;
    const client = new SimClient(params, keyRequestFor(program), 1);
    const ev = new SimEvaluator(params, client.evaluationKeys(), 2);
    const x = ev.loadCiphertext(encryptInputs(program, client, inputs).get('x')!);
    const weights = mod.decodeWeights(e.weights);
    expect(() => mod.decodeWeights(e.weights.subarray(8))).toThrow(/weights sidecar has \d+ bytes, this module expects/);
    // One flipped bit: same size, other bytes; the module checks the sha256 its plan records.
    const flipped = Uint8Array.from(e.weights);
    flipped[flipped.length >> 1]! ^= 1;
    expect(() => mod.decodeWeights(flipped)).toThrow(/does not match the sha256 its plan records/);
    await expect(mod.run(ev, { x }, weights.subarray(1))).rejects.toThrow(/weights have \d+ values/);
    await expect(mod.run(ev, {}, weights)).rejects.toThrow(/no ciphertext given for input "x"/);
    const low = ev.modSwitch(x);
    await expect(mod.run(ev, { x: low }, weights)).rejects.toThrow(/input "x" is at level 0, the program expects 1/);
    const other = selectParameters({ depth: 2 });
    const otherClient = new SimClient(other, keyRequestFor(program), 1);
    const otherEv = new SimEvaluator(other, otherClient.evaluationKeys(), 2);
    await expect(mod.run(otherEv, { x }, weights)).rejects.toThrow(/other CKKS parameters/);

    // A refresher that does not bring the ciphertext back to the top level is caught.
    const r = emitted.find((y) => hasRefresh(y.c.program) && y.variant === 'whole')!;
    const rc = new SimClient(r.c.params, keyRequestFor(r.c.program), 1);
    const rev = new SimEvaluator(r.c.params, rc.evaluationKeys(), 2);
    const rx = rev.loadCiphertext(encryptInputs(r.c.program, rc, r.c.inputs).get('x')!);
    const stale: CkksRefresher = { refresh: (ct) => rev.negate(ct) };
    const rmod = modules.get(r)!;
    await expect(rmod.run(rev, { x: rx }, rmod.decodeWeights(r.weights), stale)).rejects.toThrow(
      /refresh of %\S+ gave level \d+ and scale \S+, the program expects level 2/,
    );
  });

  it('assigns sidecar offsets exactly as writePlan does', () => {
    for (const c of cases) {
      const plan = JSON.parse(fs.readFileSync(path.join(dir, `${c.name}.json`), 'utf8')) as { program: string; weights: { byteLength: number } };
      const written = parseFhe(plan.program);
      const { ranges, count } = weightsLayout(c.program);
      const refs = [...written.constants.values()].filter((k) => k.data.kind === 'weights');
      expect(refs.length).toBe(ranges.size);
      for (const k of refs) expect(ranges.get(k.name)).toEqual({ offset: (k.data as { offset: number }).offset, length: (k.data as { length: number }).length });
      expect(count * 8).toBe(plan.weights.byteLength);
    }
    const mixed = emitted.find((x) => x.c.name === 'mixed')!;
    expect(mixed.source).toMatch(/const c_bias: readonly number\[\] = \[0\.25, -0\.5, 0\.75, 1\];/);
    expect(modules.get(mixed)!.PROGRAM.weightCount).toBe(0);
  });

  it('refuses unmanaged programs and a plan that holds another program', () => {
    const slots = 4096;
    const b = new FheBuilder('raw', slots);
    b.output('y', b.negate(b.input('x', fullLayout(slots))), fullLayout(slots));
    expect(() => emitTypeScript(b.build())).toThrow(FhecError);

    const lin = cases[0]!;
    expect(() => emitTypeScript(cases[1]!.program, { planFile: path.join(dir, `${lin.name}.json`) })).toThrow(/another program/);
    expect(() => emitTypeScript(lin.program, { planFile: path.join(dir, 'missing.json') })).toThrow(/cannot read the plan/);
  });
});

describe('golden TypeScript module', () => {
  it('pins the emitted text of a small program (UPDATE_GOLDEN=1 regenerates)', () => {
    const text = smallModule();
    if (process.env.UPDATE_GOLDEN) {
      fs.mkdirSync(path.dirname(GOLDEN), { recursive: true });
      fs.writeFileSync(GOLDEN, text);
    }
    expect(text).toBe(fs.readFileSync(GOLDEN, 'utf8'));
  });
});
