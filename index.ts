// fhec as a library. Sub-paths: `fhec/ir`, `fhec/passes`, `fhec/runtime`, `fhec/compiler`.
export * as ir from './ir/index.js';
export * as passes from './passes/index.js';
export * as runtime from './runtime/index.js';
export * as compiler from './compiler/index.js';
