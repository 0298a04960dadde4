// Plans that stream their weights (`fhec compile --stream-weights`): linear weights stored in ONNX external
// data are referenced by file, offset, length and sha256, and each diagonal is built from the rows or
// columns it needs where it is used. A synthetic Llama with fp16 weights, tied embeddings read through
// Cast and Transpose, GQA and 12-channel heads (padded), exported with external data.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildLlamaGraph, randomLlamaWeights, type LlamaConfig } from '../bench/llama-synth.js';
import { referenceLogits } from '../compiler/accuracy.js';
import { compileModel, writeModelPlan, type CompiledModel } from '../compiler/model-plan.js';
import { exportOnnx } from '../compiler/onnx/export.js';
import { FhecError } from '../ir/errors.js';
import { constantSlots } from '../ir/fhe/layout.js';
import { weightCache } from '../ir/weights/cache.js';
import { loadModelPlan, ModelSession } from '../runtime/model-session.js';
import { simBackend } from '../runtime/sim/backend.js';
import { sealBackend } from '../runtime/seal/backend.js';
import { MODELS } from './helpers/shared.js';
import { fhecInProcess as fhec } from './helpers/in-process.js';

const CALIBRATION = path.join(MODELS, 'calibration.txt');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-stream-'));
const CFG: LlamaConfig = { layers: 1, hidden: 48, heads: 4, kvHeads: 2, headDim: 12, ffn: 136, vocab: 256, maxPositions: 64, dtype: 'float16', tiedEmbeddings: true };
const S = 4;
const tokens = Array.from(fs.readFileSync(CALIBRATION).subarray(200, 200 + S));

/** The model in its own folder (weights in `m.onnx.data`). */
function writeModel(dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'm.onnx');
  exportOnnx(buildLlamaGraph(CFG, randomLlamaWeights(11, 'float16')), file, { externalData: { location: 'm.onnx.data' } });
  return file;
}

/** Largest |a - b|. */
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);

async function logits(plan: string, backend = simBackend, workers?: number): Promise<Float64Array> {
  const out = await new ModelSession(loadModelPlan(plan), backend, { monitor: false, ...(workers ? { workers } : {}) }).run({ input_ids: tokens });
  return Float64Array.from(out.outputs['logits']!.data);
}

