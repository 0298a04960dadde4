// `fhec generate PLAN --prompt TEXT --max-new-tokens N [--backend seal|sim]`: greedy generation from
// an encrypted prompt. A client (secret key, byte tokenizer, embedding table) and an evaluator (public
// keys, step plans, encrypted KV cache) run in this process and exchange byte messages only; the
// prefill runs first, then one decode step per token, with a progress bar on stderr. Prints the
// generated text, then a summary: per-token latency, ops by kind, rotations, refreshes, bytes
// exchanged with the key holder, peak memory, and whether this was SEAL or a simulation.
// Also `compileGenerationCommand`, the `--max-context` branch of `fhec compile`.

import { tableWithLink } from '../model-commands.js';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import type { Command } from 'commander';
import { FhecError } from '../../ir/errors.js';
import { loadClientModel } from '../../runtime/generate/manifest.js';
import { shapeName, type StepPlan } from '../../runtime/generate/plan-source.js';
import { EmittedModules, writePlanModule } from '../emit/load-module.js';
import * as path from 'node:path';
import { formatGenerationSummary, generateInProcess, type GenerationRun } from '../../runtime/generate/session.js';
import { backendByName } from '../fhe-run.js';
import { compileGenerationPlan, GenerationPlanStore } from '../generation-plan.js';
import { readCheckedFile } from '../../runtime/plan/files.js';
import { checkOutputs, planFiles } from './outputs.js';
import { defaultWorkers, intOption, maskFromFlags, MIN_HIDING_BITS_HELP, minHidingBitsOption, WORKERS_HELP, workersOption, WEIGHT_MEMORY_HELP, weightMemoryOption, MASK_THREAD_HELP, KEY_HOLDER_THREAD_HELP, KEY_HOLDER_ROTATIONS_HELP } from './common.js';
import { TRACE_KIND, TRACE_VERSION, TraceRecorder, writeRunTrace } from '../../runtime/trace/run-trace.js';
import { decodeStepsSplit, formatStageSplit } from '../../runtime/trace/stage-split.js';
import { RefreshAudit } from '../../runtime/refresh/audit.js';

export interface Bar {
  start(total: number, value: number, payload?: Record<string, string>): void;
  update(value: number, payload?: Record<string, string>): void;
  stop(): void;
}
interface CliProgress {
  SingleBar: new (opts: Record<string, unknown>, preset?: unknown) => Bar;
  Presets: Record<string, unknown>;
}
// cli-progress ships no types: the little we use, typed here.
const cliProgress = createRequire(import.meta.url)('cli-progress') as CliProgress;

/** The steps progress bar on stderr (fhec generate, fhec client generate). */
export function stepsBar(total: number): Bar {
  const bar = new cliProgress.SingleBar({ stream: process.stderr, format: '{bar} {value}/{total} steps | {step} | last {ms}', hideCursor: false }, cliProgress.Presets['shades_classic']);
  bar.start(total, 0, { step: '', ms: '' });
  return bar;
}

export interface GenerateFlags {
  prompt?: string;
  /** The prompt's bytes from a file: valid UTF-8 unless `promptBytes`. */
  promptFile?: string;
  promptBytes?: boolean;
  maxNewTokens: number;
  backend: string;
  /** Draw the progress bar (default: when stderr is a terminal... or always with --progress). */
  progress?: boolean;
  /** Write a run trace (runtime/trace/run-trace.ts) here. */
  trace?: string;
  /** One JSON line per refreshed or carried ciphertext (runtime/refresh/audit.ts). */
  auditRefresh?: string;
  /** Floor on the refresh masks' hiding, bits per ciphertext (default 40). */
  minHidingBits?: number;
  /** Run the step plans' emitted TypeScript modules (`fhec compile --emit ts`) instead of their programs. */
  emitted?: boolean;
  /** The Hugging Face tokenizer folder (default: the one the plan was compiled with). */
  tokenizer?: string;
  /** Evaluation worker threads (default: the core count). */
  workers?: number;
  /** --no-mask-thread: the refresh masks on the evaluator's thread (default: a helper thread, with 2+ cores; MASK_THREAD_HELP). */
  maskThread?: boolean;
  /** --no-key-holder-thread: the key holder's refresh rounds on the calling thread (default: a thread of their own). */
  keyHolderThread?: boolean;
  /** --key-holder-rotations: the key holder returns the plan's rotations of refresh results (default: the evaluator rotates them). */
  keyHolderRotations?: boolean;
}

export interface GenerateOutput {
  run: GenerationRun;
  lines: string[];
}

