// The generation plan the `fhec serve` tests use: model A's KV-cache export, a prefill of 4 tokens and
// a context of 8 (a 4-byte prompt and up to 4 new bytes), CKKS parameters from the cost-driven search
// as `fhec compile` picks them: the same plan as the SEAL generation test's, compiled once per run
// (plan-cache.ts).

import * as path from 'node:path';
import { cachedGenerationPlan } from './plan-cache.js';
import { MODELS } from './shared.js';

export const KV_MODEL = path.join(MODELS, 'A_kvcache_opset14.onnx');
export const FP32_MODEL = path.join(MODELS, 'A_nocache_opset14.onnx');

/** The plan file (compiled now unless this run has it). */
export function servePlan(): string {
  return cachedGenerationPlan(KV_MODEL, { calibration: path.join(MODELS, 'calibration.txt'), maxContext: 8, prefill: [4] });
}
