// Range calibration: the recorded statistics against independent recomputation (interpreter hook,
// sorted values, ONNX Runtime's logits), the roles of values, the margin, the textual IR round trip
// with range annotations, calibration data (text windows, tensor JSON), and `fhec calibrate`.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { calibrateModel } from '../compiler/commands/calibrate.js';
import { loadCalibrationSets, textCalibrationSets, windowStarts } from '../compiler/calibration-data.js';
import { loadModel } from '../compiler/driver.js';
import { FhecError } from '../ir/errors.js';
import { integerBits, isMaskFill, remargin, scaleBits, type ValueRange } from '../ir/graph/range.js';
import type { Graph, Node, Value } from '../ir/graph/types.js';
import { GraphBuilder } from '../ir/graph/builder.js';
import { Tensor } from '../ir/tensor.js';
import { IrSyntaxError, parseGraph } from '../ir/text/parse.js';
import { printGraph } from '../ir/text/print.js';
import { weightsFrom } from '../ir/text/weights.js';
import { calibrate, calibratePass, Calibrator } from '../passes/calibrate/calibrate.js';
import { PassManager } from '../passes/pass-manager.js';
import { RangeAccumulator } from '../passes/calibrate/accumulator.js';
import { nonlinearInputs, secretValues } from '../passes/calibrate/roles.js';
import { LogSketch } from '../passes/calibrate/sketch.js';
import { runGraph } from '../runtime/reference/interpreter.js';
import { fhecInProcess } from './helpers/in-process.js';
import { MODELS, ORTGENAI, readJson } from './helpers/shared.js';

const A = path.join(MODELS, 'A_nocache_opset14.onnx');
const AKV = path.join(MODELS, 'A_kvcache_opset14.onnx');
const TEXT = path.join(MODELS, 'calibration.txt');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-calib-'));

const isOp = (n: Node, op: string) => n.domain === '' && n.op === op;
/** The exact element of rank floor(q (n - 1)) of sorted data: what LogSketch.quantile estimates. */
const exactQuantile = (sorted: Float64Array, q: number) => sorted[Math.floor(q * (sorted.length - 1))]!;

/** Model A (decomposed, specialized to 64 tokens) calibrated on the first windows of calibration.txt. */
let graph: Graph;
let windows: Record<string, Tensor>[];
beforeAll(() => {
  graph = loadModel(A, { bindings: { sequence_length: 64 } }).graph;
  windows = textCalibrationSets(graph, fs.readFileSync(TEXT), TEXT, { maxWindows: 3 }).map((s) => s.inputs);
  calibrate(graph, windows);
});

