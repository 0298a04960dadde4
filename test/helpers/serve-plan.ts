// The generation plan the `fhec serve` tests use: zoo model Z1's KV-cache export (MHA, 4 heads of 12,
// hidden 48, the cheapest of the zoo on SEAL: ~22 s for a prefill of 4 and ~20 s per decode token on
// 2 cores, against ~70 s for model A), a prefill of 4 tokens and a context of 7 (a 4-byte prompt and up
// to 3 new bytes), CKKS parameters from the cost-driven search as `fhec compile` picks them. The serve
// tests check sessions, the wire protocol, resumption and the browser client, none of which depends on
// the model; model A's own plan runs on SEAL in test/generate-seal.test.ts. The same plan as the zoo's
// SEAL generation test (test/zoo-generate-seal.test.ts), compiled once per run (plan-cache.ts).

import * as path from 'node:path';
import { cachedGenerationPlan } from './plan-cache.js';
import { MODELS, ROOT } from './shared.js';

const ZOO = path.join(ROOT, 'models', 'zoo');
export const KV_MODEL = path.join(ZOO, 'Z1_kvcache_opset14.onnx');
export const FP32_MODEL = path.join(ZOO, 'Z1_nocache_opset17.onnx');

/** The plan file (compiled now unless this run has it). */
export function servePlan(): string {
  return cachedGenerationPlan(KV_MODEL, { calibration: path.join(MODELS, 'calibration.txt'), maxContext: 7, prefill: [4] });
}
