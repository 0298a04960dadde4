// Graph -> FHE lowering: arithmetic ONNX ops on encrypted tensors, and the plan's tensor interface.
export { lowerGraph, checkLowerable, FHE_LOWERABLE_OPS } from './lower-graph.js';
export type { GraphLowering, LowerGraphOptions, NodeLowering } from './lower-graph.js';
export { holdsToRuns, packCiphertext, unpackTensor } from './interface.js';
export type { CiphertextPacking, PlanInterface, TensorPacking } from './interface.js';
