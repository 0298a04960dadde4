// Polynomial approximation library: fits, composite schemes, their float64 models and costs.
export * from './functions.js';
export * from './error.js';
export * from './chebyshev.js';
export * from './remez.js';
export * from './program.js';
export * from './approximation.js';
export * from './composite.js';
export * from './select.js';
export * from './softmax.js';
