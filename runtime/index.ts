// Public API of the runtime: the float64 reference interpreter (more backends join here).
export { runGraph, evalNode } from './reference/interpreter.js';
export { isOpSupported, supportedOps } from './reference/registry.js';
