// `fhec compile --cost-only`: a model's step priced without reading its weights. The shape-only
// lowering must build the very program the real lowering builds when every weight diagonal is nonzero
// (dense random weights), op for op; the CLI prints the figures, writes nothing, and refuses bad
// intervals with exit 2; a model whose weights are a sparse file (never written) is estimated.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildLlamaGraph, LLAMA32_1B, randomLlamaWeights, type LlamaConfig } from '../bench/llama-synth.js';
import { exportOnnx } from '../compiler/onnx/export.js';
import { DEFAULT_INTERVALS, scaledMs } from '../compiler/cost-estimate.js';
import { loadModel } from '../compiler/driver.js';
import { importOnnx } from '../compiler/onnx/import.js';
import { generatorBindings } from '../passes/canonical/specialize.js';
import { lowerCanonicalModel } from '../passes/fhe/lower-canonical/lower-model.js';
import { fhecInProcess as fhec } from './helpers/in-process.js';
import { fhec as fhecChild } from './helpers/cli.js';
import { ROOT } from './helpers/shared.js';
import { findRepeatedRun, keepRepeats } from '../ir/graph/repeated-blocks.js';
import type { ValueRange } from '../ir/graph/range.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-cost-'));
// Llama-3.2-1B's structure (tied embeddings, GQA 4:1, RoPE scaling, KV cache) at a small size.
const SMALL: LlamaConfig = { ...LLAMA32_1B, layers: 2, hidden: 128, heads: 8, kvHeads: 2, headDim: 16, ffn: 256, vocab: 512, maxPositions: 64, dtype: 'float32', kvCache: true };

function opCounts(ops: readonly { kind: string }[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const op of ops) out[op.kind] = (out[op.kind] ?? 0) + 1;
  return out;
}