async function generateCommand(planFile: string, flags: GenerateFlags): Promise<GenerateOutput> {
  const backend = backendByName(flags.backend);
  const prompt = promptOf(flags);
  const N = flags.maxNewTokens;
  if (!Number.isInteger(N) || N < 1) throw new FhecError(`--max-new-tokens must be a positive integer, got ${flags.maxNewTokens}`, { field: '--max-new-tokens' });
  const outs = [...(flags.trace ? [{ path: flags.trace, flag: '--trace' }] : []), ...(flags.auditRefresh ? [{ path: flags.auditRefresh, flag: '--audit-refresh' }] : [])];
  if (outs.length) checkOutputs(outs, [...planFiles(planFile), ...(flags.promptFile ? [flags.promptFile] : [])]);
  const model = loadClientModel(planFile, flags.tokenizer);
  if (flags.promptBytes && model.tokenizer !== undefined && model.tokenizer !== 'bytes') {
    throw new FhecError('--prompt-bytes feeds raw bytes to a byte-level model; this plan uses a Hugging Face tokenizer, which reads UTF-8 text', { field: '--prompt-bytes' });
  }
  const compileLines: string[] = [];
  let bar: Bar | undefined;
  const store = new GenerationPlanStore(planFile, {
    onCompile: (shape, ms) => {
      if (ms === undefined) process.stderr.write(`compiling step plan ${shapeName(shape)} (first use)...\n`);
      else compileLines.push(`compiled ${shapeName(shape)} in ${(ms / 1000).toFixed(1)} s`);
    },
  });
  const show = flags.progress ?? true;
  const recorder = flags.trace ? new TraceRecorder() : undefined;
  const audit = flags.auditRefresh !== undefined ? new RefreshAudit(flags.auditRefresh) : undefined;
  const modules = flags.emitted ? new EmittedModules() : undefined;
  const run = await generateInProcess(store, backend, model, prompt, N, {
    ...(modules ? { emitted: (sp: StepPlan) => modules.forPlan(sp.plan.file) } : {}),
    ...(recorder ? { trace: recorder } : {}),
    ...(audit ? { audit } : {}),
    ...maskFromFlags(flags.minHidingBits),
    workers: flags.workers ?? defaultWorkers(),
    maskSupply: flags.maskThread !== false && availableParallelism() >= 2,
    keyHolderThread: flags.keyHolderThread !== false,
    keyHolderRotations: flags.keyHolderRotations === true,
    onStep: (done, total, rec) => {
      if (!show) return;
      bar ??= stepsBar(total);
      bar.update(done, { step: shapeName(rec.shape), ms: `${(rec.ms / 1000).toFixed(2)} s` });
      if (done === total) bar.stop();
    },
  });
  audit?.close();
  const lines = [...compileLines, ...formatGenerationSummary(run)];
  if (modules) lines.push(`ran the step plans' emitted TypeScript modules${modules.emitted.length ? ` (emitted now: ${modules.emitted.map((f) => path.basename(f)).join(', ')})` : ''}`);
  if (recorder && flags.trace) {
    const steps = run.result.steps;
    const k = run.keyHolderChannel;
    writeRunTrace(flags.trace, {
      kind: TRACE_KIND,
      version: TRACE_VERSION,
      command: 'generate',
      plan: planFile,
      backend: backend.name,
      simulated: run.simulated,
      label: run.label,
      steps: recorder.finish(
        steps.map((s) => shapeName(s.shape)),
        steps.map((s) => s.evaluator.ops),
      ),
      refresh: { ciphertexts: run.refreshes, cacheCiphertexts: run.cacheRefreshes, rounds: k.roundTrips, bytes: k.bytesSent + k.bytesReceived },
      peakRssBytes: run.peakRss,
      totalMs: run.totalMs,
    });
    lines.push(`trace written to ${flags.trace}`);
    // Where the decode steps' time went between refresh rounds (runtime/trace/stage-split.ts); one evaluator
    // thread only: on workers the ops' times overlap, so their sums say nothing of the chain.
    const split = steps.every((s) => !s.evaluator.parallel) ? decodeStepsSplit(steps, recorder.steps, (i) => store.load(steps[i]!.shape).plan.plan.program) : undefined;
    if (split) lines.push(`decode steps by refresh stage, mean per token: ${formatStageSplit(split)}`);
  }
  if (store.compiled.length > 0) lines.push(`step plans compiled during this run: ${store.compiled.length} (${(store.compiled.reduce((s, c) => s + c.ms, 0) / 1000).toFixed(1)} s, not counted in the latencies above)`);
  return { run, lines };
}

/**
 * The prompt as the byte tokenizer will see it. Text that is not valid UTF-8 is refused, never
 * replaced: a shell argument with invalid bytes reaches us with U+FFFD in their place (which would
 * change the tokens), so --prompt refuses U+FFFD; arbitrary bytes come from --prompt-file with --prompt-bytes.
 */
