// `fhec compile --calibration` (canonical models) and `fhec run` of the resulting plan, through the CLI
// entry point; and a plan from every shared model.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { referenceLogits } from '../compiler/accuracy.js';
import { compileModel, writeModelPlan } from '../compiler/model-plan.js';
import { loadModelPlan } from '../runtime/model-session.js';
import { fhecInProcess } from './helpers/in-process.js';
import { MODELS, ORTGENAI, REF_MODELS } from './helpers/shared.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-model-cli-'));

const fhec = fhecInProcess;

describe('fhec compile --calibration / fhec run', () => {
  it('compiles model A with a report, and runs the plan on sim by the model\'s own names', async () => {
    const model = path.join(MODELS, 'A_nocache_opset14.onnx');
    const plan = path.join(dir, 'a4.json');
    const c = await fhec('compile', model, '-o', plan, '--calibration', path.join(MODELS, 'calibration.txt'), '--prefill', '4', '--max-windows', '64', '--report');
    expect(c.status, c.stderr).toBe(0);
    expect(c.stdout).toMatch(/decoder layers\.0: multiplicative depth \d+, rotations \d+/);
    expect(c.stdout).toMatch(/decoder layers\.1: multiplicative depth \d+, rotations \d+/);
    expect(c.stdout).toMatch(/predicted\s+observed/);
    // exp of the scores relative to the diagonal (scaled by 2^-k under normalize-and-square), and the row sum's 1/x.
    expect(c.stdout).toMatch(/exp\(\(?s - s_diag\)(\/\d+)?/);
    expect(c.stdout).toMatch(/1\/sum exp/);
    expect(c.stdout).toMatch(/refreshes\s+\d+ \(greedy baseline \d+\)/);
    expect(c.stdout).toMatch(/end to end under sim .* greedy agreement 100\.00% \(4\/4\)/);
    expect(fs.existsSync(plan.replace(/\.json$/, '.embedding.bin'))).toBe(true);
    const tokens = Array.from(fs.readFileSync(path.join(MODELS, 'calibration.txt')).subarray(0, 4));
    const inputs = path.join(dir, 'in.json');
    fs.writeFileSync(inputs, JSON.stringify({ inputs: { input_ids: { dtype: 'int64', dims: [1, 4], data: tokens } } }));
    const out = path.join(dir, 'out.json');
    const r = await fhec('run', plan, '--backend', 'sim', '--inputs', inputs, '--out', out);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/SIMULATION/);
    const doc = JSON.parse(fs.readFileSync(out, 'utf8'));
    expect(doc.outputs.logits.dims).toEqual([1, 4, 256]);
    const ref = referenceLogits(model, tokens);
    const got: number[] = doc.outputs.logits.data;
    let m = 0;
    for (let i = 0; i < got.length; i++) m = Math.max(m, Math.abs(got[i]! - ref.data[i]!));
    expect(m).toBeLessThan(0.25);
    // The same plan really encrypted: `fhec run` on seal makes every refresh's mask on the mask thread
    // (the default with 2+ cores), and its logits are the simulator's within both runs' noise.
    const outSeal = path.join(dir, 'out-seal.json');
    const rs = await fhec('run', plan, '--backend', 'seal', '--inputs', inputs, '--out', outSeal);
    expect(rs.status, rs.stderr).toBe(0);
    expect(rs.stdout).not.toMatch(/SIMULATION/);
    const refreshed = Number(/"ciphertexts":(\d+)/.exec(rs.stdout)?.[1]);
    expect(refreshed).toBeGreaterThan(0);
    const masks = /refresh masks made ahead: (\d+) by the mask thread, 0 while waiting on the key holder; used (\d+)/.exec(rs.stdout);
    if (os.availableParallelism() >= 2) {
      expect(masks, rs.stdout).not.toBeNull();
      expect(Number(masks![1])).toBe(refreshed);
      expect(Number(masks![2])).toBeGreaterThan(refreshed / 2);
    } else expect(masks).toBeNull();
    const sealLogits: number[] = JSON.parse(fs.readFileSync(outSeal, 'utf8')).outputs.logits.data;
    let ms = 0;
    for (let i = 0; i < got.length; i++) ms = Math.max(ms, Math.abs(sealLogits[i]! - ref.data[i]!));
    expect(ms).toBeLessThan(0.25);
    // Teacher-forced agreement on held-out text through `fhec accuracy` (sim here; the README's seal
    // figure comes from the same command with --backend seal).
    const json = path.join(dir, 'acc.json');
    const a = await fhec('accuracy', model, plan, '--text', path.join(MODELS, 'eval-dev.txt'), '--windows', '3', '--skip', '5', '--backend', 'sim', '--json', json);
    expect(a.status, a.stderr).toBe(0);
    expect(a.stderr).toMatch(/^SIMULATION/m);
    expect(a.stderr).toMatch(/window 3\/3: \d\/4 positions agree/);
    const fig = JSON.parse(fs.readFileSync(json, 'utf8'));
    expect(fig).toMatchObject({ backend: 'sim', encrypted: false, windows: 3, positions: 12 });
    expect(fig.agree).toBeGreaterThanOrEqual(11);
    expect(a.stdout).toContain(`greedy agreement ${((100 * fig.agree) / 12).toFixed(2)}% (${fig.agree}/12)`);
    expect(fig.maxAbsError).toBeLessThan(0.25);
    const bad = await fhec('accuracy', model, inputs, '--text', path.join(MODELS, 'eval-dev.txt'), '--backend', 'sim');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/in\.json.*not a model plan|not a model plan.*in\.json/);
  }, 180000);

  it('compiles a decode plan (one token, encrypted KV cache of P tokens) with --decode', async () => {
    const plan = path.join(dir, 'd.json');
    const r = await fhec('compile', path.join(MODELS, 'A_kvcache_opset14.onnx'), '-o', plan, '--calibration', path.join(MODELS, 'calibration.txt'), '--decode', '3', '--max-windows', '32', '--ring-degree', '16384');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/decode of one token after 3, encrypted KV cache/);
    const mp = loadModelPlan(plan);
    expect(mp.meta.cacheInputs.map((c) => c.name).sort()).toEqual(['past_key_values.0.key', 'past_key_values.0.value', 'past_key_values.1.key', 'past_key_values.1.value']);
    expect(mp.meta.outputs.filter((o) => /present/.test(o.name)).every((o) => o.dims[2] === 4)).toBe(true);
  }, 120000);

  it('rejects --decode on a model without a KV cache, and --prefill with --decode', async () => {
    const a = await fhec('compile', path.join(MODELS, 'A_nocache_opset14.onnx'), '-o', path.join(dir, 'x.json'), '--calibration', path.join(MODELS, 'calibration.txt'), '--decode', '3');
    expect(a.status).not.toBe(0);
    expect(a.stderr).toMatch(/KV cache/);
    const b = await fhec('compile', path.join(MODELS, 'A_kvcache_opset14.onnx'), '-o', path.join(dir, 'x.json'), '--calibration', path.join(MODELS, 'calibration.txt'), '--decode', '3', '--prefill', '4');
    expect(b.status).not.toBe(0);
    expect(b.stderr).toMatch(/not both/);
  });
});

describe('a plan from every shared model', () => {
  for (const m of [...REF_MODELS.filter((x) => x.name !== 'A_nocache_opset14'), { name: ORTGENAI.name, model: ORTGENAI.model }]) {
    it(m.name, () => {
      const isGenai = m.name === ORTGENAI.name;
      // At a fixed ring degree: the parameter search has its own tests (model-parameters.test.ts).
      const c = compileModel(m.model, { ringDegree: 16384, ...(isGenai ? { calibration: ORTGENAI.ref } : { calibration: path.join(MODELS, 'calibration.txt'), prefill: 4, maxWindows: 16 }) });
      const file = path.join(dir, `${m.name}.json`);
      writeModelPlan(file, c);
      const mp = loadModelPlan(file);
      expect(mp.meta.outputs.map((o) => o.name)).toContain('logits');
      expect(mp.plan.program.ops.some((op) => op.kind === 'refresh')).toBe(true);
      if (/kvcache/.test(m.name) || isGenai) expect(mp.meta.outputs.some((o) => /present/.test(o.name) && o.kv)).toBe(true);
    }, 120000);
  }
});
