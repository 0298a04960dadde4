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
import type { FheProgram } from '../ir/fhe/types.js';
import { verifyFhe } from '../ir/fhe/verify.js';
import { printFhe } from '../ir/fhe/print.js';
import type { Pass } from '../passes/pass.js';
import { fhePasses } from '../passes/fhe/registry.js';
import type { FheUnit } from '../passes/fhe/pipeline/unit.js';

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

export interface FhePipelineOptions {
  /** --print-after PASS (repeatable) or --print-after-all: the FHE IR, annotations included. */
  printAfter?: ReadonlySet<string> | 'all';
  emit?: (header: string, text: string) => void;
  /** Verify the program after each pass (the pipeline's own `verify` pass checks where it is placed). */
  verifyEach?: boolean;
  /** Print dense constants with more values than this as `elided N` (default 16; Infinity prints all). */
  elideConstantsAbove?: number;
}

/** Runs an FHE pipeline string (passes/fhe/registry.ts) on a unit; returns each pass's run. */
export function runFhePipeline<T extends { program: FheProgram }>(unit: FheUnit<T>, pipeline: string, opts: FhePipelineOptions = {}): PassRun[] {
  const pm = new PassManager<FheUnit<T>>(fhePasses as ReadonlyMap<string, Pass<FheUnit<T>, any>>, {
    verify: (u) => verifyFhe(u.program, { managed: !!u.program.chain }),
    verifyEach: opts.verifyEach ?? false,
    print: (u) => printFhe(u.program, { elideConstantsAbove: opts.elideConstantsAbove ?? 16 }),
    printAfter: opts.printAfter,
    emit: opts.emit,
  });
  pm.addPipeline(pipeline);
  return pm.run(unit);
}
