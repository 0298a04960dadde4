// `fhec run PLAN.json --inputs IN.json [--out OUT.json] [--backend seal|sim] [--insecure]`:
// encrypts the inputs, evaluates the plan on encrypted data (or simulates it), decrypts the outputs.

import { checkOutputs, planFiles } from './outputs.js';
import { FhecError } from '../../ir/errors.js';
import { writeFileAtomic } from '../../runtime/plan/files.js';
import type { Command } from 'commander';
import { availableParallelism } from 'node:os';
import { tensorsFromJson, tensorsToJson } from '../../ir/tensor-json.js';
import { backendByName, runFhePlanFile } from '../fhe-run.js';
import { defaultWorkers, maskFromFlags, MIN_HIDING_BITS_HELP, minHidingBitsOption, readJsonFile, WORKERS_HELP, workersOption, WEIGHT_MEMORY_HELP, weightMemoryOption, MASK_THREAD_HELP, KEY_HOLDER_ROTATIONS_HELP } from './common.js';
import { isModelPlanFile, runModelCommand } from '../model-commands.js';
import type { CkksBackend } from '../../runtime/backend.js';
import { TRACE_KIND, TRACE_VERSION, TraceRecorder, writeRunTrace, type RunTrace } from '../../runtime/trace/run-trace.js';
import { RefreshAudit } from '../../runtime/refresh/audit.js';

interface RunFlags {
  inputs: string;
  out?: string;
  backend: string;
  insecure?: boolean;
  trace?: string;
  auditRefresh?: string;
  minHidingBits?: number;
  workers?: number;
  /** --no-mask-thread (default: the refresh masks on a helper thread, with 2+ cores). */
  maskThread?: boolean;
  /** --key-holder-rotations: the key holder returns the plan's rotations of refresh results (default: the evaluator rotates them). */
  keyHolderRotations?: boolean;
}

