// The model zoo (models/zoo: small byte-level Llama-3 models of shapes fhec was not developed on) on
// every file found there with its onnxruntime reference (*.ref.json):
//  - the float64 reference interpreter (`fhec eval`'s path) matches onnxruntime on every case and decode
//    step, logits and KV-cache presents within 1e-4, with the same argmax at every position;
//  - the canonical raising (`fhec eval --canonical`'s path) leaves only `fhec` ops, with one attention
//    per layer carrying the model's head counts, and gives the same outputs within the same tolerance.
// Shapes and head counts come from each reference's config, so a new zoo file needs no edit here.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { evalModel } from '../compiler/commands/eval.js';
import { loadModel } from '../compiler/driver.js';
import { tensorsFromJson } from '../ir/tensor-json.js';
import { generatorBindings } from '../passes/canonical/specialize.js';
import { argmaxRows, maxAbsDiff } from './helpers/compare.js';
import { ROOT, readJson } from './helpers/shared.js';

const ZOO = path.join(ROOT, 'models', 'zoo');
const TOL = 1e-4;

interface ZooConfig {
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
}
interface ZooRef {
  config: ZooConfig;
  exporter: string;
  cases: { name: string; steps: unknown[] }[];
}

const FILES = fs
  .readdirSync(ZOO)
  .filter((f) => f.endsWith('.onnx') && fs.existsSync(path.join(ZOO, f.replace(/\.onnx$/, '.ref.json'))))
  .sort()
  .map((f) => ({ name: f.replace(/\.onnx$/, ''), model: path.join(ZOO, f), ref: readJson<ZooRef>(path.join(ZOO, f.replace(/\.onnx$/, '.ref.json'))) }));

/** Outputs of every step of a case, compared with onnxruntime's. */
function checkCase(model: string, c: ZooRef['cases'][number], canonical: boolean): void {
  c.steps.forEach((step, k) => {
    const inputs = tensorsFromJson(step, 'inputs');
    const expected = tensorsFromJson(step, 'outputs');
    const outputs = evalModel(model, inputs, { canonical });
    for (const [name, e] of Object.entries(expected)) {
      const got = outputs[name];
      expect(got, `${name} missing at step ${k}`).toBeDefined();
      expect(got!.dims, `${name} at step ${k}`).toEqual(e.dims);
      expect(maxAbsDiff(got!.data, e.data), `${c.name} step ${k} ${name}`).toBeLessThanOrEqual(TOL);
    }
    const logits = expected['logits']!;
    const V = logits.dims[logits.dims.length - 1]!;
    expect(argmaxRows(outputs['logits']!, V), `argmax at step ${k}`).toEqual(argmaxRows(logits, V));
  });
}

describe('model zoo', () => {
  it('has the files', () => {
    const models = new Set(FILES.map((f) => f.name.split('_')[0]));
    expect(models.size).toBeGreaterThanOrEqual(5);
  });

  for (const f of FILES) {
    const cfg = f.ref.config;
    const cache = f.ref.cases.some((c) => c.steps.length > 1);
    describe(f.name, () => {
      for (const c of f.ref.cases) {
        it(`reference interpreter: ${c.name}`, () => checkCase(f.model, c, false));
      }

      // Fused exports (one MatMul against q|k|v cut by a Split with unequal sizes, gate|up cut by Slices)
      // raise like unfused ones (passes/canonical/unfuse-projections.ts).
      it('canonical raising: only fhec ops, one attention per layer with the config\'s heads', () => {
        const shapes = [{ kind: 'prefill' as const, sequence: 5 }, ...(cache ? [{ kind: 'decode' as const, past: 3 }] : [])];
        for (const shape of shapes) {
          const g = loadModel(f.model, { canonical: true, bindings: (gr) => generatorBindings(gr, shape) }).graph;
          const foreign = g.nodes.filter((n) => n.domain !== 'fhec').map((n) => `${n.domain || 'ai.onnx'}::${n.op} (${n.name})`);
          expect(foreign, `${shape.kind}: ops left outside the canonical domain`).toEqual([]);
          const attns = g.nodes.filter((n) => n.op === 'attention');
          expect(attns.length).toBe(cfg.num_hidden_layers);
          for (const a of attns) {
            expect(a.attrs['num_heads']?.value).toBe(cfg.num_attention_heads);
            expect(a.attrs['kv_num_heads']?.value).toBe(cfg.num_key_value_heads);
          }
          expect(g.nodes.filter((n) => n.op === 'rms_norm').length).toBe(2 * cfg.num_hidden_layers + 1);
        }
      });

      for (const c of f.ref.cases) {
        it(`canonical graph: ${c.name}`, () => checkCase(f.model, c, true));
      }
    });
  }
});
