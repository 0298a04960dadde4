// Encrypted generation on SEAL for a zoo model fhec was not developed on: Z1 (MHA, 4 heads of 12, hidden
// 48, tied input/output embeddings), the cheapest of the zoo: 4 greedy bytes from a 4-byte prompt with every
// activation and the KV cache encrypted, equal to greedy decoding of the fp32 no-cache export by onnxruntime.
// The 8-byte runs of Z1 and Z2 (GQA 3) are in the README's zoo table.

import * as path from 'node:path';
import { describeSealGeneration } from './helpers/seal-generation.js';
import { ROOT } from './helpers/shared.js';

const ZOO = path.join(ROOT, 'models', 'zoo');

describeSealGeneration({
  title: 'fhec generate on SEAL, zoo model Z1 (MHA, tied embeddings)',
  kvModel: path.join(ZOO, 'Z1_kvcache_opset14.onnx'),
  fp32Model: path.join(ZOO, 'Z1_nocache_opset17.onnx'),
  prompt: 'The ',
  bytes: 4,
  compileTimeoutMs: 600000, // the decode plan (one bucket of pasts) is compiled ahead now, not during the run
  runTimeoutMs: 600000,
});
