// Acceptance of the canonical transformer IR on every shared model (decomposed PyTorch opset 14/17
// with and without KV cache, opset-23 ops, onnxruntime-genai com.microsoft ops):
//  - each layer is exactly rms_norm -> (q, k, v linears) -> rope on q and k -> one attention with the
//    model's head counts -> o linear -> residual add -> rms_norm -> swiglu MLP with three linears (or
//    the merged gate|up form) -> residual add, and no op outside the `fhec` domain is left;
//  - the canonical graph, evaluated by the reference interpreter through `fhec eval --canonical`'s
//    path (evalModel), matches onnxruntime's outputs for prefill and for every decode step.
// The per-layer histograms are printed for the README.
import { describe, expect, it } from 'vitest';
import { evalModel } from '../compiler/commands/eval.js';
import { loadModel } from '../compiler/driver.js';
import { importOnnx } from '../compiler/onnx/import.js';
import type { Graph, Node, Value } from '../ir/graph/types.js';
import { tensorsFromJson } from '../ir/tensor-json.js';
import { IMPORT_PIPELINE } from '../passes/graph/registry.js';
import { RAISE_PIPELINE } from '../passes/canonical/registry.js';
import { generatorBindings, type GeneratorShape } from '../passes/canonical/specialize.js';
import { maxAbsDiff } from './helpers/compare.js';
import { ORTGENAI, REF_MODELS, readJson } from './helpers/shared.js';

interface ModelCase {
  name: string;
  model: string;
  heads: number;
  kvHeads: number;
  layers: number;
  cache: boolean;
  tol: number;
}

const A = { heads: 4, kvHeads: 2, layers: 2, tol: 1e-4 };
const MODELS: ModelCase[] = [
  ...REF_MODELS.map((m) => ({ name: m.name, model: m.model, ...A, cache: m.name.includes('kvcache') })),
  { name: ORTGENAI.name, model: ORTGENAI.model, heads: 1, kvHeads: 1, layers: 2, cache: true, tol: 2e-2 },
];

const isFhec = (n: Node | undefined, op: string): n is Node => n?.domain === 'fhec' && n.op === op;

function readersOf(g: Graph, v: Value): Node[] {
  return g.nodes.filter((n) => n.inputs.includes(v));
}

/** The linear behind a value: its output, or one part of a split of a merged linear. */
function linearBehind(v: Value, seen: Set<Node>): Node {
  let p = v.producer;
  if (isFhec(p, 'split')) {
    seen.add(p);
    p = p.inputs[0]!.producer;
  }
  expect(isFhec(p, 'linear'), `'${v.name}' is not produced by a linear`).toBe(true);
  seen.add(p!);
  return p!;
}

function histogram(nodes: Iterable<Node>): Record<string, number> {
  const h: Record<string, number> = {};
  for (const n of nodes) h[n.op] = (h[n.op] ?? 0) + 1;
  return Object.fromEntries(Object.entries(h).sort());
}

/** Checks the layer structure around each attention; returns each layer's op histogram. */
function checkLayers(g: Graph, m: ModelCase): Record<string, number>[] {
  const foreign = g.nodes.filter((n) => n.domain !== 'fhec').map((n) => `${n.domain || 'ai.onnx'}::${n.op} (${n.name})`);
  expect(foreign, 'ops left outside the canonical domain').toEqual([]);
  const attns = g.nodes.filter((n) => isFhec(n, 'attention'));
  expect(attns.length).toBe(m.layers);
  expect(g.nodes.filter((n) => isFhec(n, 'rms_norm')).length).toBe(2 * m.layers + 1);
  return attns.map((a) => {
    const layer = new Set<Node>([a]);
    expect(a.attrs['num_heads']?.value).toBe(m.heads);
    expect(a.attrs['kv_num_heads']?.value).toBe(m.kvHeads);
    expect(a.attrs['causal']?.value).toBe(1);
    expect(!!a.inputs[3], 'past_key input').toBe(m.cache);
    // rope on q and k, not on v; all three from linears of one rms_norm.
    const [ropeQ, ropeK] = [a.inputs[0]!.producer, a.inputs[1]!.producer];
    expect(isFhec(ropeQ, 'rope') && isFhec(ropeK, 'rope'), 'rope on q and k').toBe(true);
    layer.add(ropeQ!).add(ropeK!);
    expect(isFhec(a.inputs[2]!.producer, 'rope')).toBe(false);
    const qkv = [ropeQ!.inputs[0]!, ropeK!.inputs[0]!, a.inputs[2]!].map((v) => linearBehind(v, layer));
    const norm1 = qkv[0]!.inputs[0]!.producer;
    expect(isFhec(norm1, 'rms_norm'), 'rms_norm before attention').toBe(true);
    expect(qkv.every((l) => l.inputs[0] === norm1!.outputs[0])).toBe(true);
    layer.add(norm1!);
    // o projection and the first residual.
    const [o] = readersOf(g, a.outputs[0]!);
    expect(isFhec(o, 'linear')).toBe(true);
    layer.add(o!);
    const [res1] = readersOf(g, o!.outputs[0]!);
    expect(isFhec(res1, 'add')).toBe(true);
    layer.add(res1!);
    // MLP: rms_norm -> swiglu(gate, up) | swiglu(gate|up) -> down -> residual.
    const norm2 = readersOf(g, res1!.outputs[0]!).find((n) => isFhec(n, 'rms_norm'));
    expect(norm2, 'rms_norm before the MLP').toBeDefined();
    layer.add(norm2!);
    const mlpIn = readersOf(g, norm2!.outputs[0]!);
    expect(mlpIn.every((n) => isFhec(n, 'linear'))).toBe(true);
    for (const n of mlpIn) layer.add(n);
    const parts = mlpIn.flatMap((l) => readersOf(g, l.outputs[0]!)).flatMap((n) => (isFhec(n, 'split') ? (layer.add(n), n.outputs.flatMap((o2) => readersOf(g, o2))) : [n]));
    const swiglu = parts.find((n) => isFhec(n, 'swiglu'));
    expect(swiglu, 'swiglu in the MLP').toBeDefined();
    expect(parts.every((n) => n === swiglu)).toBe(true);
    layer.add(swiglu!);
    const [down] = readersOf(g, swiglu!.outputs[0]!);
    expect(isFhec(down, 'linear')).toBe(true);
    layer.add(down!);
    const linears = [...layer].filter((n) => isFhec(n, 'linear')).length;
    // q, k, v, o + gate, up, down; or merged qkv + o + merged gate|up + down.
    expect([7, 5, 4]).toContain(linears);
    const [res2] = readersOf(g, down!.outputs[0]!);
    expect(isFhec(res2, 'add') && res2.inputs.includes(res1!.outputs[0]!)).toBe(true);
    layer.add(res2!);
    return histogram(layer);
  });
}

