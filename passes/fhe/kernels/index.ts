// FHE IR kernels of the nonlinear canonical ops (everything but `linear`, which is passes/fhe/matvec.ts).
export * from './cost.js';
export * from './approximation.js';
export * from './silu.js';
export * from './rms-norm.js';
export * from './rope.js';
export * from './softmax.js';
export * from './attention.js';
export { checkReplicated, perElement, rotateSum } from './layout.js';