describe('calibration of model A on calibration.txt', () => {
  it('records the exact min, max, mean and std of every value (recomputed through the interpreter hook)', () => {
    const seen = new Map<string, number[]>();
    for (const inputs of windows) {
      runGraph(graph, inputs, {
        onNode: (node, outs) =>
          node.outputs.forEach((v, i) => {
            const xs = seen.get(v.name) ?? [];
            for (const x of outs[i]!.data) if (!Number.isNaN(x) && !isMaskFill(x, v.dtype)) xs.push(x);
            seen.set(v.name, xs);
          }),
      });
    }
    let checked = 0;
    for (const v of graph.nodes.flatMap((n) => n.outputs)) {
      if (!v.range) continue;
      const xs = seen.get(v.name)!;
      let min = Infinity;
      let max = -Infinity;
      let sum = 0;
      for (const x of xs) (min = Math.min(min, x)), (max = Math.max(max, x)), (sum += x);
      const mean = sum / xs.length;
      const std = Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / xs.length);
      expect(v.range.count, v.name).toBe(xs.length);
      expect(v.range.min, v.name).toBe(min);
      expect(v.range.max, v.name).toBe(max);
      expect(Math.abs(v.range.mean - mean), v.name).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(min), Math.abs(max)));
      expect(Math.abs(v.range.std - std), v.name).toBeLessThanOrEqual(1e-9 * Math.max(1, std));
      checked++;
    }
    expect(checked).toBeGreaterThan(100);
  });

  it('percentiles are within the stated relative accuracy of the exact ones', () => {
    const names = ['logits', ...graph.nodes.filter((n) => isOp(n, 'Softmax')).map((n) => n.inputs[0]!.name)];
    const all = new Map<string, number[]>(names.map((n) => [n, []]));
    for (const inputs of windows) {
      runGraph(graph, inputs, {
        onNode: (node, outs) =>
          node.outputs.forEach((v, i) => {
            if (all.has(v.name)) for (const x of outs[i]!.data) if (!isMaskFill(x, v.dtype)) all.get(v.name)!.push(x);
          }),
      });
    }
    for (const [name, xs] of all) {
      const r = graph.nodes.flatMap((n) => n.outputs).find((v) => v.name === name)!.range!;
      const sorted = Float64Array.from(xs).sort();
      const abs = Float64Array.from(xs, Math.abs).sort();
      const fractions = { p0_1: 0.001, p1: 0.01, p99: 0.99, p99_9: 0.999 } as const;
      for (const [k, q] of Object.entries(fractions) as [keyof typeof fractions, number][]) {
        const exact = exactQuantile(sorted, q);
        const exactAbs = exactQuantile(abs, q);
        expect(Math.abs(r.pct[k] - exact), `${name} ${k}`).toBeLessThanOrEqual(r.percentileAccuracy * Math.abs(exact) + 1e-12);
        expect(Math.abs(r.absPct[k] - exactAbs), `${name} |x| ${k}`).toBeLessThanOrEqual(r.percentileAccuracy * exactAbs + 1e-12);
      }
    }
  });

  it('every input of a nonlinear op has a consistent range', () => {
    // The nonlinear inputs of the exported RMSNorm, attention and SiLU, listed independently of roles.ts.
    const expected: Value[] = [];
    for (const n of graph.nodes) {
      if (isOp(n, 'Softmax') || isOp(n, 'Sqrt') || isOp(n, 'Sigmoid')) expected.push(n.inputs[0]!);
      if (isOp(n, 'Div') && !n.inputs[1]!.constant) expected.push(n.inputs[1]!);
    }
    expect(expected.length).toBe(2 + 5 + 2 + 5);
    const fromRoles = graph.nodes.flatMap((n) => nonlinearInputs(n).map((i) => n.inputs[i]!));
    expect(new Set(fromRoles)).toEqual(new Set(expected));
    const check = (r: ValueRange, what: string) => {
      expect(r.count, what).toBeGreaterThan(0);
      const chain = [r.min, r.pct.p0_1, r.pct.p1, r.pct.p99, r.pct.p99_9, r.max];
      for (let i = 1; i < chain.length; i++) expect(chain[i]!, what).toBeGreaterThanOrEqual(chain[i - 1]!);
      const absChain = [0, r.absPct.p0_1, r.absPct.p1, r.absPct.p99, r.absPct.p99_9, r.absMax];
      for (let i = 1; i < absChain.length; i++) expect(absChain[i]!, what).toBeGreaterThanOrEqual(absChain[i - 1]!);
      expect(r.absMax).toBe(Math.max(-r.min, r.max));
      expect(r.lo).toBeLessThanOrEqual(r.min);
      expect(r.hi).toBeGreaterThanOrEqual(r.max);
    };
    for (const v of expected) {
      expect(v.range, v.name).toBeDefined();
      check(v.range!, v.name);
      for (const [k, inner] of Object.entries(v.range!.inner ?? {})) check(inner, `${v.name}#${k}`);
    }
    // The softmax probe: exp arguments end at exactly 0, sums of exponentials lie in [1, 64].
    for (const n of graph.nodes.filter((n) => isOp(n, 'Softmax'))) {
      const inner = n.outputs[0]!.range!.inner!;
      expect(inner.exp_arg!.max).toBe(0);
      expect(inner.exp_arg!.min).toBeLessThan(0);
      expect(inner.exp_arg!.min).toBeGreaterThanOrEqual(-(n.inputs[0]!.range!.max - n.inputs[0]!.range!.min));
      expect(inner.exp_sum!.min).toBeGreaterThanOrEqual(1);
      expect(inner.exp_sum!.max).toBeLessThanOrEqual(64);
      // Row maxima: the largest equals the input's largest unmasked value; one per (window, head, query).
      expect(inner.row_max!.max).toBe(n.inputs[0]!.range!.max);
      expect(inner.row_max!.min).toBeGreaterThanOrEqual(n.inputs[0]!.range!.min);
      expect(inner.row_max!.count).toBe(windows.length * 4 * 64);
      // The causal mask (float32 lowest) is counted apart: 64*63/2 masked keys per head and window.
      expect(n.inputs[0]!.range!.masked).toBe(windows.length * 4 * ((64 * 63) / 2));
    }
  });

  it('plaintext and constant values get no range; secret activations do', () => {
    for (const v of graph.constants) expect(v.range, v.name).toBeUndefined();
    expect(graph.inputs[0]!.range).toBeUndefined(); // int64 token ids: not a float tensor
    const secret = secretValues(graph, []);
    for (const v of graph.nodes.flatMap((n) => n.outputs)) {
      if (v.dtype === 'float32' && secret.has(v)) expect(v.range, v.name).toBeDefined();
    }
  });

  it('ranges look like model A: logits in about [-25, 12], positive norm arguments, sigmoid in (0, 1)', () => {
    const logits = graph.outputs[0]!.range!;
    expect(logits.min).toBeGreaterThan(-40);
    expect(logits.min).toBeLessThan(-15);
    expect(logits.max).toBeGreaterThan(8);
    expect(logits.max).toBeLessThan(20);
    for (const n of graph.nodes) {
      if (isOp(n, 'Sqrt')) {
        expect(n.inputs[0]!.range!.min).toBeGreaterThan(1e-3);
        expect(n.inputs[0]!.range!.lo).toBeGreaterThan(0); // the margin keeps the sign
      }
      if (isOp(n, 'Sigmoid')) {
        expect(n.outputs[0]!.range!.min).toBeGreaterThan(0);
        expect(n.outputs[0]!.range!.max).toBeLessThan(1);
      }
    }
  });

  it('the margin widens each end by the stated factor of its magnitude', () => {
    const g = loadModel(A, { bindings: { sequence_length: 64 } }).graph;
    calibrate(g, windows.slice(0, 1), { margin: 0.25 });
    const z = loadModel(A, { bindings: { sequence_length: 64 } }).graph;
    calibrate(z, windows.slice(0, 1), { margin: 0 });
    const logits = g.outputs[0]!.range!;
    const exact = z.outputs[0]!.range!;
    expect(exact.lo).toBe(exact.min);
    expect(exact.hi).toBe(exact.max);
    expect(logits.min).toBe(exact.min);
    expect(logits.lo).toBeCloseTo(1.25 * exact.min, 12);
    expect(logits.hi).toBeCloseTo(1.25 * exact.max, 12);
    // min < 0 < max: the width grows by exactly the factor 1 + margin.
    expect((logits.hi - logits.lo) / (exact.max - exact.min)).toBeCloseTo(1.25, 12);
    const r = remargin(exact, 0.5);
    expect([r.lo, r.hi]).toEqual([exact.min - 0.5 * Math.abs(exact.min), exact.max + 0.5 * Math.abs(exact.max)]);
  });
});

