// Writes a Llama-shaped model with real (seeded synthetic) weights in an external data file:
//   node dist/bench/write-llama-layer.js 1b|8b OUT_DIR [LAYERS] [VOCAB]
// The layer shapes are the named model's; the vocabulary (default 256, byte-level) and the RoPE table
// (2,048 positions) are cut so that the file holds the decoder layers, not the 128k-row embedding.
import * as path from 'node:path';
import { exportOnnx } from '../compiler/onnx/export.js';
import { buildLlamaGraph, LLAMA3_8B, LLAMA32_1B, randomLlamaWeights } from './llama-synth.js';

const [which, dir, layers, vocab] = [process.argv[2], process.argv[3], process.argv[4], process.argv[5]];
if ((which !== '8b' && which !== '1b') || !dir) {
  console.error('usage: write-llama-layer 8b|1b OUT_DIR [LAYERS] [VOCAB]');
  process.exit(2);
}
const base = which === '8b' ? LLAMA3_8B : LLAMA32_1B;
const cfg = { ...base, dtype: 'float32' as const, kvCache: true, layers: Number(layers ?? 1), vocab: Number(vocab ?? 256), maxPositions: 2048 };
const name = `llama-${which}-l${cfg.layers}-v${cfg.vocab}.onnx`;
const r = exportOnnx(buildLlamaGraph(cfg, randomLlamaWeights(17, 'float32', cfg.rope)), path.join(dir, name), { externalData: { location: `${name}.data` } });
console.log(`${path.join(dir, name)}: model ${r.modelBytes} bytes, external data ${r.externalBytes} bytes`);