function canonicalGraph(m: ModelCase, shape: GeneratorShape, merge = true): Graph {
  const pipeline = merge ? undefined : `${IMPORT_PIPELINE},${RAISE_PIPELINE},fold-rms-gain,merge-projections{when=never},dce`;
  const loaded = loadModel(m.model, { canonical: merge, pipeline, bindings: (g) => generatorBindings(g, shape) });
  return loaded.graph;
}

describe('canonical structure of every shared model', () => {
  for (const m of MODELS) {
    const shapes: GeneratorShape[] = [{ kind: 'prefill', sequence: 5 }, ...(m.cache ? [{ kind: 'decode' as const, past: 3 }] : [])];
    for (const shape of shapes) {
      it(`${m.name} ${shape.kind}`, () => {
        const layers = checkLayers(canonicalGraph(m, shape), m);
        const unmerged = checkLayers(canonicalGraph(m, shape, false), m);
        for (const h of unmerged) expect(h).toMatchObject({ linear: 7, rms_norm: 2, rope: 2, attention: 1, swiglu: 1, add: 2 });
        for (const h of layers) expect(h).toMatchObject({ linear: 4, split: 1, rms_norm: 2, rope: 2, attention: 1, swiglu: 1, add: 2 });
        if (shape.kind === 'prefill') {
          const fmt = (h: Record<string, number>) => Object.entries(h).map(([k, v]) => `${k} ${v}`).join(', ');
          console.log(`${m.name} per layer: ${fmt(unmerged[0]!)} | merged: ${fmt(layers[0]!)}`);
        }
      });
    }
  }
});

describe('canonical graph vs onnxruntime (fhec eval --canonical path)', () => {
  for (const m of MODELS.filter((x) => x.name !== ORTGENAI.name)) {
    const ref = readJson(m.model.replace(/\.onnx$/, '.ref.json'));
    for (const c of ref.cases) {
      it(`${m.name} ${c.name} (${c.steps.length} step${c.steps.length > 1 ? 's' : ''})`, () => {
        c.steps.forEach((step: unknown, k: number) => {
          const inputs = tensorsFromJson(step, 'inputs');
          const expected = tensorsFromJson(step, 'outputs');
          const outputs = evalModel(m.model, inputs, { canonical: true });
          for (const [name, e] of Object.entries(expected)) {
            expect(outputs[name]?.dims, `${name} at step ${k}`).toEqual(e.dims);
            expect(maxAbsDiff(outputs[name]!.data, e.data), `${m.name} ${c.name} step ${k} ${name}`).toBeLessThanOrEqual(m.tol);
          }
        });
      });
    }
  }

  it('ortgenai tiny llama fp16: logits of the last position and the presents', () => {
    const ref = readJson(ORTGENAI.ref);
    const inputs = tensorsFromJson(ref, 'inputs');
    const expected = tensorsFromJson(ref, 'outputs');
    const outputs = evalModel(ORTGENAI.model, inputs, { canonical: true });
    const logits = outputs['logits']!;
    const [, s, v] = logits.dims as [number, number, number];
    const last = logits.data.slice((s - 1) * v, s * v);
    expect(maxAbsDiff(last, expected['logits_last']!.data)).toBeLessThanOrEqual(2e-2);
    let arg = 0;
    for (let i = 1; i < v; i++) if (last[i]! > last[arg]!) arg = i;
    expect(arg).toBe(ref.argmax_last);
    for (const [name, e] of Object.entries(expected)) {
      if (name === 'logits_last') continue;
      expect(maxAbsDiff(outputs[name]!.data, e.data), name).toBeLessThanOrEqual(2e-2);
    }
  });

  it('the raised graph is what was evaluated: the KV-cache decode graph is all canonical', () => {
    const g = importOnnx(REF_MODELS[2]!.model).graph;
    const b = generatorBindings(g, { kind: 'decode', past: 12 });
    expect(b).toEqual({ sequence_length: 1, past_sequence_length: 12, total_sequence_length: 13 });
    const loaded = loadModel(REF_MODELS[2]!.model, { canonical: true, bindings: b });
    expect(loaded.graph.nodes.every((n) => n.domain === 'fhec')).toBe(true);
    const att = loaded.graph.nodes.find((n) => n.op === 'attention')!;
    expect(att.inputs[5]?.name).toBe('attention_mask');
  });
});
