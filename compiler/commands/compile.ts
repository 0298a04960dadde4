// `fhec compile MODEL.onnx -o PLAN.json [--bind name=value ...] [--insecure] [--print-fhe] [--emit-fhe-ir FILE]`:
// lowers an arithmetic ONNX graph to a CKKS plan (every graph input encrypted, initializers plaintext).

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { compileOnnxToFhe, summarizeFhe, writeFhePlan } from '../fhe-compile.js';
import { collectBinding, collectList, intOption } from './common.js';
import { writePlanModule } from '../emit/load-module.js';
import { FhecError } from '../../ir/errors.js';
import { compileModelCommand } from '../model-commands.js';
import { compileGenerationCommand } from './generate.js';
import { collectInputRange, type DeclaredRanges } from '../input-ranges.js';
import { checkOutputs, modelFiles, type OutputFile } from './outputs.js';
import { writeFileAtomic } from '../../runtime/plan/files.js';
import { graphPasses } from '../../passes/graph/registry.js';
import { canonicalPasses } from '../../passes/canonical/registry.js';
import { fhePasses } from '../../passes/fhe/registry.js';
import { formatPassRuns } from '../../passes/pass-manager.js';
import { loadCostTable } from '../../ir/ckks/cost-table.js';
import { collectInterval, DEFAULT_INTERVALS, estimateModelCost, formatCostEstimate, INTERVAL_KINDS, type AssumedIntervals } from '../cost-estimate.js';

interface CompileFlags {
  /** Required unless --cost-only. */
  output: string;
  /** Price the model without its weights; writes nothing (compiler/cost-estimate.ts). */
  costOnly?: boolean;
  interval: Partial<AssumedIntervals>;
  cores?: number;
  wholeGraph?: boolean;
  /** Canonical transformer models (compiler/model-commands.ts). */
  calibration?: string;
  prefill?: number;
  decode?: number;
  report?: boolean;
  maxWindows?: number;
  /** Reference linear weights in the ONNX external data instead of storing them (the runtime streams them). */
  streamWeights?: boolean;
  /** The model's Hugging Face tokenizer folder for text calibration. */
  tokenizer?: string;
  /** Fix N instead of searching for it (canonical models). */
  ringDegree?: number;
  /** Cost table the parameter search prices candidates with. */
  costs?: string;
  /** Link between evaluator and key holder the search prices refreshes for (ir/ckks/cost-table.ts parseLink). */
  link?: string;
  softmax?: string;
  /** A generation plan for `fhec generate` (compiler/generation-plan.ts). */
  maxContext?: number;
  bind: Record<string, number>;
  insecure?: boolean;
  printFhe?: boolean;
  emitFheIr?: string;
  emit?: string;
  inputRange: DeclaredRanges;
  fhePipeline?: string;
  printAfter: string[];
  printAfterAll?: boolean;
  timing?: boolean;
}

/**
 * Before any work: the plan must be a .json file, and no file compile writes (the plan, its sidecars,
 * --emit-fhe-ir, the emitted .ts) may be one it reads (the model and its external data, the
 * calibration, the cost table) or another of its outputs; output folders must be writable.
 */
function checkCompileFiles(model: string, opts: CompileFlags): void {
  if (!opts.output.endsWith('.json')) throw new FhecError('the plan file name must end in .json', { file: opts.output, field: '--output' });
  const base = opts.output.replace(/\.json$/, '');
  const outputs: OutputFile[] = [
    { path: opts.output, flag: '--output' },
    { path: `${base}.weights.bin`, flag: '--output (its weights sidecar)' },
  ];
  if (opts.calibration) outputs.push({ path: `${base}.embedding.bin`, flag: '--output (its embedding table)' });
  if (opts.emitFheIr) outputs.push({ path: opts.emitFheIr, flag: '--emit-fhe-ir' });
  if (opts.emit === 'ts') outputs.push({ path: `${base}.ts`, flag: '--emit ts' });
  const inputs = [...modelFiles(model), ...(opts.calibration ? [opts.calibration] : []), ...(opts.costs ? [opts.costs] : [])];
  checkOutputs(outputs, inputs);
}