/** The trace of a one-program run, all but the refresh traffic. */
function traceHeader(plan: string, backend: CkksBackend, label: string, recorder: TraceRecorder, ops: Record<string, { count: number; ms: number }>, totalMs: number): Omit<RunTrace, 'refresh'> {
  return {
    kind: TRACE_KIND,
    version: TRACE_VERSION,
    command: 'run',
    plan,
    backend: backend.name,
    simulated: backend.simulated,
    label,
    steps: recorder.finish(['program'], [ops]),
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    totalMs,
  };
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(3)} s`;
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run a compiled plan: encrypt the inputs, evaluate under encryption (seal) or simulate (sim), decrypt')
    .argument('<plan>', 'plan file written by `fhec compile`')
    .requiredOption('--inputs <file>', 'tensor JSON: {"inputs": {NAME: {dims, dtype, data}}}')
    .option('--out <file>', 'write {"label", "outputs": {...}} here (default: stdout)')
    .option('--backend <name>', 'seal (real encryption) or sim (CKKS simulation, nothing encrypted)', 'seal')
    .option('--insecure', 'allow running a plan whose parameters are below 128-bit security')
    .option('--trace <run.json>', 'write measured time per op, refresh traffic and peak memory here (for fhec report --run)')
    .option('--audit-refresh <file>', 'write one JSON line per refreshed ciphertext: refresh point, bound, observed max |x| (sim only), hiding bits')
    .option('--min-hiding-bits <bits>', MIN_HIDING_BITS_HELP, minHidingBitsOption())
    .option('--workers <n>', WORKERS_HELP, workersOption())
    .option('--weight-memory <MiB>', WEIGHT_MEMORY_HELP, weightMemoryOption())
    .option('--no-mask-thread', MASK_THREAD_HELP)
    .option('--key-holder-rotations', KEY_HOLDER_ROTATIONS_HELP)
    .action(async (plan: string, opts: RunFlags) => {
      const maskThread = opts.maskThread !== false && availableParallelism() >= 2;
      const keyHolderRotations = opts.keyHolderRotations === true;
      const backend = backendByName(opts.backend);
      const outs = [
        ...(opts.out ? [{ path: opts.out, flag: '--out' }] : []),
        ...(opts.trace ? [{ path: opts.trace, flag: '--trace' }] : []),
        ...(opts.auditRefresh ? [{ path: opts.auditRefresh, flag: '--audit-refresh' }] : []),
      ];
      if (outs.length) checkOutputs(outs, [...planFiles(plan), opts.inputs]);
      const inputs = tensorsFromJson(readJsonFile(opts.inputs), 'inputs', opts.inputs);
      const recorder = opts.trace ? new TraceRecorder() : undefined;
      const audit = opts.auditRefresh !== undefined ? new RefreshAudit(opts.auditRefresh) : undefined;
      const t0 = performance.now();
      if (isModelPlanFile(plan)) {
        // A canonical model's plan: the client embeds the tokens, logits come back by the model's names.
        // Errors about an input (no file of their own) are about the inputs file.
        const m = await runModelCommand(plan, inputs, backend, { ...(recorder ? { trace: recorder } : {}), ...(audit ? { audit } : {}), ...maskFromFlags(opts.minHidingBits), workers: opts.workers ?? defaultWorkers(), maskThread, keyHolderRotations }).catch((e: unknown) => {
          throw e instanceof FhecError && !e.where.file && e.where.field ? new FhecError(e.message, { file: opts.inputs, field: `inputs.${e.where.field}` }) : e;
        });
        audit?.close();
        if (audit) m.lines.push(audit.summary());
        if (recorder && opts.trace) {
          const traffic = m.run.refresh;
          writeRunTrace(opts.trace, {
            ...traceHeader(plan, backend, m.run.label, recorder, Object.fromEntries(m.run.execution.ops), performance.now() - t0),
            refresh: { ciphertexts: traffic?.ciphertexts ?? 0, cacheCiphertexts: 0, rounds: traffic?.roundTrips ?? 0, bytes: (traffic?.bytesToKeyHolder ?? 0) + (traffic?.bytesToEvaluator ?? 0) },
          });
        }
        for (const l of m.lines) (opts.out ? console.log : (s: string) => process.stderr.write(`${s}\n`))(l);
        if (opts.out) writeFileAtomic(opts.out, m.json);
        else console.log(m.json);
        return;
      }
      const r = await runFhePlanFile(plan, inputs, { backend, insecure: opts.insecure, ...(recorder ? { trace: recorder } : {}), ...(audit ? { audit } : {}), ...maskFromFlags(opts.minHidingBits), workers: opts.workers ?? defaultWorkers(), maskThread, keyHolderRotations }, opts.inputs);
      audit?.close();
      if (audit) process.stderr.write(`${audit.summary()}\n`);
      if (recorder && opts.trace) {
        writeRunTrace(opts.trace, { ...traceHeader(plan, backend, r.label, recorder, Object.fromEntries(r.ops), performance.now() - t0), refresh: { ciphertexts: 0, cacheCiphertexts: 0, rounds: 0, bytes: 0 } });
      }
      // The label goes where the user looks: stdout with --out, stderr when stdout carries the JSON.
      const say = opts.out ? (s: string) => console.log(s) : (s: string) => process.stderr.write(`${s}\n`);
      if (r.warning) process.stderr.write(`${r.warning}\n`);
      say(r.label);
      const doc = { label: r.label, backend: backend.name, ...tensorsToJson(r.outputs, 'outputs') };
      const text = JSON.stringify(doc);
      const t = r.timings;
      const ops = [...r.ops.values()].reduce((n, s) => n + s.count, 0);
      say(`keys ${seconds(t.keysMs)}, encrypt ${seconds(t.encryptMs)}, evaluate ${seconds(t.evaluateMs)} (${ops} ops), decrypt ${seconds(t.decryptMs)}`);
      if (opts.out) {
        writeFileAtomic(opts.out, text);
        for (const [name, x] of Object.entries(r.outputs)) console.log(`${name}: ${x.dtype} [${x.dims.join(', ')}]`);
      } else {
        console.log(text);
      }
    });
}