describe('plans that stream their weights from the external data', () => {
  const model = writeModel(path.join(tmp, 'model'));
  let plain: CompiledModel;
  let stream: CompiledModel;
  const plainPlan = path.join(tmp, 'plain', 'plan.json');
  const streamPlan = path.join(tmp, 'stream', 'plan.json');
  beforeAll(() => {
    const opts = { calibration: CALIBRATION, prefill: S, maxWindows: 4, ringDegree: 16384 };
    plain = compileModel(model, opts);
    stream = compileModel(model, { ...opts, streamWeights: true });
    for (const f of [plainPlan, streamPlan]) fs.mkdirSync(path.dirname(f), { recursive: true });
    writeModelPlan(plainPlan, plain);
    writeModelPlan(streamPlan, stream);
  }, 240000);

  it('lowers to the same program: each streamed diagonal is the one the plain plan stores, bit for bit', () => {
    expect(stream.managed.ops.map((o) => o.kind)).toEqual(plain.managed.ops.map((o) => o.kind));
    expect([stream.params.ringDegree, stream.params.bitSizes, stream.refreshes]).toEqual([plain.params.ringDegree, plain.params.bitSizes, plain.refreshes]);
    const streamed = [...stream.managed.constants.values()].filter((c) => c.data.kind === 'diagonal');
    // Every linear (q, k, v, o, gate, up, down and the tied lm_head) is in the data file.
    const plainDiagonals = [...plain.managed.constants.values()].filter((c) => c.name.startsWith('diag') && c.data.kind === 'dense');
    expect(streamed.length).toBe(plainDiagonals.length);
    expect(streamed.length).toBeGreaterThan(100);
    const slots = plain.managed.slots;
    for (const c of streamed) {
      const p = plain.managed.constants.get(c.name)!;
      expect(p.data.kind).toBe('dense');
      expect(constantSlots(c.data, slots, c.name)).toEqual(constantSlots(p.data, slots, p.name));
    }
  });

  it('writes no weight to the plan: its matrices name the data file, offsets and sha256; sim gives the same logits', async () => {
    const bytes = (plan: string) => fs.statSync(plan.replace(/\.json$/, '.weights.bin')).size;
    expect(bytes(streamPlan)).toBeLessThan(0.1 * bytes(plainPlan));
    const doc = JSON.parse(fs.readFileSync(streamPlan, 'utf8'));
    expect(doc.matrices.length).toBeGreaterThan(5);
    const data = fs.readFileSync(path.join(tmp, 'model', 'm.onnx.data'));
    const regions = new Map<string, { offset: number; length: number; sha256: string; file: string }>();
    const walk = (r: any): void => (r.op === 'external' ? void regions.set(`${r.offset}`, r) : r.parts ? r.parts.forEach(walk) : walk(r.of));
    doc.matrices.forEach((m: any) => walk(m.weight));
    for (const r of regions.values()) {
      expect(r.file).toBe('../model/m.onnx.data');
      expect(r.sha256).toBe(createHash('sha256').update(data.subarray(r.offset, r.offset + r.length)).digest('hex'));
    }
    const [a, b] = [await logits(plainPlan), await logits(streamPlan)];
    const ref = referenceLogits(model, tokens).data;
    const spread = Math.max(...ref) - Math.min(...ref);
    let worst = 0;
    for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(b[i]! - ref[i]!));
    expect(worst).toBeLessThan(0.01 * spread);
    // The same program and constants: only the simulator's noise draw differs between runs (~1e-6 of the spread).
    expect(maxDiff(a, b)).toBeLessThan(1e-4 * spread);
    // The CLI on sim also runs the range monitor (the unmanaged program, its diagonals bound to the plan's).
    const inputs = path.join(tmp, 'inputs.json');
    fs.writeFileSync(inputs, JSON.stringify({ inputs: { input_ids: { dims: [1, S], dtype: 'int64', data: tokens } } }));
    const r = await fhec('run', streamPlan, '--inputs', inputs, '--backend', 'sim', '--out', path.join(tmp, 'out.json'));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/streamed weights \(this thread\): \d+ blocks read/);
    const cli = JSON.parse(fs.readFileSync(path.join(tmp, 'out.json'), 'utf8')).outputs.logits.data as number[];
    expect(maxDiff(cli, a)).toBeLessThan(1e-4 * spread);
  }, 120000);

  it('within a small weight budget blocks are dropped and read again, with the same logits', async () => {
    const want = await logits(streamPlan);
    const before = { ...weightCache.stats };
    weightCache.setBudget(64 * 1024);
    try {
      const got = await logits(streamPlan);
      expect(maxDiff(got, want)).toBeLessThan(1e-4 * (Math.max(...want) - Math.min(...want)));
      expect(weightCache.stats.evictions).toBeGreaterThan(before.evictions);
      expect(weightCache.stats.loads - before.loads).toBeGreaterThan(5);
    } finally {
      weightCache.setBudget(before.budgetBytes);
    }
  }, 120000);

  it('on SEAL (encrypted) with 2 workers, each streaming through its own cache, the plan gives the reference logits', async () => {
    const ref = referenceLogits(model, tokens).data;
    const loads = weightCache.stats.loads;
    const got = await logits(streamPlan, sealBackend, 2);
    // The workers built every diagonal: this thread read no block.
    expect(weightCache.stats.loads).toBe(loads);
    const spread = Math.max(...ref) - Math.min(...ref);
    let worst = 0;
    for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(got[i]! - ref[i]!));
    expect(worst).toBeLessThan(0.02 * spread);
  }, 300000);

  it('a data file changed after compiling is refused, naming it (never wrong values)', async () => {
    // A copy of the plan whose data file is then damaged (the matrices point at the copy).
    const dir = path.join(tmp, 'damaged');
    fs.mkdirSync(path.join(dir, 'plan'), { recursive: true });
    fs.cpSync(path.join(tmp, 'model'), path.join(dir, 'model'), { recursive: true });
    for (const f of fs.readdirSync(path.dirname(streamPlan))) fs.copyFileSync(path.join(path.dirname(streamPlan), f), path.join(dir, 'plan', f));
    const plan = path.join(dir, 'plan', 'plan.json');
    const data = path.join(dir, 'model', 'm.onnx.data');
    const bytes = fs.readFileSync(data);
    bytes[bytes.length >> 1] ^= 0x40;
    fs.writeFileSync(data, bytes);
    weightCache.clear();
    await expect(logits(plan)).rejects.toThrow(FhecError);
    weightCache.clear();
    await expect(logits(plan)).rejects.toThrow(/sha256 .* the plan recorded/);
    const inputs = path.join(dir, 'inputs.json');
    fs.writeFileSync(inputs, JSON.stringify({ inputs: { input_ids: { dims: [1, S], dtype: 'int64', data: tokens } } }));
    weightCache.clear();
    const r = await fhec('run', plan, '--inputs', inputs, '--backend', 'sim');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(data);
    expect(r.stderr).toMatch(/weight bytes \d+\.\.\d+ have sha256/);
    // A diagonal whose geometry leaves the slots, or a table that lost an entry: refused at load, naming the constant.
    const doc = JSON.parse(fs.readFileSync(plan, 'utf8'));
    fs.writeFileSync(plan, JSON.stringify({ ...doc, program: doc.program.replace(/(diagonal \d+ \[[^\]]*, )\d+\]/, (_: string, head: string) => `${head}999999]`) }));
    expect(() => loadModelPlan(plan)).toThrow(/constant @diag\w*: diagonal geometry puts \d+ tokens of 999999 slots in 8192/);
    fs.writeFileSync(plan, JSON.stringify({ ...doc, matrices: doc.matrices.slice(1) }));
    expect(() => loadModelPlan(plan)).toThrow(/refers to matrix \d+, which the plan's matrices table does not list/);
  }, 120000);
});