describe('cost-only lowering', () => {
  it('builds the program the real lowering builds for dense weights, op for op', () => {
    const file = path.join(tmp, 'small.onnx');
    exportOnnx(buildLlamaGraph(SMALL, randomLlamaWeights(7, 'float32', SMALL.rope)), file, { externalData: { location: 'small.onnx.data' } });
    const imported = importOnnx(file).graph;
    const graph = loadModel(file, { canonical: true, bindings: generatorBindings(imported, { kind: 'decode', past: 4 }), verifyEach: false }).graph;
    // The intervals the estimate assumes by default, annotated where estimateModelCost annotates them.
    const e = { intervals: DEFAULT_INTERVALS };
    const r = (lo: number, hi: number, inner?: Record<string, ValueRange>): ValueRange => ({ count: 1, masked: 0, nan: 0, min: lo, max: hi, absMax: Math.max(-lo, hi), mean: 0, std: 1, pct: { p0_1: lo, p1: lo, p99: hi, p99_9: hi }, absPct: { p0_1: 0, p1: 0, p99: hi, p99_9: hi }, percentileAccuracy: 0, lo, hi, margin: 0, ...(inner ? { inner } : {}) });
    const attention = new Map();
    for (const n of graph.nodes) {
      if (n.op === 'rms_norm') n.outputs[0]!.range = r(-Infinity, Infinity, { norm_arg: r(...e.intervals.rms) });
      if (n.op === 'swiglu') n.inputs[0]!.range = r(...e.intervals.silu);
      if (n.op === 'attention') {
        const [lo, hi] = e.intervals.scores;
        attention.set(n.name, { relMin: lo, relMax: hi, sumMin: 1, sumMax: 5 * Math.exp(hi), diagMin: lo, diagMax: -lo, scoreMin: 2 * lo, scoreMax: -lo + hi, rows: 1 });
      }
    }
    const real = lowerCanonicalModel(graph, { slots: 4096, attention });
    const shapes = lowerCanonicalModel(graph, { slots: 4096, attention, weights: 'shapes' });
    expect(opCounts(shapes.program.ops)).toEqual(opCounts(real.program.ops));
    expect(shapes.program.ops.map((o) => o.kind).join()).toBe(real.program.ops.map((o) => o.kind).join());
    // Its constants say where their values would come from, and hold none.
    const weightConstants = [...shapes.program.constants.values()].filter((c) => c.data.kind === 'weights');
    expect(weightConstants.length).toBeGreaterThan(0);
    // Each names the external data it derives from (gain-folded, merged: the views over it), or a fold.
    const sources = new Set(weightConstants.map((c) => (c.data.kind === 'weights' ? c.data.source : undefined)));
    expect([...sources].some((x) => /^external:small\.onnx\.data@\d+\+\d+$/.test(x ?? ''))).toBe(true);
    for (const x of sources) expect(x).toMatch(/external:small\.onnx\.data@\d+\+\d+|folded/);
  }, 60000);

  it('says why a generation plan has no latency prediction instead of printing NaN', async () => {
    // At N=32768 even power-of-two Galois keys exceed the default key budget, so the step plans are not
    // priced; the compile summary names the reason (it printed "predicted NaN s per token" before).
    const models = path.join(ROOT, 'models');
    const out = path.join(tmp, 'unpriced', 'plan.json');
    const r = await fhec('compile', path.join(models, 'zoo', 'Z1_kvcache_opset14.onnx'), '-o', out, '--calibration', path.join(models, 'llama-byte-a', 'calibration.txt'), '--max-context', '4', '--prefill', '2', '--max-windows', '1', '--ring-degree', '32768');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/decode plan for pasts 2\.\.3: \d+ ops, \d+ refreshes in \d+ rounds \(the cache carry's included\), no latency prediction \(even power-of-two Galois keys .* exceed the key budget of \d+ MiB\)/);
    expect(r.stdout + r.stderr).not.toMatch(/NaN/);
  }, 120000);

  it('prints the figures from the CLI for a model whose weights are a sparse file, and writes nothing', async () => {
    const dir = path.join(tmp, 'sparse');
    fs.mkdirSync(dir);
    const file = path.join(dir, 'm.onnx');
    // Hidden 1024, FFN 4096, vocabulary 32,000 (two ciphertexts' worth of logits at N=16384): never written.
    exportOnnx(buildLlamaGraph({ ...SMALL, hidden: 1024, heads: 16, kvHeads: 4, headDim: 64, ffn: 4096, vocab: 32000, dtype: 'float16' }), file, { externalData: { location: 'm.onnx.data', sparse: true } });
    const before = fs.readdirSync(dir).sort();
    const r = await fhec('compile', file, '--cost-only', '--decode', '4', '--ring-degree', '16384', '--cores', '32', '--interval', 'silu=-8,8');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/cost estimate for .*m\.onnx, decode of one token after 4 \(weights not read; assumed intervals.*silu input -8\.\.8/);
    expect(r.stdout).toMatch(/\| rotations \| [\d,]+ \|/);
    expect(r.stdout).toMatch(/\| refreshes \| [\d,]+ in [\d,]+ round trips \|/);
    expect(r.stdout).toMatch(/\| key memory .*\| [\d.]+ GiB \|/);
    expect(r.stdout).toMatch(/\| predicted per token, this machine .*\| [\d.]+ s/);
    expect(r.stdout).toMatch(/\| predicted per token, 32 cores/);
    expect(fs.readdirSync(dir).sort()).toEqual(before);
    const bad = await fhec('compile', file, '--cost-only', '--interval', 'rms=0,4');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--interval.*mean square interval must be positive/);
    const both = await fhec('compile', file, '--cost-only', '-o', path.join(tmp, 'p.json'));
    expect(both.status).toBe(2);
    expect(both.stderr).toMatch(/--cost-only writes nothing/);
  }, 60000);
});

