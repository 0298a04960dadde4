// `fhec compile MODEL.onnx -o PLAN.json [--bind name=value ...] [--insecure] [--print-fhe] [--emit-fhe-ir FILE]`:
// lowers an arithmetic ONNX graph to a CKKS plan (every graph input encrypted, initializers plaintext).

import * as fs from 'node:fs';
import type { Command } from 'commander';
import { compileOnnxToFhe, summarizeFhe, writeFhePlan } from '../fhe-compile.js';
import { collectBinding } from './common.js';

interface CompileFlags {
  output: string;
  bind: Record<string, number>;
  insecure?: boolean;
  printFhe?: boolean;
  emitFheIr?: string;
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
    .action((model: string, opts: CompileFlags) => {
      const compiled = compileOnnxToFhe(model, { bindings: opts.bind, insecure: opts.insecure });
      if (compiled.warning) process.stderr.write(`${compiled.warning}\n`);
      const { weights, programText } = writeFhePlan(opts.output, compiled);
      console.log(`compiled ${model} -> ${opts.output} (weights ${weights})`);
      if (compiled.warning) console.log(compiled.warning);
      for (const line of summarizeFhe(compiled)) console.log(line);
      if (opts.emitFheIr) fs.writeFileSync(opts.emitFheIr, programText);
      if (opts.printFhe) process.stdout.write(programText);
    });
}