describe('fhec compile --stream-weights (CLI)', () => {
  it('says what the plan references, and without the flag how much a plan holding its weights carries', async () => {
    const model = writeModel(path.join(tmp, 'cli-model'));
    const args = ['compile', model, '--calibration', CALIBRATION, '--prefill', '2', '--max-windows', '2', '--ring-degree', '16384'];
    const streamed = await fhec(...args, '-o', path.join(tmp, 'cli', 'streamed.json'), '--stream-weights');
    expect(streamed.status, streamed.stderr).toBe(0);
    // Every linear weight of the model is in its external data: none is stored in the plan.
    expect(streamed.stdout).toMatch(/streamed weights: \d+ diagonals of \d+ matrix blocks reference \d+ regions \([\d.]+ MiB\) of the model's external data; 0 diagonals of weights stored inline/);
    const held = await fhec(...args, '-o', path.join(tmp, 'cli', 'held.json'));
    expect(held.status, held.stderr).toBe(0);
    expect(held.stdout).toMatch(/the plan holds its weights \([\d.]+ MiB of packed diagonals\); the model's weights are in external data: --stream-weights would reference them instead/);
    // Where it cannot apply, or with a budget that is no number of MiB: exit 2 naming the flag.
    const arithmetic = await fhec('compile', model, '-o', path.join(tmp, 'cli', 'a.json'), '--stream-weights');
    expect([arithmetic.status, arithmetic.stderr]).toEqual([2, expect.stringContaining('--stream-weights is for transformer models compiled with --calibration')]);
    const costOnly = await fhec('compile', model, '--cost-only', '--stream-weights');
    expect([costOnly.status, costOnly.stderr]).toEqual([2, expect.stringContaining('drop --stream-weights')]);
    const budget = await fhec('run', path.join(tmp, 'cli', 'streamed.json'), '--inputs', path.join(tmp, 'cli', 'none.json'), '--weight-memory', '0');
    expect([budget.status, budget.stderr]).toEqual([2, expect.stringMatching(/--weight-memory.*expects an integer >= 1, got '0'/)]);
    // The data file a streamed plan reads is one of its inputs: an output onto it is refused, the file untouched.
    const data = path.join(tmp, 'cli-model', 'm.onnx.data');
    const before = fs.readFileSync(data);
    const onto = await fhec('run', path.join(tmp, 'cli', 'streamed.json'), '--inputs', path.join(tmp, 'cli', 'none.json'), '--out', data);
    expect([onto.status, onto.stderr]).toEqual([2, expect.stringContaining(`would overwrite the input ${data}`)]);
    expect(fs.readFileSync(data).equals(before)).toBe(true);
  }, 120000);
});

describe('a generation plan that streams its weights', () => {
  it('gives the bytes the plan holding its weights gives (sim), its step plans referencing the data file', async () => {
    const dir = path.join(tmp, 'gen-model');
    fs.mkdirSync(dir, { recursive: true });
    const model = path.join(dir, 'kv.onnx');
    exportOnnx(buildLlamaGraph({ ...CFG, kvCache: true }, randomLlamaWeights(11, 'float16')), model, { externalData: { location: 'kv.onnx.data' } });
    const args = (out: string) => ['compile', model, '-o', out, '--calibration', CALIBRATION, '--max-context', '4', '--prefill', '2', '--max-windows', '2', '--ring-degree', '16384'];
    const [held, streamed] = [path.join(tmp, 'gen-held', 'g.json'), path.join(tmp, 'gen-streamed', 'g.json')];
    for (const [out, extra] of [[held, []], [streamed, ['--stream-weights']]] as const) {
      const c = await fhec(...args(out), ...extra);
      expect(c.status, c.stderr).toBe(0);
    }
    const steps = fs.readdirSync(path.join(tmp, 'gen-streamed', 'g.steps')).filter((f) => /^(prefill|decode)-[\d-]+\.json$/.test(f));
    expect(steps.length).toBeGreaterThanOrEqual(2);
    for (const f of steps) expect(JSON.parse(fs.readFileSync(path.join(tmp, 'gen-streamed', 'g.steps', f), 'utf8')).matrices.length).toBeGreaterThan(0);
    const gen = (plan: string) => fhec('generate', plan, '--prompt', 'Th', '--max-new-tokens', '2', '--backend', 'sim', '--no-progress');
    const [a, b] = [await gen(held), await gen(streamed)];
    expect(a.status, a.stderr).toBe(0);
    expect(b.status, b.stderr).toBe(0);
    expect(b.stdout).toBe(a.stdout);
    expect(b.stderr).toMatch(/streamed weights \(this thread\): \d+ blocks read/);
  }, 240000);
});
