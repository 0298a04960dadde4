// The generation plan the `fhec serve` tests use: model A's KV-cache export, a prefill of 4 tokens and
// a context of 6 (a 4-byte prompt and up to 3 new bytes), CKKS parameters from the cost-driven search
// as `fhec compile` picks them. Compiling takes minutes on 2 cores, so the serve test files share one
// compile: the plan is kept under the system temp folder, named by a digest of everything it is made
// from (the model, the calibration text, the options, and every source file of ir/, passes/,
// runtime/ and compiler/), so a change to any of them compiles afresh. The decode plans are compiled
// by `fhec serve` at start, as in a deployment, into the same folder.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { compileGenerationPlan } from '../../compiler/generation-plan.js';
import { MODELS, ROOT } from './shared.js';

export const KV_MODEL = path.join(MODELS, 'A_kvcache_opset14.onnx');
export const FP32_MODEL = path.join(MODELS, 'A_nocache_opset14.onnx');
const CALIBRATION = path.join(MODELS, 'calibration.txt');
const OPTIONS = { calibration: CALIBRATION, maxContext: 6, prefill: [4] };

function sourcesDigest(): string {
  const h = createHash('sha256');
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(ts|json)$/.test(e.name)) h.update(p).update(fs.readFileSync(p));
    }
  };
  for (const d of ['ir', 'passes', 'runtime', 'compiler']) walk(path.join(ROOT, d));
  h.update(fs.readFileSync(KV_MODEL)).update(fs.readFileSync(CALIBRATION)).update(JSON.stringify(OPTIONS));
  return h.digest('hex').slice(0, 16);
}

/** Where the plan for these sources is kept. */
export function servePlanDir(): string {
  return path.join(os.tmpdir(), `fhec-serve-plan-${sourcesDigest()}`);
}

/** The plan file (compiled now unless an identical compile is on disk). */
export function servePlan(): string {
  const dir = servePlanDir();
  const plan = path.join(dir, 'gen.json');
  if (fs.existsSync(plan)) return plan;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-serve-plan-tmp-'));
  compileGenerationPlan(KV_MODEL, path.join(tmp, 'gen.json'), OPTIONS);
  try {
    fs.renameSync(tmp, dir);
  } catch {
    // another test file compiled it meanwhile
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return plan;
}
