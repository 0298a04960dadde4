// `fhec compile MODEL.onnx -o PLAN.json [--bind name=value ...] [--insecure] [--print-fhe] [--emit-fhe-ir FILE]`:
// lowers an arithmetic ONNX graph to a CKKS plan (every graph input encrypted, initializers plaintext).

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { compileOnnxToFhe, summarizeFhe, writeFhePlan } from '../fhe-compile.js';
import { collectBinding } from './common.js';
import { emitTypeScript } from '../emit/typescript.js';
import { FhecError } from '../../ir/errors.js';
import { compileModelCommand } from '../model-commands.js';
import { compileGenerationCommand } from './generate.js';

interface CompileFlags {
  output: string;
  /** Canonical transformer models (compiler/model-commands.ts). */
  calibration?: string;
  prefill?: number;
  decode?: number;
  report?: boolean;
  maxWindows?: number;
  /** Fix N instead of searching for it (canonical models). */
  ringDegree?: number;
  /** Cost table the parameter search prices candidates with. */
  costs?: string;
  softmax?: string;
  /** A generation plan for `fhec generate` (compiler/generation-plan.ts). */
  maxContext?: number;
  bind: Record<string, number>;
  insecure?: boolean;
  printFhe?: boolean;
  emitFheIr?: string;
  emit?: string;
}

export function registerCompile(program: Command): void {
  program
    .command('compile')
    .description('compile an ONNX model of arithmetic ops (MatMul, Gemm, Add, Sub, Mul, Neg, ...) to an encrypted CKKS plan')
    .argument('<model>', 'ONNX model file')
    .requiredOption('-o, --output <plan.json>', 'plan file to write (a .weights.bin sidecar is written beside it)')
    .option('--bind <name=value>', 'bind a symbolic dim (repeatable)', collectBinding, {})
    .option('--insecure', 'allow CKKS parameters below 128-bit security (smaller, faster; NOT SECURE)')
    .option('--print-fhe', 'print the FHE program (as stored in the plan) to stdout')
    .option('--emit-fhe-ir <file>', 'write the FHE program text to a file')
    .option('--emit <kind>', "also emit the plan as code: 'ts' writes PLAN.ts, a typed TypeScript module running the same program through the runtime API")
    .option('--calibration <file>', 'transformer models: calibration text (.txt) or tensor JSON; lowers the canonical IR with approximations')
    .option('--prefill <S>', 'with --calibration: plan for a prefill of S tokens', Number)
    .option('--decode <P>', 'with --calibration: plan for one token after P cached ones', Number)
    .option('--max-windows <n>', 'with --calibration: use at most n text windows', Number)
    .option('--ring-degree <N>', 'with --calibration: fix the ring degree N (the longest chain N holds at 128-bit security) instead of searching for the cheapest parameters', Number)
    .option('--costs <file>', 'with --calibration: price the parameter search with this cost table (from fhec calibrate-costs; default: the shipped one)')
    .option('--max-context <C>', 'with --calibration: a generation plan for `fhec generate` (prefill, then decode steps up to C positions)', Number)
    .option('--softmax <method>', "with --calibration: softmax approximation, 'squaring' (normalize-and-square, default) or 'shifted' (one exp and one 1/x of the row sum)")
    .option('--report', 'with --calibration: print depth, rotations and predicted vs observed approximation errors per op')
    .action((model: string, opts: CompileFlags) => {
      if (opts.calibration && opts.maxContext !== undefined) {
        for (const l of compileGenerationCommand(model, { ...opts, calibration: opts.calibration, maxContext: opts.maxContext })) console.log(l);
        return;
      }
      if (opts.calibration) {
        return compileModelCommand(model, { ...opts, calibration: opts.calibration }).then((lines) => {
          for (const l of lines) console.log(l);
        });
      }
      if (opts.emit !== undefined && opts.emit !== 'ts') throw new FhecError(`--emit supports 'ts', got '${opts.emit}'`, { field: '--emit' });
      const compiled = compileOnnxToFhe(model, { bindings: opts.bind, insecure: opts.insecure });
      if (compiled.warning) process.stderr.write(`${compiled.warning}\n`);
      fs.mkdirSync(path.dirname(path.resolve(opts.output)), { recursive: true });
      const { weights, programText } = writeFhePlan(opts.output, compiled);
      console.log(`compiled ${model} -> ${opts.output} (weights ${weights})`);
      if (compiled.warning) console.log(compiled.warning);
      for (const line of summarizeFhe(compiled)) console.log(line);
      if (opts.emitFheIr) fs.writeFileSync(opts.emitFheIr, programText);
      if (opts.emit === 'ts') {
        // After the plan is written: the emitter checks the plan holds this very program.
        const tsFile = opts.output.replace(/\.json$/, '') + '.ts';
        fs.writeFileSync(tsFile, emitTypeScript(compiled.program, { planFile: opts.output }));
        console.log(`wrote ${tsFile}`);
      }
      if (opts.printFhe) process.stdout.write(programText);
    });
}