describe('cost-only pricing of repeated blocks', () => {
  it('finds the decoder layers by structure and cuts them to a graph like the one built with fewer layers', () => {
    const load = (layers: number) => {
      const file = path.join(tmp, `rep-${layers}.onnx`);
      exportOnnx(buildLlamaGraph({ ...SMALL, layers }), file, { externalData: { location: `rep-${layers}.onnx.data`, sparse: true } });
      return loadModel(file, { canonical: true, bindings: generatorBindings(importOnnx(file).graph, { kind: 'decode', past: 4 }), verifyEach: false }).graph;
    };
    const five = load(5);
    const run = findRepeatedRun(five)!;
    expect(run.count).toBe(5);
    const two = load(2);
    expect(five.nodes.length - two.nodes.length).toBe(3 * run.period);
    keepRepeats(five, run, 2);
    // Same ops in the same order, the same inputs (KV caches of 2 layers) and outputs (logits, 2 layers' presents).
    expect(five.nodes.map((n) => n.op)).toEqual(two.nodes.map((n) => n.op));
    expect(five.inputs.length).toBe(two.inputs.length);
    expect(five.outputs.length).toBe(two.outputs.length);
    // The head reads the last kept layer's residual stream.
    const head = five.nodes[five.nodes.length - 1]!;
    expect(five.nodes.indexOf(head.inputs[0]!.producer!)).toBeLessThan(run.start + 2 * run.period + 2);
  }, 60000);

  it('extrapolates 2 and 3 copies: rotations as lowering every layer, ops within 1%, and linear in the layer count', async () => {
    const est = async (layers: number, ...extra: string[]) => {
      const file = path.join(tmp, `ext-${layers}.onnx`);
      if (!fs.existsSync(file)) exportOnnx(buildLlamaGraph({ ...SMALL, layers }), file, { externalData: { location: `ext-${layers}.onnx.data`, sparse: true } });
      const r = await fhec('compile', file, '--cost-only', '--decode', '4', '--ring-degree', '16384', ...extra);
      expect(r.status, r.stderr).toBe(0);
      const total = Number(/\| ops \| ([\d,]+) /.exec(r.stdout)![1]!.replace(/,/g, ''));
      const rotations = Number(/\| rotations \| ([\d,]+) /.exec(r.stdout)![1]!.replace(/,/g, ''));
      const critical = Number(/\| critical path per token [^|]*\| ([\d.]+) s \|/.exec(r.stdout)![1]!);
      const oneCore = Number(/\| predicted per token, this machine [^|]*\| ([\d.]+) s/.exec(r.stdout)![1]!);
      return { total, rotations, critical, oneCore, stdout: r.stdout };
    };
    const [six, eight, whole] = [await est(6), await est(8), await est(6, '--whole-graph')];
    expect(six.stdout).toMatch(/6 repeated blocks of \d+ canonical ops: priced as 2 and 3 copies/);
    expect(whole.stdout).not.toMatch(/repeated blocks/);
    expect(six.rotations).toBe(whole.rotations);
    expect(Math.abs(six.total - whole.total) / whole.total).toBeLessThan(0.01);
    const perLayer = (eight.total - six.total) / 2;
    expect(perLayer).toBeGreaterThan(0);
    expect(six.total - 6 * perLayer).toBeGreaterThan(0); // what is not a layer: the head (and embedding inputs)
    // The critical path extrapolates too (the layers run one after another): within 5% of lowering every layer,
    // longer with more layers, and below the one-core prediction (the step has independent ops to spread).
    expect(Math.abs(six.critical - whole.critical) / whole.critical).toBeLessThan(0.05);
    expect(eight.critical).toBeGreaterThan(six.critical);
    expect(six.critical).toBeLessThan(six.oneCore);
  }, 120000);

  it('scales to more cores by dividing the ops, never below the critical path', () => {
    // Ops 900 ms over 64 cores plus 100 ms of round trips: 114 ms, unless the longest chain is longer.
    expect(scaledMs({ predictedMs: 1000, refreshMs: 100, criticalPathMs: 50 }, 64)).toBeCloseTo(900 / 64 + 100, 9);
    expect(scaledMs({ predictedMs: 1000, refreshMs: 100, criticalPathMs: 300 }, 64)).toBe(300);
    expect(scaledMs({ predictedMs: 1000, refreshMs: 100, criticalPathMs: 300 }, 1)).toBe(1000);
  });
});

describe('cost-only bounds on Llama-3.2-1B layer shapes', () => {
  it('searches the parameters for 6 layers of hidden 2048, 32/8 heads of 64, FFN 8192 in a child process within 2 GiB and 60 CPU-seconds', () => {
    const dir = path.join(tmp, 'l1b');
    fs.mkdirSync(dir);
    const file = path.join(dir, 'm.onnx');
    // The 1B layer shapes; the vocabulary cut to 2,048 so that the 128k-row head does not dominate the time.
    exportOnnx(buildLlamaGraph({ ...LLAMA32_1B, layers: 6, vocab: 2048, maxPositions: 2048, kvCache: true }), file, { externalData: { location: 'm.onnx.data', sparse: true } });
    // No --ring-degree: the cost-driven search, whose candidates that cannot win are skipped before placement.
    const r = fhecChild('compile', file, '--cost-only', '--decode', '16');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/6 repeated blocks of 14 canonical ops/);
    expect(r.stdout).toMatch(/\| \* \| 16384 \| 40 \| \d+ \|/);
    expect(r.stdout).toMatch(/\| 32768 \| 40 \| \d+ \|.*\| pruned: at least [\d.]+ ms before any refresh, above the best [\d.]+ ms \|/);
    const [, cpu, peak] = /; ([\d.]+) CPU-s in this process\), peak memory ([\d.]+) GiB/.exec(r.stdout)!;
    expect(Number(peak)).toBeLessThan(2);
    expect(Number(cpu)).toBeLessThan(60);
  }, 300000);
});
