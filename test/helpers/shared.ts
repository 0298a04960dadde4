// Paths to the shared test data (../shared beside the project root, also in CI).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SHARED = path.resolve(ROOT, '..', 'shared');
export const MODELS = path.join(SHARED, 'models');
export const NODE_TESTS = path.join(SHARED, 'onnx-node-tests');

export function readJson<T = any>(file: string): T {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
}

/** The model files in shared/models with their reference outputs. */
export const REF_MODELS = [
  'A_nocache_opset14', 'A_nocache_opset17', 'A_kvcache_opset14', 'A_nocache_opset23', 'A_kvcache_opset23',
].map((name) => ({ name, model: path.join(MODELS, `${name}.onnx`), ref: path.join(MODELS, `${name}.ref.json`) }));

export const ORTGENAI = {
  name: 'ortgenai-tiny-llama-fp16',
  model: path.join(MODELS, 'ortgenai-tiny-llama-fp16', 'model.onnx'),
  ref: path.join(MODELS, 'ortgenai-tiny-llama-fp16', 'ref.json'),
};

export const ALL_MODELS = [...REF_MODELS.map((m) => m.model), ORTGENAI.model];
