// Run traces: what `fhec run --trace RUN.json` and `fhec generate --trace RUN.json` write and
// `fhec report --run RUN.json` puts beside the plan's predictions. A trace holds, per executed program
// (one for a run, one per prefill/decode step of a generation), the measured time of every op in
// program order (so the report can sum it by kernel with the plan's analysis), totals per op kind,
// the resident memory after the step, and for the whole run the refresh round trips and bytes
// exchanged with the key holder and the peak resident memory.

import * as fs from 'node:fs';
import { z } from 'zod';
import { FhecError } from '../../ir/errors.js';
import type { FheProgram } from '../../ir/fhe/types.js';
import type { ExecutionTrace } from '../ckks/execute.js';
import { nonNegInt, nonNegNumber, parseWith } from '../plan/validate.js';
import { writeFileAtomic } from '../plan/files.js';

export const TRACE_KIND = 'fhec-run-trace';
export const TRACE_VERSION = 1;

const kindRow = z.strictObject({ kind: z.string(), count: nonNegInt(), ms: nonNegNumber() });

const stepSchema = z.strictObject({
  /** The step: 'program' for `fhec run`, the step plan's name (prefill-4, decode-5) for a generation. */
  name: z.string(),
  ops: nonNegInt(),
  totalMs: nonNegNumber(),
  /** Measured ms of each op, in program order. */
  opMs: z.array(nonNegNumber()),
  byKind: z.array(kindRow),
  /** Resident set size when the step ended (bytes). */
  rssBytes: nonNegNumber(),
});

const runTraceSchema = z.strictObject({
  kind: z.literal(TRACE_KIND),
  version: z.literal(TRACE_VERSION),
  command: z.enum(['run', 'generate']),
  /** The plan file the run used, as given on the command line. */
  plan: z.string(),
  backend: z.string(),
  simulated: z.boolean(),
  label: z.string(),
  steps: z.array(stepSchema),
  refresh: z.strictObject({
    /** Ciphertexts refreshed by refresh ops, and KV-cache ciphertexts carried between steps. */
    ciphertexts: nonNegInt(),
    cacheCiphertexts: nonNegInt(),
    /** Messages to the key holder and back, and their bytes. */
    rounds: nonNegInt(),
    bytes: nonNegNumber(),
  }),
  peakRssBytes: nonNegNumber(),
  totalMs: nonNegNumber(),
});

export type RunTrace = z.infer<typeof runTraceSchema>;
export type TraceStep = z.infer<typeof stepSchema>;

/** Collects op timings from executeProgram; steps are named by the caller in execution order. */
export class TraceRecorder implements ExecutionTrace {
  readonly steps: TraceStep[] = [];
  private current?: { ops: number; opMs: number[]; t0: number };

  begin(program: FheProgram): void {
    this.current = { ops: program.ops.length, opMs: new Array<number>(program.ops.length).fill(0), t0: performance.now() };
  }

  op(index: number, _kind: string, ms: number): void {
    if (this.current) this.current.opMs[index] = ms;
  }

  end(): void {
    const c = this.current;
    if (!c) return;
    this.current = undefined;
    this.steps.push({ name: `step ${this.steps.length}`, ops: c.ops, totalMs: performance.now() - c.t0, opMs: c.opMs.map((x) => Math.round(x * 1e4) / 1e4), byKind: [], rssBytes: process.memoryUsage().rss });
  }

  /** Names the recorded steps and adds their per-kind totals (from the runner's own counters). */
  finish(names: string[], byKind: Record<string, { count: number; ms: number }>[]): TraceStep[] {
    if (names.length !== this.steps.length) throw new Error(`internal: ${this.steps.length} traced programs for ${names.length} steps`);
    this.steps.forEach((s, i) => {
      s.name = names[i]!;
      s.byKind = Object.entries(byKind[i] ?? {}).map(([kind, v]) => ({ kind, count: v.count, ms: v.ms }));
    });
    return this.steps;
  }
}

export function writeRunTrace(file: string, trace: RunTrace): void {
  try {
    writeFileAtomic(file, JSON.stringify(parseWith(runTraceSchema, trace, file, 'trace')));
  } catch (e) {
    if (e instanceof FhecError) throw e;
    throw new FhecError(`cannot write the trace (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { file });
  }
}

export function readRunTrace(file: string): RunTrace {
  let doc: unknown;
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FhecError(code ? `cannot read the trace (${code})` : `trace is not valid JSON: ${(e as Error).message}`, { file });
  }
  return parseWith(runTraceSchema, doc, file, 'trace');
}
