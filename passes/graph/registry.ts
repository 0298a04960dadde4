// The graph-IR passes by name (what `--print-after NAME` and pipeline strings refer to).

import type { Graph } from '../../ir/graph/types.js';
import type { Pass } from '../pass.js';
import { dcePass } from './dce.js';
import { foldConstantsPass } from './fold-constants.js';
import { inferShapesPass } from './infer-shapes.js';
import { specializePass } from './specialize.js';

export const graphPasses: ReadonlyMap<string, Pass<Graph, any>> = new Map(
  [specializePass, inferShapesPass, foldConstantsPass, dcePass].map((p) => [p.name, p as Pass<Graph, any>]),
);

/** The pipeline `fhec ir` and `fhec eval` run after import. */
export const IMPORT_PIPELINE = 'infer-shapes,fold-constants,dce';
