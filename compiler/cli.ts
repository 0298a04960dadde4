// The `fhec` command line. Each verb lives in compiler/commands/<verb>.ts and registers itself here.
// User errors (FhecError) print one line and exit 2; anything else is a bug and exits 1.

import { Command, CommanderError } from 'commander';
import { FhecError } from '../ir/errors.js';
import { registerCalibrate } from './commands/calibrate.js';
import { registerCalibrateCosts } from './commands/calibrate-costs.js';
import { registerCompile } from './commands/compile.js';
import { registerRun } from './commands/run.js';
import { registerGenerate } from './commands/generate.js';
import { registerAccuracy } from './commands/accuracy.js';
import { registerEval } from './commands/eval.js';
import { registerInspect } from './commands/inspect.js';
import { registerIr } from './commands/ir.js';
import { registerOpt } from './commands/opt.js';
import { opsetPolicy } from './onnx/opsets.js';
import { registerReport } from './commands/report.js';
import { registerServe } from './commands/serve.js';
import { registerClient } from './commands/client.js';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('fhec')
    .description('Compile ONNX models to CKKS homomorphic-encryption circuits and run them on Microsoft SEAL')
    .version('0.1.0')
    // A usage error is one line and a hint, not the whole usage text.
    .showHelpAfterError('(add --help for usage)')
    .option('--allow-newer-opset', 'evaluate models whose opset is newer than fhec implements, with the newest semantics it knows (warns)')
    .exitOverride();
  program.hook('preAction', () => {
    opsetPolicy.allowNewer = !!program.opts().allowNewerOpset;
  });
  registerInspect(program);
  registerEval(program);
  registerIr(program);
  registerOpt(program);
  registerCalibrate(program);
  registerCalibrateCosts(program);
  registerCompile(program);
  registerRun(program);
  registerGenerate(program);
  registerAccuracy(program);
  registerReport(program);
  registerServe(program);
  registerClient(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  // `fhec ir model | head` closes stdout early: that is not an error.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode === 0 ? 0 : 2;
      return;
    }
    if (e instanceof FhecError) {
      process.stderr.write(`fhec: error: ${e.format()}\n`);
      process.exitCode = 2;
      return;
    }
    const err = e as Error;
    process.stderr.write(`fhec: internal error: ${err?.message ?? String(e)}\n`);
    if (process.env.FHEC_DEBUG) process.stderr.write(`${err?.stack}\n`);
    process.exitCode = 1;
  }
}
