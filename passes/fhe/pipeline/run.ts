// Runs an FHE pipeline string on a unit with the PassManager the graph and canonical halves use:
// verification, --print-after (the annotated FHE IR text), timing and each pass's result.

import type { FheProgram } from '../../../ir/fhe/types.js';
import { verifyFhe } from '../../../ir/fhe/verify.js';
import { printFhe } from '../../../ir/fhe/print.js';
import type { Pass } from '../../pass.js';
import { PassManager, type PassRun } from '../../pass-manager.js';
import { fhePasses } from '../registry.js';
import type { FheUnit } from './unit.js';

export interface FhePipelineOptions {
  /** --print-after PASS (repeatable) or --print-after-all: the FHE IR, annotations included. */
  printAfter?: ReadonlySet<string> | 'all';
  emit?: (header: string, text: string) => void;
  /** Verify the program after each pass (the pipeline's own `verify` pass checks where it is placed). */
  verifyEach?: boolean;
  /** Print dense constants with more values than this as `elided N` (default 16; Infinity prints all). */
  elideConstantsAbove?: number;
}

/** Runs `pipeline` (e.g. 'place-refresh{levels=3},manage-scales,verify') on the unit; returns each pass's run. */
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
