// `fhec report PLAN.json [--run RUN.json] -o report.html`: one self-contained HTML page of a compiled
// plan (arithmetic, model or generation plan) and, with --run, of a traced run beside it
// (compiler/report/).

import * as fs from 'node:fs';
import type { Command } from 'commander';
import { FhecError } from '../../ir/errors.js';
import { loadReportData } from '../report/report-data.js';
import { renderReportHtml } from '../report/render-html.js';
import { writeFileAtomic } from '../../runtime/plan/files.js';
import { checkOutputs, planFiles } from './outputs.js';

interface ReportFlags {
  output: string;
  run?: string;
}

/** Writes the report; returns the line to print. */
function reportCommand(plan: string, flags: ReportFlags): string {
  if (!fs.existsSync(plan)) throw new FhecError('plan file not found', { file: plan });
  checkOutputs([{ path: flags.output, flag: '--output' }], [...planFiles(plan), ...(flags.run ? [flags.run] : [])]);
  const data = loadReportData(plan, flags.run);
  const html = renderReportHtml(data);
  writeFileAtomic(flags.output, html);
  return `wrote ${flags.output} (${(html.length / 2 ** 20).toFixed(1)} MiB, self-contained: open it in any browser)`;
}

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('write an HTML report of a compiled plan (levels, refreshes, costs, precision, parameters) and optionally of a traced run')
    .argument('<plan>', 'plan file written by `fhec compile` (arithmetic, model or generation plan)')
    .requiredOption('-o, --output <report.html>', 'HTML file to write')
    .option('--run <run.json>', 'trace written by `fhec run --trace` or `fhec generate --trace`: measured beside predicted')
    .action((plan: string, opts: ReportFlags) => {
      console.log(reportCommand(plan, opts));
    });
}
