// Near misses are left alone: an RMSNorm with epsilon after the square root, attention with a
// non-causal mask or with a bias on the scores, a padding mask of the wrong polarity, and a SiLU with
// an extra scale inside the sigmoid are not raised, the pass says why in its notes, and the graph
// evaluates exactly as before. Each has a positive control (the exact pattern, raised, same values).
import { describe, expect, it } from 'vitest';
import { attr, GraphBuilder } from '../ir/graph/builder.js';
import type { Graph, Value } from '../ir/graph/types.js';
import { inferGraph } from '../ir/ops/infer-graph.js';
import { Tensor } from '../ir/tensor.js';
import { verifyCanonicalGraph } from '../ir/canonical/verify.js';
import { FLOAT32_LOWEST } from '../ir/canonical/ops.js';
import { runGraph } from '../runtime/reference/interpreter.js';
import { PassManager, type PassRun } from '../passes/pass-manager.js';
import { canonicalPasses } from '../passes/canonical/registry.js';
import { analyzeMask } from '../passes/canonical/mask.js';
import { maxAbsDiff } from './helpers/compare.js';

function seeded(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

function randomTensor(dims: number[], seed: number): Tensor {
  const r = seeded(seed);
  return Tensor.from('float32', dims, Array.from({ length: dims.reduce((a, d) => a * d, 1) }, () => 2 * r()));
}

const f32 = (v: number) => Tensor.scalar('float32', v);

/** Runs one pass, checking the IR after it; returns the run and the graph's ops. */
function runPass(g: Graph, pass: string): { run: PassRun; ops: string[] } {
  const [run] = new PassManager(canonicalPasses, { verify: verifyCanonicalGraph, verifyEach: true }).add(pass).run(g);
  return { run: run!, ops: g.nodes.map((n) => (n.domain ? `${n.domain}::${n.op}` : n.op)) };
}

/** Evaluates, runs the pass, evaluates again. */
function raiseAndCompare(g: Graph, pass: string, inputs: Record<string, Tensor>) {
  const before = runGraph(g, inputs);
  const r = runPass(g, pass);
  const after = runGraph(g, inputs);
  const name = g.outputs[0]!.name;
  return { ...r, before: before[name]!, after: after[name]! };
}

// ---- RMSNorm ------------------------------------------------------------------------------------

function rmsGraph(epsAfterSqrt: boolean): Graph {
  const b = new GraphBuilder('rms', { '': 17 });
  const x = b.input('x', 'float32', [1, 3, 8]);
  const w = b.constant('w', randomTensor([8], 7));
  const pow = b.op1('Pow', [x, b.constant('two', f32(2))], 'float32');
  const mean = b.op1('ReduceMean', [pow], 'float32', undefined, { axes: attr.ints([-1]), keepdims: attr.int(1) });
  const eps = b.constant('eps', f32(1e-5));
  let denom: Value;
  if (epsAfterSqrt) denom = b.op1('Add', [b.op1('Sqrt', [mean], 'float32'), eps], 'float32');
  else denom = b.op1('Sqrt', [b.op1('Add', [mean, eps], 'float32')], 'float32');
  const inv = b.op1('Div', [b.constant('one', f32(1)), denom], 'float32');
  const n = b.op1('Mul', [x, inv], 'float32');
  b.output(b.op1('Mul', [w, n], 'float32', undefined, {}, { outName: 'y' }));
  inferGraph(b.graph);
  return b.graph;
}

describe('RMSNorm near miss: epsilon after the square root', () => {
  const inputs = { x: randomTensor([1, 3, 8], 1) };

  it('control: x * 1/sqrt(mean(x^2) + eps) * w is raised, same values', () => {
    const r = raiseAndCompare(rmsGraph(false), 'raise-rms-norm', inputs);
    expect(r.ops).toEqual(['fhec::rms_norm']);
    expect(r.run.result.stats['decomposed']).toBe(1);
    expect(maxAbsDiff(r.after.data, r.before.data)).toBeLessThanOrEqual(1e-6);
  });

  it('x * 1/(sqrt(mean(x^2)) + eps) * w is left alone, with the reason, and evaluates unchanged', () => {
    const r = raiseAndCompare(rmsGraph(true), 'raise-rms-norm', inputs);
    expect(r.ops).not.toContain('fhec::rms_norm');
    expect(r.run.result.changed).toBe(false);
    expect(r.run.result.notes.join('\n')).toMatch(/epsilon is not added to the mean of squares before the square root/);
    expect(Array.from(r.after.data)).toEqual(Array.from(r.before.data));
  });
});

// ---- attention ------------------------------------------------------------------------------------

const [B, S, N, H] = [1, 4, 2, 4];

/** Decomposed attention over q/k/v inputs [1, 4, 8] with a mask (a constant or built from `am`). */
function attentionGraph(mask: Tensor | 'padding' | 'padding-inverted' | null): Graph {
  const b = new GraphBuilder('attn', { '': 17 });
  const split = (v: Value) => {
    const r = b.op1('Reshape', [v, b.constant(`${v.name}_shape`, Tensor.from('int64', [4], [B, S, N, H]))], 'float32');
    return b.op1('Transpose', [r], 'float32', undefined, { perm: attr.ints([0, 2, 1, 3]) });
  };
  const [q, k, v] = ['q', 'k', 'v'].map((n) => b.input(n, 'float32', [B, S, N * H]));
  const kt = b.op1('Transpose', [split(k!)], 'float32', undefined, { perm: attr.ints([0, 1, 3, 2]) });
  const scores = b.op1('Div', [b.op1('MatMul', [split(q!), kt], 'float32'), b.constant('sqrt_h', f32(2))], 'float32');
  let logits = scores;
  if (mask instanceof Tensor) logits = b.op1('Add', [scores, b.constant('mask', mask)], 'float32');
  else if (mask) {
    // HF-style: causal constant, plus (1 - am) * lowest for padding (or am * lowest: wrong polarity).
    const am = b.input('attention_mask', 'int64', [B, S]);
    const u = b.op1('Unsqueeze', [b.op1('Unsqueeze', [am, b.constant('ax1', Tensor.from('int64', [1], [1]))], 'int64'), b.constant('ax2', Tensor.from('int64', [1], [2]))], 'int64');
    const amf = b.op1('Cast', [u], 'float32', undefined, { to: attr.int(1) });
    const keep = mask === 'padding' ? b.op1('Sub', [b.constant('one', f32(1)), amf], 'float32') : amf;
    const pad = b.op1('Mul', [keep, b.constant('lowest', f32(FLOAT32_LOWEST))], 'float32');
    const causal = b.op1('Add', [pad, b.constant('causal', causalMask(0))], 'float32');
    logits = b.op1('Add', [scores, causal], 'float32');
  }
  const p = b.op1('Softmax', [logits], 'float32', undefined, { axis: attr.int(-1) });
  const o = b.op1('MatMul', [p, split(v!)], 'float32');
  const t = b.op1('Transpose', [o], 'float32', undefined, { perm: attr.ints([0, 2, 1, 3]) });
  b.output(b.op1('Reshape', [t, b.constant('merge', Tensor.from('int64', [3], [B, S, N * H]))], 'float32', undefined, {}, { outName: 'y' }));
  inferGraph(b.graph);
  return b.graph;
}

function maskOf(f: (i: number, j: number) => number, T = S): Tensor {
  const data: number[] = [];
  for (let i = 0; i < S; i++) for (let j = 0; j < T; j++) data.push(f(i, j));
  return Tensor.from('float32', [1, 1, S, T], data);
}
const causalMask = (P: number) => maskOf((i, j) => (j > P + i ? FLOAT32_LOWEST : 0), S + P);

describe('attention near misses', () => {
  const inputs = { q: randomTensor([B, S, N * H], 2), k: randomTensor([B, S, N * H], 3), v: randomTensor([B, S, N * H], 4) };

  it('control: a causal mask is raised to attention{causal=1}, same values', () => {
    const r = raiseAndCompare(attentionGraph(causalMask(0)), 'raise-attention', inputs);
    expect(r.ops.filter((o) => o.startsWith('fhec::'))).toEqual(['fhec::attention']);
    const att = r.run.result.stats;
    expect(att['decomposed']).toBe(1);
    expect(att['causal']).toBe(1);
    expect(maxAbsDiff(r.after.data, r.before.data)).toBeLessThanOrEqual(1e-6);
  });

  it('control: no mask is raised to attention{causal=0}', () => {
    const r = raiseAndCompare(attentionGraph(null), 'raise-attention', inputs);
    expect(r.run.result.stats).toMatchObject({ decomposed: 1, causal: 0 });
    expect(maxAbsDiff(r.after.data, r.before.data)).toBeLessThanOrEqual(1e-6);
  });

  it('a sliding-window (non-causal) mask is left alone', () => {
    const window = maskOf((i, j) => (j > i || j < i - 1 ? FLOAT32_LOWEST : 0));
    const r = raiseAndCompare(attentionGraph(window), 'raise-attention', inputs);
    expect(r.ops.some((o) => o.startsWith('fhec::'))).toBe(false);
    expect(r.run.result.notes.join('\n')).toMatch(/neither causal with past offset 0 nor empty/);
    expect(Array.from(r.after.data)).toEqual(Array.from(r.before.data));
  });

  it('a bias added to the scores (ALiBi-like) is left alone', () => {
    const alibi = maskOf((i, j) => (j > i ? FLOAT32_LOWEST : -0.5 * (i - j)));
    const r = raiseAndCompare(attentionGraph(alibi), 'raise-attention', inputs);
    expect(r.ops.some((o) => o.startsWith('fhec::'))).toBe(false);
    expect(r.run.result.notes.join('\n')).toMatch(/a bias on the scores, not a mask/);
    expect(Array.from(r.after.data)).toEqual(Array.from(r.before.data));
  });

  it('control: causal plus a 0/1 padding mask from an attention_mask input is raised with that input', () => {
    const withAm = { ...inputs, attention_mask: Tensor.from('int64', [B, S], [1, 0, 1, 1]) };
    const r = raiseAndCompare(attentionGraph('padding'), 'raise-attention', withAm);
    expect(r.ops.filter((o) => o.startsWith('fhec::'))).toEqual(['fhec::attention']);
    expect(r.run.result.stats).toMatchObject({ decomposed: 1, causal: 1, withPadding: 1 });
    expect(maxAbsDiff(r.after.data, r.before.data)).toBeLessThanOrEqual(1e-6);
  });

  it('a padding mask of the wrong polarity (1 masks) is left alone', () => {
    const withAm = { ...inputs, attention_mask: Tensor.from('int64', [B, S], [1, 0, 1, 1]) };
    const r = raiseAndCompare(attentionGraph('padding-inverted'), 'raise-attention', withAm);
    expect(r.ops.some((o) => o.startsWith('fhec::'))).toBe(false);
    expect(r.run.result.notes.join('\n')).toMatch(/with an all-ones attention_mask/);
    expect(Array.from(r.after.data)).toEqual(Array.from(r.before.data));
  });
});

describe('mask proofs', () => {
  const g = new GraphBuilder('m').graph;
  const m = (t: Tensor) => ({ name: 'mask', dtype: t.dtype, shape: [...t.dims], constant: { dtype: t.dtype, dims: t.dims, location: 'inline', byteLength: 0, load: () => t } }) as Value;

  it('a causal mask for 4 new tokens after 3 cached ones is causal with offset 3, not 0', () => {
    const geo = { B: 1, heads: 2, S: 4, P: 3, T: 7 };
    expect(analyzeMask(g, m(causalMask(3)), geo)).toMatchObject({ causal: true, padding: null, maskValue: FLOAT32_LOWEST });
    expect(analyzeMask(g, m(causalMask(0)), { ...geo, P: 0, T: 4 })).toMatchObject({ causal: true });
    const wrongOffset = maskOf((i, j) => (j > i ? FLOAT32_LOWEST : 0), 7);
    expect(analyzeMask(g, m(wrongOffset), geo)).toMatchObject({ reason: expect.stringMatching(/past offset 3/) });
  });

  it('fp16 exports fill with -65504; a soft fill of -100 is not a mask', () => {
    const geo = { B: 1, heads: 1, S: 4, P: 0, T: 4 };
    expect(analyzeMask(g, m(maskOf((i, j) => (j > i ? -65504 : 0))), geo)).toMatchObject({ causal: true, maskValue: -65504 });
    expect(analyzeMask(g, m(maskOf((i, j) => (j > i ? -100 : 0))), geo)).toMatchObject({ reason: expect.stringMatching(/bias on the scores/) });
  });
});

// ---- SiLU ---------------------------------------------------------------------------------------

function siluGraph(scale: number | null, withUp: boolean): Graph {
  const b = new GraphBuilder('silu', { '': 17 });
  const x = b.input('x', 'float32', [2, 6]);
  const arg = scale === null ? x : b.op1('Mul', [x, b.constant('beta', f32(scale))], 'float32');
  let y = b.op1('Mul', [b.op1('Sigmoid', [arg], 'float32'), x], 'float32');
  if (withUp) y = b.op1('Mul', [y, b.input('u', 'float32', [2, 6])], 'float32');
  b.output(b.op1('Identity', [y], 'float32', undefined, {}, { outName: 'y' }));
  inferGraph(b.graph);
  return b.graph;
}

describe('SiLU near miss: an extra scale inside the sigmoid', () => {
  const inputs = { x: randomTensor([2, 6], 5), u: randomTensor([2, 6], 6) };

  it('control: sigmoid(x) * x is raised to silu; silu(g) * u to swiglu', () => {
    const r = raiseAndCompare(siluGraph(null, false), 'raise-silu', { x: inputs.x });
    expect(r.ops).toEqual(['fhec::silu', 'Identity']);
    expect(maxAbsDiff(r.after.data, r.before.data)).toBeLessThanOrEqual(1e-6);
    const s = raiseAndCompare(siluGraph(null, true), 'raise-silu', inputs);
    expect(s.ops).toEqual(['fhec::swiglu', 'Identity']);
    expect(maxAbsDiff(s.after.data, s.before.data)).toBeLessThanOrEqual(1e-6);
  });

  it('x * sigmoid(1.702 x) is left alone, with the reason, and evaluates unchanged', () => {
    const r = raiseAndCompare(siluGraph(1.702, true), 'raise-silu', inputs);
    expect(r.ops.some((o) => o.startsWith('fhec::'))).toBe(false);
    expect(r.run.result.notes.join('\n')).toMatch(/sigmoid\(1\.702 \* x\) is not SiLU/);
    expect(Array.from(r.after.data)).toEqual(Array.from(r.before.data));
  });
});
