// `fhec compile --emit ts` and `fhec generate --emitted` on a zoo model the tests were not developed on
// (Z1: MHA, 4 heads of 12, tied embeddings). The step plans' emitted modules type-check under strict
// settings; run instead of the JSON executor they make the very same evaluator outputs bit for bit on
// the simulator (seeded), and on SEAL print the same 2 greedy bytes as greedy
// decoding of the fp32 no-cache export by onnxruntime.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { EmittedModules } from '../compiler/emit/load-module.js';
import { GenerationPlanStore } from '../compiler/generation-plan.js';
import type { CkksBackend, CkksEvaluator } from '../runtime/backend.js';
import { loadClientModel } from '../runtime/generate/manifest.js';
import { generateInProcess } from '../runtime/generate/session.js';
import { makeSimBackend } from '../runtime/sim/backend.js';
import { fhecInProcess } from './helpers/in-process.js';
import { ortGreedy } from './helpers/ort-greedy.js';
import { MODELS, ROOT } from './helpers/shared.js';
import { typeCheck } from './helpers/type-check.js';

const ZOO = path.join(ROOT, 'models', 'zoo');
const PROMPT = 'The ';
const BYTES = 2;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-zoo-emitted-'));
const plan = path.join(dir, 'gen.json');
const steps = path.join(dir, 'gen.steps');

/** A seeded sim backend whose evaluators record every ciphertext they serialize (step outputs, refresh requests). */
function recordingSim(seed: number, saved: Buffer[]): CkksBackend {
  const inner = makeSimBackend(seed);
  return {
    ...inner,
    createEvaluator: async (params, keys) => {
      const ev = await inner.createEvaluator(params, keys);
      return new Proxy(ev, {
        get(target, key) {
          if (key === 'saveCiphertext') return (h: Parameters<CkksEvaluator['saveCiphertext']>[0]) => {
            const bytes = target.saveCiphertext(h);
            saved.push(Buffer.from(bytes));
            return bytes;
          };
          const v = Reflect.get(target, key, target) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
    },
  };
}

/** Mask bytes from a counter: both runs draw the same masks. */
function seededRandom(): (out: Uint8Array) => void {
  let s = 12345;
  return (out) => {
    for (let i = 0; i < out.length; i++) {
      s = (s * 1103515245 + 12345) >>> 0;
      out[i] = s >>> 24;
    }
  };
}

describe('fhec compile --emit ts / fhec generate --emitted, zoo model Z1', () => {
  beforeAll(async () => {
    const r = await fhecInProcess('compile', path.join(ZOO, 'Z1_kvcache_opset14.onnx'), '-o', plan, '--calibration', path.join(MODELS, 'calibration.txt'),
      '--max-context', String(PROMPT.length + BYTES), '--prefill', String(PROMPT.length), '--emit', 'ts');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(path.join(steps, `prefill-${PROMPT.length}.ts`));
  }, 300_000);

  it('runs the emitted modules bit for bit like the JSON executor on the simulator', async () => {
    const runs = [];
    for (const emitted of [false, true]) {
      const saved: Buffer[] = [];
      const modules = new EmittedModules();
      const store = new GenerationPlanStore(plan);
      const run = await generateInProcess(store, recordingSim(7, saved), loadClientModel(plan), PROMPT, BYTES, {
        mask: { random: seededRandom() },
        ...(emitted ? { emitted: (sp) => modules.forPlan(sp.plan.file) } : {}),
      });
      runs.push({ run, saved, modules });
    }
    const [json, emitted] = runs;
    expect(emitted!.run.result.text).toBe(json!.run.result.text);
    // The decode plan (one bucket, pasts 4..5) was compiled ahead with --emit ts: nothing emitted during the run.
    expect(emitted!.modules.emitted).toEqual([]);
    expect(emitted!.saved.length).toBeGreaterThan(100);
    expect(emitted!.saved.length).toBe(json!.saved.length);
    const differing = emitted!.saved.findIndex((b, i) => Buffer.compare(b, json!.saved[i]!) !== 0);
    expect(differing).toBe(-1);
    expect(emitted!.run.ops).toEqual(Object.fromEntries(Object.entries(json!.run.ops).map(([k, v]) => [k, { count: v.count, ms: expect.any(Number) }])));
  }, 300_000);

  it('emits modules that type-check under strict settings', () => {
    const files = fs.readdirSync(steps).filter((f) => f.endsWith('.ts')).map((f) => path.join(steps, f));
    expect(files.map((f) => path.basename(f)).sort()).toEqual([`decode-${PROMPT.length}-${PROMPT.length + BYTES - 1}.ts`, `prefill-${PROMPT.length}.ts`]);
    for (const [f, diagnostics] of typeCheck(files)) expect(diagnostics, f).toEqual([]);
  }, 120_000);

  it(`prints on SEAL the same ${BYTES} bytes from the emitted modules as onnxruntime greedy`, async () => {
    const expected = `${Buffer.from(await ortGreedy(path.join(ZOO, 'Z1_nocache_opset17.onnx'), PROMPT, BYTES)).toString('latin1')}\n`;
    const args = ['generate', plan, '--prompt', PROMPT, '--max-new-tokens', String(BYTES), '--backend', 'seal', '--no-progress'];
    const emitted = await fhecInProcess(...args, '--emitted');
    expect(emitted.status, emitted.stderr).toBe(0);
    expect(emitted.stderr).toMatch(/^SEAL, encrypted:/m);
    expect(emitted.stderr).toMatch(/ran the step plans' emitted TypeScript modules/);
    // The JSON executor's SEAL bytes for Z1 equal onnxruntime greedy in zoo-generate-seal.test.ts, and
    // the sim run above pins emitted == JSON bit for bit: one SEAL run here is enough.
    expect(emitted.stdout).toBe(expected);
  }, 600_000);
});
