// Writes a Llama-shaped ONNX skeleton (KV cache inputs, declared fp16 weights in a sparse external
// data file that is sized but never written) for `fhec compile --cost-only`:
//   node dist/bench/write-llama-skeleton.js 8b|1b OUT_DIR [LAYERS]
// 8b: Llama-3-8B shapes; 1b: Llama-3.2-1B shapes (tied embeddings, Llama 3.1 RoPE scaling).

import * as path from 'node:path';
import { exportOnnx } from '../compiler/onnx/export.js';
import { buildLlamaGraph, LLAMA3_8B, LLAMA32_1B } from './llama-synth.js';

const [which, dir, layers] = [process.argv[2], process.argv[3], process.argv[4]];
if ((which !== '8b' && which !== '1b') || !dir) {
  console.error('usage: write-llama-skeleton 8b|1b OUT_DIR [LAYERS]');
  process.exit(2);
}
const cfg = { ...(which === '8b' ? LLAMA3_8B : LLAMA32_1B), kvCache: true, ...(layers ? { layers: Number(layers) } : {}) };
const name = `llama-${which}${layers ? `-l${layers}` : ''}.onnx`;
const r = exportOnnx(buildLlamaGraph(cfg), path.join(dir, name), { externalData: { location: `${name}.data`, sparse: true } });
console.log(`${path.join(dir, name)}: model ${r.modelBytes} bytes, external data ${r.externalBytes} bytes (sparse)`);
