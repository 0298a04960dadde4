// The ONNX frontend: reading models into the graph IR and writing graphs back as ONNX.
export { importOnnx, type ExternalFileInfo, type ImportedModel, type ImportOptions, type ModelInfo } from './import.js';
export { exportOnnx, type ExportOptions, type ExportResult } from './export.js';
export { OnnxTensor, readTensorProtoFile, type ExternalRef, type TensorContext } from './tensor-proto.js';
export { DeclaredTensor } from './declared-tensor.js';
