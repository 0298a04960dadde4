// Lowering of a calibrated canonical transformer graph (prefill of S tokens, or one decode step with an
// encrypted KV cache) to one unmanaged FHE program; see lower-model.ts.
export * from './activation.js';
export * from './attention.js';
export * from './attention-decode.js';
export * from './attention-stats.js';
export * from './linear.js';
export * from './lower-model.js';
export * from './probes.js';
export * from './rms-norm.js';
export * from './rope.js';
export * from './slots.js';
export * from './softmax-normalize.js';
export * from './softmax-plan.js';
