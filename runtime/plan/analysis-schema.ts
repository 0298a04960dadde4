// The `analysis` section of a plan (written by `fhec compile`, read by `fhec report`): what the
// compiler knew when it made the plan and the program text alone does not say: which kernel (source
// node) each managed op came from, where the greedy baseline would have refreshed, the candidates the
// parameter search priced, the predicted cost of every kernel under the cost table used, and the
// predicted precision of the values. Optional: runners ignore it, and a plan without it still reports
// what its program shows (levels, op counts).

import { z } from 'zod';
import { int, nonNegInt, nonNegNumber, parseWith, posInt } from './validate.js';

export const ANALYSIS_KIND = 'fhec-plan-analysis';

const kernelSchema = z.strictObject({
  /** The source node's name. */
  name: z.string(),
  /** Its op (linear, attention, MatMul, ...). */
  op: z.string(),
  /** Decoder layer, when the node's name says one. */
  layer: z.string().nullable(),
  /** Multiplicative depth of its results from the program inputs, refreshes not counted. */
  depth: nonNegInt(),
  /** Approximations the lowering made for it (function names). */
  approximations: z.array(z.string()),
});

const candidateSchema = z.strictObject({
  ringDegree: posInt(),
  scaleBits: posInt(),
  levels: nonNegInt(),
  bitSizes: z.array(posInt()),
  modulusBits: nonNegInt(),
  securityLimit: nonNegInt(),
  refreshes: nonNegInt().optional(),
  /** Refresh rounds (messages to the key holder) and the bytes their refreshes carry both ways. */
  rounds: nonNegInt().optional(),
  refreshBytes: nonNegNumber().optional(),
  outputBits: z.number().nullable().optional(),
  keyBytes: nonNegNumber().optional(),
  latencyMs: nonNegNumber().optional(),
  feasible: z.boolean(),
  reason: z.string().optional(),
});

const precisionValueSchema = z.tuple([nonNegInt(), z.number(), z.number()]);

const analysisSectionSchema = z.strictObject({
  kind: z.literal(ANALYSIS_KIND),
  kernels: z.array(kernelSchema),
  /**
   * The kernel of each managed op, run-length encoded: [kernel, count, kernel, count, ...] in program
   * order (-1: ops no kernel made, e.g. outputs). Ops scale management adds are the consumer's kernel's.
   */
  opKernels: z.array(int()).refine((r) => r.length % 2 === 0, { error: 'expected runs [kernel, count, ...]' }),
  refreshes: z.strictObject({
    placement: z.enum(['optimal', 'greedy', 'none']),
    /** Kernel of each refresh the greedy baseline places on the same program and chain. */
    greedyKernels: z.array(int()),
  }),
  /** The parameter search's candidates (absent when N was fixed). */
  candidates: z.array(candidateSchema).optional(),
  /** Predicted latency under the cost table the compiler used. */
  predicted: z
    .strictObject({
      costTable: z.string(),
      totalMs: nonNegNumber(),
      /** ms per kernel (index as in kernels), then the ops no kernel made. */
      kernelMs: z.array(nonNegNumber()),
      otherMs: nonNegNumber(),
      byKind: z.array(z.strictObject({ kind: z.string(), count: nonNegInt(), ms: nonNegNumber() })),
      refreshBytes: nonNegNumber(),
    })
    .optional(),
  /** Why there is no prediction. */
  predictedNote: z.string().optional(),
  precision: z
    .strictObject({
      /** [managed op index, bound bits, typical bits] of ciphertext values (a sample when many). */
      values: z.array(precisionValueSchema),
      outputs: z.array(z.strictObject({
          tensor: z.string(),
          /** null: no finite bound (the worst-case bound diverged). */
          bits: z.number().nullable(),
          typicalBits: z.number().nullable(),
          requiredBits: z.number().optional(),
        }),),
      note: z.string().optional(),
    })
    .optional(),
  precisionNote: z.string().optional(),
  /** Error targets of the approximations (canonical models). */
  targets: z.record(z.string(), z.number()).optional(),
});

/**
 * A generation plan's parameter search (its step plans all share the parameters it chose, so none of
 * them carries the candidates): STEPS/parameter-search.json.
 */
export const PARAMETER_SEARCH_FILE = 'parameter-search.json';
export const parameterSearchSchema = z.strictObject({
  /** The step plan the search ran on. */
  step: z.string(),
  chosen: z.strictObject({ ringDegree: posInt(), levels: nonNegInt() }),
  candidates: z.array(candidateSchema),
});
export type ParameterSearchRecord = z.infer<typeof parameterSearchSchema>;

export type PlanAnalysis = z.infer<typeof analysisSectionSchema>;
export type CandidateRow = z.infer<typeof candidateSchema>;

export function parseAnalysis(section: unknown, file: string): PlanAnalysis {
  return parseWith(analysisSectionSchema, section, file, 'plan', ['analysis']);
}

/** Expands the run-length kernel list to one kernel index per op. */
export function expandOpKernels(runs: readonly number[], ops: number): Int32Array {
  const out = new Int32Array(ops).fill(-1);
  let at = 0;
  for (let i = 0; i + 1 < runs.length; i += 2) for (let k = 0; k < runs[i + 1]! && at < ops; k++) out[at++] = runs[i]!;
  return out;
}
