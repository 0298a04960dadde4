// Encrypted generation on the real SEAL backend, end to end through the CLI: a generation plan for the
// KV-cache export of model A, then 4 greedy bytes from a prompt with every activation and the KV cache
// encrypted under the client's key (128-bit parameters), equal to greedy decoding of the fp32 model by
// onnxruntime. The prompt is 4 bytes, so the run is one prefill and three decode steps (a few minutes
// on 2 cores: the slowest test, kept to the single case the acceptance asks for). The plan is the one
// test/generate.test.ts runs on sim (context 16, 32 calibration windows), compiled once per run: the
// three decode steps (pasts 4-6) run its first bucket's plan (pasts 4-7), as a context-8 plan would.

import * as path from 'node:path';
import { describeSealGeneration } from './helpers/seal-generation.js';
import { MODELS } from './helpers/shared.js';

describeSealGeneration({
  title: 'fhec generate on SEAL',
  kvModel: path.join(MODELS, 'A_kvcache_opset14.onnx'),
  fp32Model: path.join(MODELS, 'A_nocache_opset14.onnx'),
  prompt: 'She ',
  bytes: 4,
  maxContext: 16,
  maxWindows: 32,
  compileTimeoutMs: 600000, // the decode plan (one bucket of pasts) is compiled ahead now, not during the run
  runTimeoutMs: 600000,
});
