// The FHE passes by name (what pipeline strings, `fhec opt --pipeline` and `--print-after NAME` refer
// to), and the pipelines `fhec compile` runs for a canonical model. Analyses (analyze-depth,
// analyze-cost, budget-precision) change no op: they annotate the program.

import type { Pass } from '../pass.js';
import { analyzeCostPass } from './analysis/analyze-cost-pass.js';
import { analyzeDepthPass } from './analysis/analyze-depth-pass.js';
import { budgetPrecisionPass } from './analysis/budget-precision-pass.js';
import { approximatePass } from './approximate/approximate-pass.js';
import { lowerCanonicalPass } from './lower-canonical/lower-canonical-pass.js';
import { lowerGraphPass } from './lower/lower-graph-pass.js';
import { manageScalesPass } from './manage/manage-scales-pass.js';
import { selectParametersPass } from './parameters/select-parameters-pass.js';
import type { FheUnit } from './pipeline/unit.js';
import { verifyPass } from './pipeline/verify-pass.js';
import { placeRefreshPass } from './refresh/place-refresh-pass.js';

export const fhePasses: ReadonlyMap<string, Pass<FheUnit, any>> = new Map(
  [
    lowerGraphPass,
    lowerCanonicalPass,
    approximatePass,
    selectParametersPass,
    placeRefreshPass,
    manageScalesPass,
    verifyPass,
    analyzeDepthPass,
    analyzeCostPass,
    budgetPrecisionPass,
  ].map((p) => [p.name, p as Pass<FheUnit, any>]),
);

/** The FHE half of `fhec compile MODEL` for arithmetic graphs: the whole depth in one chain, no refresh. */
export function graphFhePipeline(parameters: string[] = []): string {
  return `lower-graph,select-parameters{${['fit=depth', ...parameters].join(',')}},manage-scales,verify`;
}

/**
 * The FHE half of `fhec compile MODEL --calibration FILE`: lower, choose parameters (search, or a fixed
 * N), place refreshes, manage scales, verify. `parameters` is select-parameters' option list.
 */
export function modelFhePipeline(o: { parameters?: string; placement?: 'optimal' | 'greedy' } = {}): string {
  // The search prices each chain with the placement place-refresh will make.
  const placement = o.placement ?? 'optimal';
  const select = `select-parameters{${o.parameters ? `${o.parameters},` : ''}placement=${placement}}`;
  return `lower-canonical,${select},place-refresh{strategy=${placement}},manage-scales,verify`;
}
