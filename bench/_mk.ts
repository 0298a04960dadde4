import { exportOnnx } from '../compiler/onnx/export.js';
import { buildLlamaGraph, LLAMA3_8B, LLAMA32_1B } from './llama-synth.js';
const [which, layers] = [process.argv[2]!, process.argv[3]];
const base = which === '8b' ? LLAMA3_8B : LLAMA32_1B;
const cfg = { ...base, kvCache: true, ...(layers ? { layers: Number(layers) } : {}) };
const name = `${which}${layers ? `-l${layers}` : ''}`;
console.log(exportOnnx(buildLlamaGraph(cfg), `/tmp/cost/${name}.onnx`, { externalData: { location: `${name}.onnx.data`, sparse: true } }));
