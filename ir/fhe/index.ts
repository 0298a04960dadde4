// Public API of the FHE IR: types, builder, typing rules, verifier, text syntax, slot layouts.
export * from './types.js';
export * from './typing.js';
export * from './builder.js';
export * from './verify.js';
export * from './print.js';
export * from './parse.js';
export * from './layout.js';
export * from './scales.js';
export * from './plain-eval.js';
export * from './refresh-rounds.js';
