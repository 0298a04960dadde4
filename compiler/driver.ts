// The compiler driver: ONNX file -> graph IR -> pass pipeline. Every CLI verb starts here.

import { FhecError } from '../ir/errors.js';
import { checkOpsets } from './onnx/opsets.js';
import type { Graph } from '../ir/graph/types.js';
import { verifyGraph } from '../ir/graph/verify.js';
import { printGraph } from '../ir/text/print.js';
import { PassManager, type PassRun } from '../passes/pass-manager.js';
import { graphPasses, IMPORT_PIPELINE } from '../passes/graph/registry.js';
import { canonicalPasses, CANONICAL_PIPELINE } from '../passes/canonical/registry.js';
import { verifyCanonicalGraph } from '../ir/canonical/verify.js';
import { importOnnx, type ModelInfo } from './onnx/import.js';

export interface LoadOptions {
  /** Symbolic dim bindings (--bind name=value), or a function deriving them from the imported graph. */
  bindings?: Record<string, number> | ((graph: Graph) => Record<string, number>);
  /** Called on the imported graph before any pass runs (e.g. to reject unsupported ops). */
  check?: (graph: Graph) => void;
  /** Pipeline to run after import (default: infer shapes, fold constants, DCE). */
  pipeline?: string;
  /** --print-after PASS (repeatable) or --print-after-all. */
  printAfter?: ReadonlySet<string> | 'all';
  /** Verify the IR after each pass (on in tests). */
  verifyEach?: boolean;
  emit?: (header: string, text: string) => void;
  /** Raise to the canonical transformer IR after the pipeline (CANONICAL_PIPELINE). */
  canonical?: boolean;
}

export interface LoadedModel {
  file: string;
  graph: Graph;
  info: ModelInfo;
  passRuns: PassRun[];
}

export function loadModel(file: string, opts: LoadOptions = {}): LoadedModel {
  const { graph, info } = importOnnx(file);
  checkOpsets(info.opsets, file);
  opts.check?.(graph);
  const bindings = typeof opts.bindings === 'function' ? opts.bindings(graph) : opts.bindings;
  const pm = new PassManager(new Map([...graphPasses, ...canonicalPasses]), {
    verify: opts.canonical ? verifyCanonicalGraph : verifyGraph,
    verifyEach: opts.verifyEach ?? true,
    print: (g) => printGraph(g),
    printAfter: opts.printAfter,
    emit: opts.emit,
  });
  if (bindings && Object.keys(bindings).length) pm.add('specialize', { bindings });
  pm.addPipeline(opts.pipeline ?? IMPORT_PIPELINE);
  if (opts.canonical) pm.addPipeline(CANONICAL_PIPELINE);
  let passRuns: PassRun[];
  try {
    passRuns = pm.run(graph);
  } catch (e) {
    // A pass names the node; the user also needs to know which model it is in.
    throw e instanceof FhecError ? e.inFile(file) : e;
  }
  return { file, graph, info, passRuns };
}


// The FHE half's pipelines run through the same PassManager (passes/fhe/pipeline/run.ts).
export { runFhePipeline, type FhePipelineOptions } from '../passes/fhe/pipeline/run.js';