export function registerCompile(program: Command): void {
  program
    .command('compile')
    .description('compile an ONNX model of arithmetic ops (MatMul, Gemm, Add, Sub, Mul, Neg, ...) to an encrypted CKKS plan')
    .argument('<model>', 'ONNX model file')
    .option('-o, --output <plan.json>', 'plan file to write (a .weights.bin sidecar is written beside it); required unless --cost-only')
    .option('--cost-only', 'transformer models: estimate one step\'s CKKS cost without reading weights (ops, rotations, refreshes, keys, bytes, predicted time); writes nothing')
    .option('--interval <kind=lo,hi>', `with --cost-only: an assumed interval (kinds ${INTERVAL_KINDS.join(', ')}; defaults ${INTERVAL_KINDS.map((k) => `${k}=${DEFAULT_INTERVALS[k].join(',')}`).join(' ')})`, collectInterval, {})
    .option('--cores <n>', 'with --cost-only: the larger machine to scale the prediction to (default 64)', intOption('--cores', 1))
    .option('--whole-graph', 'with --cost-only: lower every repeated block (decoder layer) instead of pricing 1 and 2 copies and extrapolating')
    .option('--bind <name=value>', 'bind a symbolic dim (repeatable)', collectBinding, {})
    .option('--input-range <[name=]lo,hi>', 'arithmetic plans: the interval an encrypted input (or every input) lies in; the compiler proves the modulus holds it and the client refuses values outside (default: the widest [-2^k, 2^k] the modulus holds)', collectInputRange, {})
    .option('--insecure', 'allow CKKS parameters below 128-bit security (smaller, faster; NOT SECURE)')
    .option('--print-fhe', 'print the FHE program (as stored in the plan) to stdout')
    .option('--emit-fhe-ir <file>', 'write the FHE program text to a file')
    .option('--emit <kind>', "also emit the plan as code: 'ts' writes PLAN.ts, a typed TypeScript module running the same program through the runtime API (generation plans: one beside each step plan)")
    .option('--calibration <file>', 'transformer models: calibration text (.txt) or tensor JSON; lowers the canonical IR with approximations')
    .option('--prefill <S>', 'with --calibration: plan for a prefill of S tokens', intOption('--prefill', 1))
    .option('--decode <P>', 'with --calibration: plan for one token after P cached ones', intOption('--decode', 1))
    .option('--stream-weights', 'with --calibration: linear weights stored in ONNX external data are referenced (file, offset, length, sha256) instead of written to the plan; run and generate read the rows and columns each matrix block needs, within --weight-memory')
    .option('--max-windows <n>', 'with --calibration: use at most n text windows', intOption('--max-windows', 1))
    .option('--tokenizer <dir>', 'the model\'s Hugging Face tokenizer folder (tokenizer.json, tokenizer_config.json) for text; default: UTF-8 bytes (256-token vocabularies)')
    .option('--ring-degree <N>', 'with --calibration: fix the ring degree N (the longest chain N holds at 128-bit security) instead of searching for the cheapest parameters', intOption('--ring-degree', 1))
    .option('--costs <file>', 'with --calibration: price the parameter search with this cost table (from fhec calibrate-costs; default: the shipped one)')
    .option('--link <spec>', "with --calibration: price refresh round trips over this link to the key holder: 'in-process' (the shipped table's) or rtt=50ms,bandwidth=100Mbit (one round-trip time per refresh round, bytes at the bandwidth)")
    .option('--max-context <C>', 'with --calibration: a generation plan for `fhec generate` (prefill, then decode steps up to C positions; decode plans by buckets of past length, all compiled now)', intOption('--max-context', 2))
    .option('--softmax <method>', "with --calibration: softmax approximation, 'squaring' (normalize-and-square, default) or 'shifted' (one exp and one 1/x of the row sum)")
    .option('--report', 'with --calibration: print depth, rotations and predicted vs observed approximation errors per op')
    .option('--fhe-pipeline <passes>', "the FHE passes to run (default with --calibration 'lower-canonical,select-parameters,place-refresh{strategy=optimal},manage-scales,verify', without 'lower-graph,select-parameters{fit=depth},manage-scales,verify'; fhec opt --list shows them)")
    .option('--print-after <pass>', 'print the IR after this graph, canonical or FHE pass (FHE IR annotated, large constants elided), to stderr (repeatable)', collectList, [])
    .option('--print-after-all', 'print the IR after every pass')
    .option('--timing', 'print per-pass timing to stderr')
    .action((model: string, opts: CompileFlags) => {
      if (opts.costOnly) {
        if (opts.output !== undefined || opts.calibration !== undefined) throw new FhecError('--cost-only writes nothing and reads no calibration: drop -o and --calibration', { field: '--cost-only' });
        if (opts.streamWeights) throw new FhecError('--cost-only reads no weights and writes no plan: drop --stream-weights', { field: '--stream-weights' });
        const e = estimateModelCost(model, {
          ...(opts.prefill !== undefined ? { prefill: opts.prefill } : {}),
          ...(opts.decode !== undefined ? { decode: opts.decode } : {}),
          ...(opts.ringDegree !== undefined ? { ringDegree: opts.ringDegree } : {}),
          ...(opts.costs !== undefined ? { costs: loadCostTable(opts.costs) } : {}),
          intervals: opts.interval,
          ...(opts.cores !== undefined ? { cores: opts.cores } : {}),
          ...(opts.wholeGraph ? { wholeGraph: true } : {}),
        });
        for (const l of formatCostEstimate(e, opts.costs ?? 'the shipped cost table')) console.log(l);
        return;
      }
      if (opts.output === undefined) throw new FhecError('give the plan file with -o PLAN.json (or --cost-only)', { field: '--output' });
      checkCompileFiles(model, opts);
      if (opts.emit !== undefined && opts.emit !== 'ts') throw new FhecError(`--emit supports 'ts', got '${opts.emit}'`, { field: '--emit' });
      const known = new Set([...graphPasses.keys(), ...canonicalPasses.keys(), ...fhePasses.keys()]);
      for (const p of opts.printAfter) if (!known.has(p)) throw new FhecError(`unknown pass '${p}' (known: ${[...known].join(', ')})`, { field: '--print-after' });
      const printAfter = opts.printAfterAll ? ('all' as const) : opts.printAfter.length ? new Set(opts.printAfter) : undefined;
      if (opts.calibration && opts.maxContext !== undefined) {
        for (const l of compileGenerationCommand(model, { ...opts, calibration: opts.calibration, maxContext: opts.maxContext })) console.log(l);
        return;
      }
      if (opts.calibration) {
        return compileModelCommand(model, { ...opts, calibration: opts.calibration, printAfter }).then((lines) => {
          for (const l of lines) console.log(l);
          if (opts.emit === 'ts') console.log(`wrote ${writePlanModule(opts.output)}`);
        });
      }
      // Arithmetic plans keep their (small, per-product) weights in the plan.
      if (opts.streamWeights) throw new FhecError('--stream-weights is for transformer models compiled with --calibration', { field: '--stream-weights' });
      const compiled = compileOnnxToFhe(model, { bindings: opts.bind, insecure: opts.insecure, inputRanges: opts.inputRange, printAfter, ...(opts.fhePipeline !== undefined ? { fhePipeline: opts.fhePipeline } : {}) });
      if (opts.timing) process.stderr.write(`${formatPassRuns(compiled.passRuns)}\n`);
      if (compiled.warning) process.stderr.write(`${compiled.warning}\n`);
      const { weights, programText } = writeFhePlan(opts.output, compiled);
      console.log(`compiled ${model} -> ${opts.output} (weights ${weights})`);
      if (compiled.warning) console.log(compiled.warning);
      for (const line of summarizeFhe(compiled)) console.log(line);
      if (opts.emitFheIr) writeFileAtomic(opts.emitFheIr, programText);
      // The same module as for model plans: one PlanRuntime call per op, read from the written plan.
      if (opts.emit === 'ts') console.log(`wrote ${writePlanModule(opts.output)}`);
      if (opts.printFhe) process.stdout.write(programText);
    });
}