describe('integer and scale bits', () => {
  it('integerBits is the smallest b with max |x| <= 2^b', () => {
    expect(integerBits({ lo: -25.3, hi: 12 })).toBe(5);
    expect(integerBits({ lo: -32, hi: 1 })).toBe(5);
    expect(integerBits({ lo: -0.5, hi: 0.9 })).toBe(0);
    const logits = graph.outputs[0]!.range!;
    const b = integerBits(logits);
    expect(2 ** b).toBeGreaterThanOrEqual(Math.max(-logits.lo, logits.hi));
    expect(2 ** (b - 1)).toBeLessThan(Math.max(-logits.lo, logits.hi));
  });

  it('scaleBits gives a quantum no larger than the target precision', () => {
    expect(scaleBits({ mean: 0, std: 1, absMax: 3 }, { absolute: 1e-3 })).toBe(10);
    expect(scaleBits({ mean: 0, std: 1, absMax: 3 })).toBe(10); // default: 2^-10 relative to RMS 1
    expect(scaleBits({ mean: 0, std: 1 / 1024, absMax: 3 })).toBe(20);
  });
});

describe('streaming statistics', () => {
  it('LogSketch quantiles are within its accuracy of the exact ones, for any data', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.double({ min: -1e6, max: 1e6, noNaN: true }), fc.double({ min: -1e-3, max: 1e-3, noNaN: true }), fc.constant(0)), { minLength: 1, maxLength: 400 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (xs, q) => {
          const s = new LogSketch(0.01);
          const acc = new RangeAccumulator(0.01);
          acc.addAll(xs);
          for (const x of xs) s.reserve(Math.abs(x), Math.abs(x), x < 0, x > 0), s.add(x);
          const sorted = Float64Array.from(xs).sort();
          const abs = Float64Array.from(xs, Math.abs).sort();
          const exact = exactQuantile(sorted, q);
          expect(Math.abs(s.quantile(q) - exact)).toBeLessThanOrEqual(0.01 * Math.abs(exact) * (1 + 1e-9) + 1e-12);
          expect(Math.abs(s.absQuantile(q) - exactQuantile(abs, q))).toBeLessThanOrEqual(0.01 * exactQuantile(abs, q) * (1 + 1e-9) + 1e-12);
          expect(Math.abs(acc.sketch.quantile(q) - exact)).toBeLessThanOrEqual(0.01 * Math.abs(exact) * (1 + 1e-9) + 1e-12);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('merging accumulators equals accumulating everything at once', () => {
    const xs = Array.from({ length: 5000 }, (_, i) => Math.sin(i * 1.7) * Math.exp((i % 13) - 6));
    const one = new RangeAccumulator();
    one.addAll(xs);
    const a = new RangeAccumulator();
    const b = new RangeAccumulator();
    a.addAll(xs.slice(0, 1234));
    b.addAll(xs.slice(1234, 3000));
    b.addAll(xs.slice(3000));
    a.merge(b);
    const [r1, r2] = [one.toRange(0.1), a.toRange(0.1)];
    expect(r2.count).toBe(r1.count);
    expect([r2.min, r2.max]).toEqual([r1.min, r1.max]);
    expect(r2.mean).toBeCloseTo(r1.mean, 12);
    expect(r2.std).toBeCloseTo(r1.std, 12);
    expect(r2.pct).toEqual(r1.pct);
    expect(r2.absPct).toEqual(r1.absPct);
  });

  it('mask fills and NaN are counted apart from the statistics', () => {
    const acc = new RangeAccumulator();
    acc.addAll([1, -3.4028234663852886e38, NaN, -Infinity, 2, -3], 'float32');
    acc.addAll([-65504, 5], 'float16');
    const r = acc.toRange(0);
    expect([r.count, r.masked, r.nan, r.min, r.max]).toEqual([4, 3, 1, -3, 5]);
  });
});

describe('roles of values', () => {
  it('division by a constant and small integer powers are polynomial; other ops are not', () => {
    const b = new GraphBuilder('g', { '': 17 });
    const x = b.input('x', 'float32', [4]);
    const y = b.input('y', 'float32', [4]);
    const two = b.constant('two', Tensor.from('float32', [], [2]));
    const half = b.constant('half', Tensor.from('float32', [], [0.5]));
    const f = (op: string, ins: Value[]) => b.op1(op, ins, 'float32', [4]);
    const nodes = {
      divConst: f('Div', [x, two]),
      divVar: f('Div', [x, y]),
      pow2: f('Pow', [x, two]),
      powHalf: f('Pow', [x, half]),
      exp: f('Exp', [x]),
      mul: f('Mul', [x, y]),
      shape: b.op1('Shape', [x], 'int64', [1]),
    };
    b.output(nodes.exp);
    const g = b.graph;
    const idx = (v: Value) => nonlinearInputs(v.producer!);
    expect(idx(nodes.divConst)).toEqual([]);
    expect(idx(nodes.divVar)).toEqual([1]);
    expect(idx(nodes.pow2)).toEqual([]);
    expect(idx(nodes.powHalf)).toEqual([0]);
    expect(idx(nodes.exp)).toEqual([0]);
    expect(idx(nodes.mul)).toEqual([]);
    const secret = secretValues(g, ['y']);
    expect(secret.has(nodes.divConst)).toBe(true);
    expect(secret.has(nodes.shape)).toBe(false);
  });
});

describe('canonical IR', () => {
  it('inner quantities of fhec ops match the decomposed graph on the same windows', () => {
    const canon = loadModel(A, { bindings: { sequence_length: 64 }, canonical: true }).graph;
    calibrate(canon, windows);
    const attn = canon.nodes.filter((n) => n.domain === 'fhec' && n.op === 'attention');
    const norms = canon.nodes.filter((n) => n.domain === 'fhec' && n.op === 'rms_norm');
    expect(attn.length).toBe(2);
    expect(norms.length).toBe(5);
    // The decomposed graph: unmasked scores are the Softmax input, norm arguments the Sqrt inputs.
    const softmax = graph.nodes.filter((n) => isOp(n, 'Softmax'));
    const sqrt = graph.nodes.filter((n) => isOp(n, 'Sqrt'));
    const close = (a: number, b: number) => expect(Math.abs(a - b)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(b)));
    attn.forEach((n, i) => {
      const inner = n.outputs[0]!.range!.inner!;
      const want = softmax[i]!.inputs[0]!.range!;
      close(inner.scores!.min, want.min);
      close(inner.scores!.max, want.max);
      expect(inner.scores!.count).toBe(want.count);
      close(inner.exp_sum!.max, softmax[i]!.outputs[0]!.range!.inner!.exp_sum!.max);
      for (const i of [0, 1]) expect(n.inputs[i]!.range, 'q and k are nonlinear inputs').toBeDefined();
    });
    norms.forEach((n, i) => {
      const arg = n.outputs[0]!.range!.inner!.norm_arg!;
      close(arg.min, sqrt[i]!.inputs[0]!.range!.min);
      close(arg.max, sqrt[i]!.inputs[0]!.range!.max);
    });
    close(canon.outputs[0]!.range!.min, graph.outputs[0]!.range!.min);
  });

  it('ONNX Attention and RMSNormalization (opset-23 export) get the same inner ranges', () => {
    const g23 = loadModel(path.join(MODELS, 'A_nocache_opset23.onnx'), { bindings: { sequence_length: 64 } }).graph;
    calibrate(g23, windows);
    const attn = g23.nodes.filter((n) => isOp(n, 'Attention'));
    const norms = g23.nodes.filter((n) => isOp(n, 'RMSNormalization'));
    expect([attn.length, norms.length]).toEqual([2, 5]);
    const softmax = graph.nodes.filter((n) => isOp(n, 'Softmax'));
    const sqrt = graph.nodes.filter((n) => isOp(n, 'Sqrt'));
    const close = (a: number, b: number) => expect(Math.abs(a - b)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(b)));
    attn.forEach((n, i) => {
      const inner = n.outputs[0]!.range!.inner!;
      close(inner.scores!.min, softmax[i]!.inputs[0]!.range!.min);
      close(inner.scores!.max, softmax[i]!.inputs[0]!.range!.max);
      expect(inner.scores!.count).toBe(softmax[i]!.inputs[0]!.range!.count);
    });
    norms.forEach((n, i) => close(n.outputs[0]!.range!.inner!.norm_arg!.max, sqrt[i]!.inputs[0]!.range!.max));
  });

  it('the fp16 ORT-GenAI model calibrates from tensor JSON (MultiHeadAttention, SkipSimplifiedLayerNormalization)', () => {
    const ref = readJson(ORTGENAI.ref);
    const file = path.join(tmp, 'genai.json');
    fs.writeFileSync(file, JSON.stringify({ inputs: ref.inputs }));
    const report = calibrateModel(ORTGENAI.model, file);
    const skip = report.values.filter((v) => v.producer === 'com.microsoft::SkipSimplifiedLayerNormalization');
    // The inner range sits on each node's first output (the normalized tensor).
    const nodes = new Set(skip.map((v) => v.node));
    const withInner = skip.filter((v) => v.range.inner);
    expect(nodes.size).toBeGreaterThan(0);
    expect(new Set(withInner.map((v) => v.node))).toEqual(nodes);
    for (const v of withInner) expect(v.range.inner!.norm_arg!.min).toBeGreaterThan(0);
    const mha = report.values.filter((v) => v.nonlinearUses.includes('com.microsoft::MultiHeadAttention'));
    expect(mha.length).toBeGreaterThan(0);
    expect(report.values.find((v) => v.name === 'logits')!.range.count).toBe(4 * 32000);
  });
});

