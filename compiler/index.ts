// Public API of the compiler driver: ONNX import/export and model loading.
export { importOnnx } from './onnx/import.js';
export type { ImportedModel, ModelInfo } from './onnx/import.js';
export { loadModel } from './driver.js';
export type { LoadOptions, LoadedModel } from './driver.js';
export { evalModel } from './commands/eval.js';
export { inspectModel } from './commands/inspect.js';
