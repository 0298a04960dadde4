// Public API of the passes: the pass interface, the pass manager, pipelines and every registered pass.
export * from './pass.js';
export * from './pass-manager.js';
export * from './pipeline.js';
export * from './graph/registry.js';
export { specializePass, symbolicDims } from './graph/specialize.js';
export { inferShapesPass } from './graph/infer-shapes.js';
export { foldConstantsPass, foldConstants } from './graph/fold-constants.js';
export { dcePass, eliminateDeadCode } from './graph/dce.js';
// Canonical transformer IR: raising passes, FHE-minded folds, generator specialization.
export * from './canonical/registry.js';
export { specializeGeneratorPass, generatorBindings, generatorShapeFromFlags, hasKvCache } from './canonical/specialize.js';
export type { GeneratorShape } from './canonical/specialize.js';
export { dropNoopCastsPass } from './canonical/drop-noop-casts.js';
export { raiseRmsNormPass } from './canonical/raise-rms-norm.js';
export { raiseLinearPass } from './canonical/raise-linear.js';
export { unfuseProjectionsPass } from './canonical/unfuse-projections.js';
export { raiseRopePass } from './canonical/raise-rope.js';
export { raiseAttentionPass } from './canonical/raise-attention.js';
export { raiseSiluPass } from './canonical/raise-silu.js';
export { raiseEmbeddingPass } from './canonical/raise-embedding.js';
export { raiseElementwisePass } from './canonical/raise-elementwise.js';
export { foldRmsGainPass } from './canonical/fold-rms-gain.js';
export { mergeProjectionsPass, mergeCost } from './canonical/merge-projections.js';
export { analyzeMask } from './canonical/mask.js';
export type { MaskProof, MaskVerdict, MaskGeometry } from './canonical/mask.js';
export * as calibrate from './calibrate/index.js';
export * as approx from './approx/index.js';
// The FHE passes by name, the unit they run on (a program and its annotations), and the pipeline runner.
export { fhePasses, modelFhePipeline } from './fhe/registry.js';
export { runFhePipeline, type FhePipelineOptions } from './fhe/pipeline/run.js';
export { unitOf, attr, setAttrs, annotatedParameters, parameterAttributes, withoutAttributes } from './fhe/pipeline/unit.js';
export type { FheUnit, FheSource, RefreshFloor } from './fhe/pipeline/unit.js';
// FHE-IR passes: refresh (bootstrap) placement, optimal and greedy.
export { placeRefreshes } from './fhe/refresh/refresh-placement.js';
export { placeRefreshesGreedy } from './fhe/refresh/refresh-greedy.js';
// FHE-IR analyses: precision budget, latency prediction, cost-driven parameter search.
export { analyzePrecision, formatPrecisionReport } from './fhe/analysis/precision.js';
export { predictLatency, formatLatency } from './fhe/analysis/predict-latency.js';
export { searchParameters, formatCandidates } from './fhe/parameters/parameter-search.js';