describe('textual IR with ranges', () => {
  it('round-trips: print(parse(print(g))) === print(g), with equal ranges (inner ones included)', () => {
    const text = printGraph(graph);
    expect(text).toMatch(/ range<min = /);
    expect(text).toMatch(/exp_arg = range<min = /);
    const back = parseGraph(text, { resolveWeight: weightsFrom(graph) });
    expect(printGraph(back)).toBe(text);
    const ranges = (g: Graph) => g.nodes.flatMap((n) => n.outputs).map((v) => [v.name, v.range ?? null]);
    expect(ranges(back)).toEqual(ranges(graph));
    expect(printGraph(graph, { ranges: false })).not.toContain('range<');
  });

  it('reads a hand-written range with defaults, and rejects malformed ones at line:column', () => {
    const src = (r: string) => `graph @g {\n  input %x : f32[2] ${r}\n  %y : f32[2] range<min = 0.0, max = 1.0> = Exp(%x)\n  output %y\n}\n`;
    const g = parseGraph(src('range<min = -1.0, max = 2.0, margin = 0.5, scores = range<min = 3.0, max = 4.0>>'));
    const r = g.inputs[0]!.range!;
    expect([r.min, r.max, r.lo, r.hi, r.absMax, r.count]).toEqual([-1, 2, -1.5, 3, 2, 0]);
    expect(r.inner!.scores!.max).toBe(4);
    expect(g.outputs[0]!.range!.hi).toBe(1);
    const bad = (r: string, msg: RegExp) => {
      const e = (() => {
        try {
          parseGraph(src(r));
        } catch (err) {
          return err;
        }
      })();
      expect(e).toBeInstanceOf(IrSyntaxError);
      expect((e as IrSyntaxError).message).toMatch(msg);
      expect((e as IrSyntaxError).line).toBe(2);
    };
    // `range` stays usable as an op name, attribute key and metadata key.
    const kw = parseGraph('graph @g {\n  input %x : f32[2]\n  %y : f32[2] = my::range(%x) {range = 1}\n  output %y\n  meta range = "r"\n}\n');
    expect([kw.nodes[0]!.op, Object.keys(kw.nodes[0]!.attrs), kw.metadata.range]).toEqual(['range', ['range'], 'r']);
    bad('range<min = 1.0>', /needs at least 'min' and 'max'/);
    bad('range<min = 1.0, max = 0.0>', /min 1 is not <= max 0/);
    bad('range<min = 0.0, max = 1.0, foo = 2.0>', /unknown range field 'foo'/);
    bad('range<min = 0.0, min = 1.0, max = 1.0>', /given twice/);
    bad('range<min = 0.0, max = 1.0, count = 1.5>', /must be a count/);
    bad('range<min = 0.0 max = 1.0>', /expected/);
  });
});

