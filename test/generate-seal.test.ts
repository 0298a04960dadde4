// Encrypted generation on the real SEAL backend, end to end through the CLI: a generation plan for the
// KV-cache export of model A, then 4 greedy bytes from a prompt with every activation and the KV cache
// encrypted under the client's key (128-bit parameters), equal to greedy decoding of the fp32 model by
// onnxruntime. The prompt is 4 bytes, so the run is one prefill and three decode steps (a few minutes
// on 2 cores: the slowest test, kept to the single case the acceptance asks for).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { compileGenerationPlan } from '../compiler/generation-plan.js';
import { fhecInProcess } from './helpers/in-process.js';
import { ortGreedy } from './helpers/ort-greedy.js';
import { MODELS } from './helpers/shared.js';

const KV_MODEL = path.join(MODELS, 'A_kvcache_opset14.onnx');
const FP32_MODEL = path.join(MODELS, 'A_nocache_opset14.onnx');
const CAL = path.join(MODELS, 'calibration.txt');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-generate-seal-'));
const PLAN = path.join(dir, 'gen.json');
const PROMPT = 'She ';

beforeAll(() => {
  compileGenerationPlan(KV_MODEL, PLAN, { calibration: CAL, maxContext: 8, prefill: [4] });
}, 120000);

describe('fhec generate on SEAL', () => {
  it('generates 4 bytes from encrypted input equal to greedy fp32 decoding by onnxruntime', async () => {
    const expected = await ortGreedy(FP32_MODEL, PROMPT, 4);
    const r = await fhecInProcess('generate', PLAN, '--prompt', PROMPT, '--max-new-tokens', '4', '--backend', 'seal', '--no-progress');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${Buffer.from(expected).toString('latin1')}\n`);
    expect(r.stderr).not.toMatch(/SIMULATION/);
    expect(r.stderr).toMatch(/^SEAL, encrypted:/m);
    expect(r.stderr).toMatch(/decode steps: 3, mean [\d.]+ s per token/);
    expect(r.stderr).toMatch(/key holder: [1-9]\d* round trips/);
  }, 900000);
});
