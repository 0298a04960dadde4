// The canonical IR of one model per export style, pinned as IR text (regenerate with UPDATE_GOLDEN=1),
// and the text is the graph: parsed back (weights taken from the printed graph) it evaluates to the
// same values. Also the CLI verbs: `fhec ir --canonical`, `fhec inspect --canonical --json`,
// `fhec eval --canonical`.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../compiler/driver.js';
import type { Graph } from '../ir/graph/types.js';
import { Tensor } from '../ir/tensor.js';
import { tensorsFromJson } from '../ir/tensor-json.js';
import { parseGraph } from '../ir/text/parse.js';
import { printGraph } from '../ir/text/print.js';
import { weightsFrom } from '../ir/text/weights.js';
import { generatorBindings, type GeneratorShape } from '../passes/canonical/specialize.js';
import { runGraph } from '../runtime/reference/interpreter.js';
import { fhec } from './helpers/cli.js';
import { maxAbsDiff } from './helpers/compare.js';
import { MODELS, ORTGENAI, ROOT, readJson } from './helpers/shared.js';

function golden(name: string, text: string) {
  const file = path.join(ROOT, 'test', 'golden', 'canonical', name);
  if (process.env.UPDATE_GOLDEN) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
  }
  expect(text).toBe(fs.readFileSync(file, 'utf8'));
}

function canonical(model: string, shape: GeneratorShape): Graph {
  const g = loadModel(model, { canonical: true, bindings: (gr) => generatorBindings(gr, shape) }).graph;
  delete g.metadata['modelPath']; // machine-dependent
  return g;
}

const CASES: { golden: string; model: string; shape: GeneratorShape }[] = [
  { golden: 'A_kvcache_opset14.decode3.ir', model: path.join(MODELS, 'A_kvcache_opset14.onnx'), shape: { kind: 'decode', past: 3 } },
  { golden: 'A_nocache_opset23.prefill4.ir', model: path.join(MODELS, 'A_nocache_opset23.onnx'), shape: { kind: 'prefill', sequence: 4 } },
  { golden: 'ortgenai-tiny-llama-fp16.prefill4.ir', model: ORTGENAI.model, shape: { kind: 'prefill', sequence: 4 } },
];

/** Inputs for a generator shape: ids, an all-ones mask, positions after the past, a random past. */
function inputsFor(g: Graph): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  let s = 7;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5);
  const past = g.inputs.find((v) => v.name.includes('past'))?.shape?.[2] as number | undefined;
  for (const v of g.inputs) {
    const dims = v.shape as number[];
    const n = dims.reduce((a, d) => a * d, 1);
    const data = v.name === 'input_ids' ? Array.from({ length: n }, (_, i) => (i * 37 + 11) % 256)
      : v.name === 'attention_mask' ? new Array(n).fill(1)
      : v.name === 'position_ids' ? Array.from({ length: n }, (_, i) => (past ?? 0) + i)
      : Array.from({ length: n }, rnd);
    out[v.name] = Tensor.from(v.dtype, dims, data);
  }
  return out;
}

describe('canonical IR golden files', () => {
  for (const c of CASES) {
    it(`${c.golden}: pinned, and the printed text parses back to a graph with the same values`, () => {
      const g = canonical(c.model, c.shape);
      const text = printGraph(g);
      golden(c.golden, text);
      const parsed = parseGraph(text, { resolveWeight: weightsFrom(g) });
      expect(printGraph(parsed)).toBe(text);
      const inputs = inputsFor(g);
      const a = runGraph(g, inputs);
      const b = runGraph(parsed, inputs);
      for (const k of Object.keys(a)) expect(Array.from(b[k]!.data), k).toEqual(Array.from(a[k]!.data));
    });
  }
});

describe('fhec CLI with --canonical', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-canonical-'));
  const AKV = path.join(MODELS, 'A_kvcache_opset14.onnx');

  it('ir --canonical --decode P prints the canonical IR of the decode shape', () => {
    const r = fhec('ir', AKV, '--canonical', '--decode', '3');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('fhec::attention(');
    expect(r.stdout).toMatch(/input %input_ids : i64\[1, 1\]/);
    expect(r.stdout).toMatch(/input %past_key_values\.0\.key : f32\[1, 2, 3, 16\]/);
    expect(r.stdout).not.toMatch(/= (Softmax|ReduceMean|Sigmoid|MatMul)\(/);
  });

  it('ir --decode on a model without a KV cache is a one-line user error', () => {
    const r = fhec('ir', path.join(MODELS, 'A_nocache_opset14.onnx'), '--canonical', '--decode', '3');
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/decode needs a KV cache/);
  });

  it('inspect --canonical --json adds the canonicalOps histogram', () => {
    const r = fhec('inspect', ORTGENAI.model, '--canonical', '--json', '--prefill', '4');
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.canonicalOps).toEqual({ 'fhec::embedding': 1, 'fhec::rms_norm': 5, 'fhec::linear': 9, 'fhec::split': 2, 'fhec::rope': 4, 'fhec::attention': 2, 'fhec::add': 4, 'fhec::swiglu': 2 });
    expect(j.ops['com.microsoft::MultiHeadAttention']).toBe(2);
  });

  it('eval --canonical reproduces the onnxruntime reference of a decode step', () => {
    const ref = readJson(path.join(MODELS, 'A_kvcache_opset14.ref.json'));
    const step = ref.cases.find((c: { name: string }) => c.name.startsWith('decode')).steps[2];
    const inFile = path.join(tmp, 'in.json');
    const outFile = path.join(tmp, 'out.json');
    fs.writeFileSync(inFile, JSON.stringify({ inputs: step.inputs }));
    const r = fhec('eval', AKV, '--canonical', '--inputs', inFile, '--out', outFile);
    expect(r.status, r.stderr).toBe(0);
    const got = tensorsFromJson(readJson(outFile), 'outputs');
    const want = tensorsFromJson(step, 'outputs');
    for (const [name, t] of Object.entries(want)) expect(maxAbsDiff(got[name]!.data, t.data), name).toBeLessThanOrEqual(1e-4);
  });
});