describe('calibration data', () => {
  it('text windows: full windows only, stride and limit honoured', () => {
    expect(windowStarts(200, { window: 64 })).toEqual([0, 64, 128].map((start) => ({ start, length: 64 })));
    expect(windowStarts(200, { window: 64, stride: 32, maxWindows: 4 }).map((w) => w.start)).toEqual([0, 32, 64, 96]);
    expect(windowStarts(10, { window: 64 })).toEqual([{ start: 0, length: 10 }]);
    expect(() => windowStarts(10, { window: 0 })).toThrow(FhecError);
  });

  it('fills the inputs of the KV-cache model: ids are the bytes, ones mask, positions, empty past', () => {
    const g = loadModel(AKV).graph;
    const sets = loadCalibrationSets(g, TEXT, { window: 16, maxWindows: 2 });
    expect(sets.length).toBe(2);
    const bytes = fs.readFileSync(TEXT);
    const s = sets[1]!;
    expect(Array.from(s.inputs.input_ids!.data)).toEqual(Array.from(bytes.subarray(16, 32)));
    expect(Array.from(s.inputs.attention_mask!.data)).toEqual(new Array(16).fill(1));
    expect(Array.from(s.inputs.position_ids!.data)).toEqual(Array.from({ length: 16 }, (_, i) => i));
    expect(s.inputs['past_key_values.0.key']!.dims).toEqual([1, 2, 0, 16]);
    expect(s.bindings).toMatchObject({ sequence_length: 16, past_sequence_length: 0, total_sequence_length: 16 });
    const report = calibrateModel(AKV, TEXT, { window: 16, maxWindows: 2 });
    expect(report.sets).toBe(2);
    expect(report.values.find((v) => v.name === 'logits')!.range.count).toBe(2 * 16 * 256);
  });

  it('a model whose vocabulary is not bytes refuses a .txt file and asks for a tokenizer or tensor JSON', () => {
    expect(() => calibrateModel(ORTGENAI.model, TEXT)).toThrow(/model's vocabulary is 32000: pass the model's Hugging Face tokenizer folder with --tokenizer DIR, or a tensor-JSON/);
  });

  it('tensor-JSON sets of different lengths calibrate together; logits match ONNX Runtime', () => {
    const ref = readJson(path.join(MODELS, 'A_nocache_opset14.ref.json'));
    const steps = ref.cases.map((c: any) => c.steps[0]);
    const file = path.join(tmp, 'sets.json');
    fs.writeFileSync(file, JSON.stringify({ sets: steps.map((s: any) => ({ inputs: s.inputs })) }));
    const report = calibrateModel(A, file);
    expect(report.sets).toBe(2);
    const logits = report.values.find((v) => v.name === 'logits')!.range;
    const ort = steps.flatMap((s: any) => s.outputs.logits.data as number[]);
    expect(logits.count).toBe(ort.length);
    expect(Math.abs(logits.min - Math.min(...ort))).toBeLessThan(1e-4);
    expect(Math.abs(logits.max - Math.max(...ort))).toBeLessThan(1e-4);
    // One set as a plain {"inputs": ...} document.
    const one = path.join(tmp, 'one.json');
    fs.writeFileSync(one, JSON.stringify({ inputs: steps[0].inputs }));
    expect(calibrateModel(A, one).sets).toBe(1);
    // A set with a wrong input name says which set and which input.
    const bad = path.join(tmp, 'bad.json');
    fs.writeFileSync(bad, JSON.stringify({ sets: [{ inputs: steps[0].inputs }, { inputs: { ids: steps[0].inputs.input_ids } }] }));
    expect(() => calibrateModel(A, bad)).toThrow(/unknown input\(s\) 'ids'/);
    try {
      calibrateModel(A, bad);
    } catch (e) {
      expect((e as FhecError).format()).toContain('sets[1]');
    }
  });
});