function promptOf(flags: GenerateFlags): string | Uint8Array {
  if ((flags.prompt === undefined) === (flags.promptFile === undefined)) {
    throw new FhecError('give the prompt with --prompt TEXT or --prompt-file FILE (exactly one)', { field: '--prompt' });
  }
  if (flags.prompt !== undefined) {
    if (flags.promptBytes) throw new FhecError('--prompt-bytes applies to --prompt-file', { field: '--prompt-bytes' });
    if (flags.prompt.length === 0) throw new FhecError('--prompt must be a non-empty text', { field: '--prompt' });
    const at = flags.prompt.indexOf('\uFFFD');
    if (at >= 0) {
      throw new FhecError(
        `character ${at} is U+FFFD, what invalid UTF-8 bytes become: the prompt must be valid UTF-8 (for raw bytes use --prompt-file FILE --prompt-bytes)`,
        { field: '--prompt' },
      );
    }
    return flags.prompt;
  }
  const file = flags.promptFile!;
  const bytes = readCheckedFile(file, 'prompt file');
  if (bytes.length === 0) throw new FhecError('the prompt file is empty', { file, field: '--prompt-file' });
  if (!flags.promptBytes) {
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      throw new FhecError('the prompt is not valid UTF-8 (pass --prompt-bytes to tokenize its bytes as they are)', { file, field: '--prompt-file' });
    }
  }
  return bytes;
}

export function registerGenerate(program: Command): void {
  program
    .command('generate')
    .description('generate text greedily from an encrypted prompt: prefill, then decode steps with an encrypted KV cache')
    .argument('<plan>', 'generation plan written by `fhec compile MODEL -o PLAN --calibration FILE --max-context C`')
    .option('--prompt <text>', 'prompt text (must be valid UTF-8; tokenized by the plan\'s tokenizer, or as UTF-8 bytes)')
    .option('--prompt-file <file>', 'read the prompt from a file (valid UTF-8, or any bytes with --prompt-bytes)')
    .option('--prompt-bytes', 'with --prompt-file: tokenize the file\'s bytes as they are, UTF-8 or not')
    .requiredOption('--max-new-tokens <n>', 'tokens to generate', intOption('--max-new-tokens', 1))
    .option('--backend <name>', 'seal (real encryption) or sim (CKKS simulation, nothing encrypted)', 'seal')
    .option('--no-progress', 'no progress bar')
    .option('--trace <run.json>', 'write measured time per op and step, refresh traffic and peak memory here (for fhec report --run)')
    .option('--audit-refresh <file>', 'write one JSON line per refreshed or carried ciphertext: step, refresh point, bound, observed max |x| (sim only), hiding bits')
    .option('--min-hiding-bits <bits>', MIN_HIDING_BITS_HELP, minHidingBitsOption())
    .option('--emitted', 'run each step plan\'s emitted TypeScript module (fhec compile --emit ts; emitted on first use if missing) instead of its program')
    .option('--tokenizer <dir>', 'the model\'s Hugging Face tokenizer folder (default: the one the plan was compiled with; its tokenizer.json must be the same)')
    .option('--workers <n>', WORKERS_HELP, workersOption())
    .option('--weight-memory <MiB>', WEIGHT_MEMORY_HELP, weightMemoryOption())
    .option('--no-mask-thread', MASK_THREAD_HELP)
    .option('--no-key-holder-thread', KEY_HOLDER_THREAD_HELP)
    .option('--key-holder-rotations', KEY_HOLDER_ROTATIONS_HELP)
    .action(async (plan: string, opts: GenerateFlags) => {
      const out = await generateCommand(plan, opts);
      const r = out.run.result;
      process.stdout.write(`${r.text}\n`);
      for (const l of out.lines) process.stderr.write(`${l}\n`);
    });
}

export interface GenerationCompileFlags {
  output: string;
  calibration: string;
  maxContext: number;
  prefill?: number;
  decode?: number;
  maxWindows?: number;
  placement?: 'optimal' | 'greedy';
  ringDegree?: number;
  /** A cost table from `fhec calibrate-costs` for the parameter search. */
  costs?: string;
  /** 'ts': a TypeScript module beside each step plan compiled now (later ones are emitted on first use by generate --emitted). */
  emit?: string;
  /** The model's Hugging Face tokenizer folder (default: UTF-8 bytes). */
  tokenizer?: string;
  /** --link: the link to the key holder the search prices refreshes for. */
  link?: string;
  /** Reference linear weights in the ONNX external data instead of storing them (the runtime streams them). */
  streamWeights?: boolean;
}

/** `fhec compile MODEL -o PLAN --calibration FILE --max-context C [--prefill S]`: lines to print. */
export function compileGenerationCommand(model: string, flags: GenerationCompileFlags): string[] {
  if (flags.decode !== undefined) throw new FhecError('--max-context makes the decode plans itself (one per bucket of past length): drop --decode', { field: '--decode' });
  const c = compileGenerationPlan(model, flags.output, {
    calibration: flags.calibration,
    maxContext: flags.maxContext,
    prefill: flags.prefill !== undefined ? [flags.prefill] : undefined,
    maxWindows: flags.maxWindows,
    placement: flags.placement,
    ringDegree: flags.ringDegree,
    ...(flags.tokenizer !== undefined ? { tokenizer: flags.tokenizer } : {}),
    ...(flags.streamWeights ? { streamWeights: true } : {}),
    ...(flags.costs !== undefined || flags.link !== undefined ? { costs: tableWithLink(flags.costs, flags.link)! } : {}),
  });
  const modules = flags.emit === 'ts' ? c.stepPlans.map(writePlanModule) : [];
  return [...c.lines, `wrote ${[...c.files, ...modules].join(', ')}`];
}
