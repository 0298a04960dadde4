// Public API of the passes: the pass interface, the pass manager, pipelines and every registered pass.
export * from './pass.js';
export * from './pass-manager.js';
export * from './pipeline.js';
export * from './graph/registry.js';
export { specializePass, symbolicDims } from './graph/specialize.js';
export { inferShapesPass } from './graph/infer-shapes.js';
export { foldConstantsPass, foldConstants } from './graph/fold-constants.js';
export { dcePass, eliminateDeadCode } from './graph/dce.js';
