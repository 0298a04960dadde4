import { exportOnnx } from '../compiler/onnx/export.js';
import { buildLlamaGraph, LLAMA3_8B } from '../bench/llama-synth.js';
const which = process.argv[2];
const cfg = which === '8b' ? LLAMA3_8B : { layers: 16, hidden: 2048, heads: 32, kvHeads: 8, ffn: 8192, vocab: 128256, maxPositions: 8192, dtype: 'float16' as const, headDim: 64 };
const r = exportOnnx(buildLlamaGraph(cfg), `/tmp/cost/${which}.onnx`, { externalData: { location: `${which}.onnx.data`, sparse: true } });
console.log(r);
