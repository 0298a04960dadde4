// Public API of the IR layer: graph IR types, builder, verifier, tensors and dtypes.
export * from './dtype.js';
export * from './numeric.js';
export * from './tensor.js';
export * from './errors.js';
export * from './graph/types.js';
export * from './graph/attrs.js';
export * from './graph/builder.js';
export * from './graph/verify.js';
export * from './graph/topo.js';
export * from './tensor-json.js';
export * from './ops/broadcast.js';
export * from './ops/infer.js';
export * from './ops/infer-graph.js';
export * from './text/index.js';
export * from './canonical/index.js';
export * from './graph/range.js';
// The FHE IR (types, builder, verifier, text syntax), as a namespace: its names stay apart from the graph IR's.
export * as fhe from './fhe/index.js';
// The CKKS parameter, noise and cost model: data and formulas the passes plan with and the runtime executes.
export * from './ckks/params.js';
export * from './ckks/security.js';
export * from './ckks/noise.js';
export * from './ckks/cost-table.js';
export * from './ckks/rotation-keys.js';
// Weights a plan references in ONNX external data (`--stream-weights`): recipes, and the per-thread cache.
export * from './weights/recipe.js';
export * from './weights/cache.js';