describe('fhec calibrate', () => {
  const fhec = fhecInProcess;

  it('prints the table for the whole calibration file in a few seconds', async () => {
    const t0 = performance.now();
    const r = await fhec('calibrate', A, '--calibration', TEXT, '--window', '64');
    const seconds = (performance.now() - t0) / 1000;
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('62 input set(s)');
    const lines = r.stdout.split('\n');
    const head = lines.find((l) => l.startsWith('value'))!;
    for (const col of ['producer', 'min', 'max', 'p99.9|x|', 'interval (margin)', 'int bits']) expect(head).toContain(col);
    const logits = lines.find((l) => l.startsWith('logits '))!;
    expect(logits).toMatch(/^logits\s+Cast\s+-\d+\.\d+\s+\d+\.\d+\s+[\d.]+\s+\[-\d+\.\d+, \d+\.\d+\]\s+[56]\s/);
    expect(lines.some((l) => /Softmax_output_0#exp_arg\s+Softmax/.test(l))).toBe(true);
    expect(seconds).toBeLessThan(20); // about 4 s on 2 shared cores
  });

  it('--json parses and carries every field of each range', async () => {
    const ir = path.join(tmp, 'a.ir');
    const r = await fhec('calibrate', A, '--calibration', TEXT, '--max-windows', '2', '--margin', '0.2', '--json', '--emit-ir', ir);
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.sets).toBe(2);
    expect(j.margin).toBe(0.2);
    const row = j.rows.find((x: any) => x.name === 'logits');
    expect(row.range.lo).toBeCloseTo(row.range.min * 1.2, 10);
    expect(row.integerBits).toBe(integerBits(row.range));
    expect(j.rows.some((x: any) => x.nonlinearUses.includes('Softmax'))).toBe(true);
    expect(parseGraph(fs.readFileSync(ir, 'utf8')).outputs[0]!.range!.max).toBe(row.range.max);
  });

  it('user errors are one line with exit code 2', async () => {
    const r = await fhec('calibrate', ORTGENAI.model, '--calibration', TEXT);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('pass the model\'s Hugging Face tokenizer folder with --tokenizer DIR');
    const r2 = await fhec('calibrate', A, '--calibration', path.join(tmp, 'missing.txt'));
    expect(r2.status).toBe(2);
    expect(r2.stderr).toContain('file not found');
    const r3 = await fhec('calibrate', A, '--calibration', TEXT, '--margin', '-1');
    expect(r3.status).toBe(2);
    expect(r3.stderr).toContain('--margin');
  });
});

describe('Calibrator', () => {
  it('keeps statistics by value name across graphs specialized to different lengths', () => {
    const c = new Calibrator({ margin: 0 });
    const g16 = loadModel(A, { bindings: { sequence_length: 16 } }).graph;
    const ids = (n: number) => ({ input_ids: Tensor.from('int64', [1, n], Array.from({ length: n }, (_, i) => 97 + (i % 20))) });
    const o16 = c.observe(g16, ids(16)).logits!;
    const o64 = c.observe(graph, ids(64)).logits!;
    const logits = c.results().find((v) => v.name === 'logits')!.range;
    expect(logits.count).toBe(o16.size + o64.size);
    expect(logits.max).toBe(Math.max(...o16.data, ...o64.data));
  });

  it('runs as a pass in a pass manager, reporting what it annotated', () => {
    const g = loadModel(A, { bindings: { sequence_length: 64 } }).graph;
    const runs = new PassManager(new Map([['calibrate', calibratePass]])).add('calibrate', { sets: windows.slice(0, 1), margin: '0.3' }).run(g);
    const r = runs[0]!.result;
    expect(r.changed).toBe(true);
    expect(r.stats.sets).toBe(1);
    expect(r.stats.values).toBe(g.nodes.flatMap((n) => n.outputs).filter((v) => v.range).length);
    expect(g.outputs[0]!.range!.margin).toBe(0.3);
    expect(() => new PassManager(new Map([['calibrate', calibratePass]])).add('calibrate').run(g)).toThrow(/at least one input set/);
  });
});
