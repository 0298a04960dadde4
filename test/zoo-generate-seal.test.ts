// Encrypted generation on SEAL for a zoo model fhec was not developed on: Z1 (MHA, 4 heads of 12, hidden
// 48, tied input/output embeddings), the cheapest of the zoo. A generation plan of its KV-cache export,
// then greedy bytes from a prompt with every activation and the KV cache encrypted under the client's
// key (128-bit parameters), equal to greedy decoding of the fp32 no-cache export by onnxruntime.
// 4 bytes from a 4-byte prompt (one prefill, three decode steps) keep it to about a minute on 2 cores;
// the 8-byte runs of Z1 and Z2 (GQA 3) are in the README's zoo table.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { compileGenerationPlan } from '../compiler/generation-plan.js';
import { fhecInProcess } from './helpers/in-process.js';
import { ortGreedy } from './helpers/ort-greedy.js';
import { MODELS, ROOT } from './helpers/shared.js';

const ZOO = path.join(ROOT, 'models', 'zoo');
const KV_MODEL = path.join(ZOO, 'Z1_kvcache_opset14.onnx');
const FP32_MODEL = path.join(ZOO, 'Z1_nocache_opset17.onnx');
const CAL = path.join(MODELS, 'calibration.txt');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-zoo-generate-seal-'));
const PLAN = path.join(dir, 'gen.json');
const PROMPT = 'The ';

beforeAll(() => {
  compileGenerationPlan(KV_MODEL, PLAN, { calibration: CAL, maxContext: 8, prefill: [4] });
}, 180000);

describe('fhec generate on SEAL, zoo model Z1 (MHA, tied embeddings)', () => {
  it('generates 4 bytes from encrypted input equal to greedy fp32 decoding by onnxruntime', async () => {
    const expected = await ortGreedy(FP32_MODEL, PROMPT, 4);
    const r = await fhecInProcess('generate', PLAN, '--prompt', PROMPT, '--max-new-tokens', '4', '--backend', 'seal', '--no-progress');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${Buffer.from(expected).toString('latin1')}\n`);
    expect(r.stderr).not.toMatch(/SIMULATION/);
    expect(r.stderr).toMatch(/^SEAL, encrypted:/m);
    expect(r.stderr).toMatch(/decode steps: 3, mean [\d.]+ s per token/);
  }, 600000);
});
