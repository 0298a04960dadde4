// `fhec opt FILE.fhe --pipeline 'place-refresh{levels=3},manage-scales' [-o OUT.fhe]`: reads textual FHE
// IR (`fhec compile --emit-fhe-ir` or `--print-after` output, or another toolchain's), runs FHE passes
// on it (passes/fhe/registry.ts) and prints or writes the result, annotations included.
// `fhec opt --list` lists the passes and their options.

import * as fs from 'node:fs';
import type { Command } from 'commander';
import { FhecError } from '../../ir/errors.js';
import { parseFhe } from '../../ir/fhe/parse.js';
import { printFhe } from '../../ir/fhe/print.js';
import { fhePasses } from '../../passes/fhe/registry.js';
import { unitOf } from '../../passes/fhe/pipeline/unit.js';
import { formatPassRuns } from '../../passes/pass-manager.js';
import { writeFileAtomic } from '../../runtime/plan/files.js';
import { runFhePipeline } from '../driver.js';
import { collectList, readTextFile } from './common.js';

interface OptFlags {
  pipeline?: string;
  output?: string;
  printAfter: string[];
  printAfterAll?: boolean;
  timing?: boolean;
  list?: boolean;
}

/** The registered FHE passes, their summaries and options. */
export function listFhePasses(): string[] {
  const lines: string[] = [];
  for (const p of fhePasses.values()) {
    lines.push(`${p.name}: ${p.summary}`);
    for (const o of p.options) lines.push(`    ${o.name} (${o.type}${o.default !== undefined ? `, default ${String(o.default)}` : ''}): ${o.help}`);
  }
  return lines;
}

export function registerOpt(program: Command): void {
  program
    .command('opt')
    .description('run FHE passes on textual FHE IR and print or write the result')
    .argument('[file]', 'FHE IR text (.fhe)')
    .option('--pipeline <passes>', "passes to run, e.g. 'place-refresh{strategy=optimal,levels=3},manage-scales,verify'")
    .option('-o, --output <file>', 'write the result here instead of stdout')
    .option('--print-after <pass>', 'print the IR after this pass, to stderr (repeatable)', collectList, [])
    .option('--print-after-all', 'print the IR after every pass')
    .option('--timing', 'print per-pass timing to stderr')
    .option('--list', 'list the FHE passes and their options')
    .action((file: string | undefined, opts: OptFlags) => {
      if (opts.list) {
        for (const l of listFhePasses()) console.log(l);
        return;
      }
      if (!file) throw new FhecError('fhec opt needs an FHE IR file (or --list)');
      if (opts.pipeline === undefined) throw new FhecError("fhec opt needs --pipeline '...' (fhec opt --list shows the passes)", { field: '--pipeline' });
      const text = readTextFile(file);
      if (opts.output !== undefined && fs.existsSync(opts.output) && fs.realpathSync(opts.output) === fs.realpathSync(file)) {
        throw new FhecError('the output would overwrite the input', { file: opts.output, field: '--output' });
      }
      const unit = unitOf(parseFhe(text, file));
      let runs;
      try {
        runs = runFhePipeline(unit, opts.pipeline, { printAfter: opts.printAfterAll ? 'all' : new Set(opts.printAfter), elideConstantsAbove: Infinity });
      } catch (e) {
        throw e instanceof FhecError ? e.inFile(file) : e;
      }
      if (opts.timing) process.stderr.write(`${formatPassRuns(runs)}\n`);
      const out = printFhe(unit.program);
      if (opts.output !== undefined) writeFileAtomic(opts.output, out);
      else process.stdout.write(out);
    });
}
