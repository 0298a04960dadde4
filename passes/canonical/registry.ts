// The canonical passes by name, and the pipeline that raises an imported (specialized, folded) graph
// to the canonical transformer IR.

import type { Graph } from '../../ir/graph/types.js';
import type { Pass } from '../pass.js';
import { dropNoopCastsPass } from './drop-noop-casts.js';
import { foldRmsGainPass } from './fold-rms-gain.js';
import { mergeProjectionsPass } from './merge-projections.js';
import { raiseAttentionPass } from './raise-attention.js';
import { raiseElementwisePass } from './raise-elementwise.js';
import { raiseEmbeddingPass } from './raise-embedding.js';
import { raiseLinearPass } from './raise-linear.js';
import { raiseRmsNormPass } from './raise-rms-norm.js';
import { raiseRopePass } from './raise-rope.js';
import { raiseSiluPass } from './raise-silu.js';
import { specializeGeneratorPass } from './specialize.js';
import { unfuseProjectionsPass } from './unfuse-projections.js';

export const canonicalPasses: ReadonlyMap<string, Pass<Graph, any>> = new Map(
  [
    specializeGeneratorPass,
    dropNoopCastsPass,
    raiseRmsNormPass,
    raiseLinearPass,
    unfuseProjectionsPass,
    raiseRopePass,
    raiseAttentionPass,
    raiseSiluPass,
    raiseEmbeddingPass,
    raiseElementwisePass,
    foldRmsGainPass,
    mergeProjectionsPass,
  ].map((p) => [p.name, p as Pass<Graph, any>]),
);

/** Raising, then the FHE-minded folds. Runs after specialization and constant folding. */
export const RAISE_PIPELINE =
  'drop-noop-casts,raise-rms-norm,raise-linear,unfuse-projections,raise-rope,raise-attention,raise-silu,raise-embedding,raise-elementwise';
export const CANONICAL_PIPELINE = `${RAISE_PIPELINE},fold-rms-gain,merge-projections,dce`;
