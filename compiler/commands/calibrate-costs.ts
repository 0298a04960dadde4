// `fhec calibrate-costs [-o FILE] [--quick] [--ring-degrees LIST]`: measures node-seal's per-op costs on
// this machine (runtime/ckks/measure-costs.ts) and writes a cost table for the parameter search and the
// latency prediction. Progress goes to stderr; a summary table to stdout.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { FhecError } from '../../ir/errors.js';
import { opCost, parseCostTable, type CostTable } from '../../ir/ckks/cost-table.js';
import { calibrateCosts, MEASUREMENT_CHAINS } from '../../runtime/ckks/measure-costs.js';
import { sealBackend } from '../../runtime/seal/backend.js';
import { checkOutputs } from './outputs.js';
import { writeFileAtomic } from '../../runtime/plan/files.js';

/** node-seal's version, read from its package.json (the package does not export it). */
function nodeSealVersion(): string {
  try {
    let dir = path.dirname(fileURLToPath(import.meta.resolve('node-seal')));
    for (let i = 0; i < 4; i++, dir = path.dirname(dir)) {
      const file = path.join(dir, 'package.json');
      if (!fs.existsSync(file)) continue;
      const pkg = JSON.parse(fs.readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'node-seal') return pkg.version ?? 'unknown';
    }
  } catch {
    // fall through
  }
  return 'unknown';
}

function machineDescription(): string {
  const cpu = os.cpus()[0]?.model?.trim() ?? 'unknown cpu';
  return `${cpu} x${os.cpus().length}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.platform()} ${os.release()}`;
}

export interface CalibrateCostsOptions {
  output?: string;
  quick?: boolean;
  ringDegrees?: number[];
  log?: (line: string) => void;
}

export async function runCalibrateCosts(opts: CalibrateCostsOptions): Promise<CostTable> {
  const ringDegrees = opts.ringDegrees ?? (opts.quick ? [8192] : [8192, 16384, 32768]);
  for (const n of ringDegrees) {
    if (!MEASUREMENT_CHAINS[n]) throw new FhecError(`cannot calibrate N=${n}: use ${Object.keys(MEASUREMENT_CHAINS).join(', ')}`, { field: '--ring-degrees' });
  }
  const table = await calibrateCosts(sealBackend, {
    ringDegrees,
    quick: opts.quick,
    log: opts.log,
    provenance: {
      machine: machineDescription(),
      cpus: os.cpus().length,
      date: new Date().toISOString(),
      nodeSeal: nodeSealVersion(),
      node: process.version,
      loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
      note: "medians of this process's CPU time through fhec's seal backend (runtime/ckks/measure-costs.ts), one thread",
    },
  });
  // What we write must load back.
  parseCostTable(JSON.parse(JSON.stringify(table)));
  if (opts.output) writeFileAtomic(opts.output, `${JSON.stringify(table, null, 1)}\n`);
  return table;
}

function formatCostSummary(table: CostTable): string {
  const ops = ['encode', 'add', 'mul_plain', 'mul', 'relinearize', 'rescale', 'rotate', 'encrypt', 'decrypt', 'save', 'load'] as const;
  const lines = [`| N | level | ${ops.join(' | ')} |`, `|---:|---:|${ops.map(() => '---:').join('|')}|`];
  for (const r of table.ringDegrees) {
    const levels = Object.keys(r.ops.rotate ?? {}).map(Number).sort((a, b) => b - a);
    for (const l of levels) {
      lines.push(`| ${r.ringDegree} | ${l} | ${ops.map((op) => opCost(table, op, r.ringDegree, l).toFixed(3)).join(' | ')} |`);
    }
  }
  const p = table.provenance;
  lines.push(
    `ms per op (CPU time, median of ${p.reps}${p.quick ? ', quick' : ''}); encode and encrypt: in a chain whose top is that level; ` +
      `${p.machine}; node-seal ${p.nodeSeal}, Node ${p.node}; ${p.date}`,
  );
  return lines.join('\n');
}

function ringList(value: string): number[] {
  const out = value.split(',').map((s) => Number(s.trim()));
  if (out.some((n) => !Number.isInteger(n) || n <= 0)) throw new FhecError(`--ring-degrees expects a comma-separated list of integers, got '${value}'`);
  return out;
}

export function registerCalibrateCosts(program: Command): void {
  program
    .command('calibrate-costs')
    .description('measure node-seal per-op costs on this machine and write a cost table for the parameter search')
    .option('-o, --output <file>', 'where to write the cost table (JSON)', 'fhec-costs.json')
    .option('--quick', 'N=8192 only, 3 levels, 3 samples per op (a few seconds)')
    .option('--ring-degrees <list>', 'ring degrees to measure (default 8192,16384,32768; --quick: 8192)', ringList)
    .action(async (opts: { output: string; quick?: boolean; ringDegrees?: number[] }) => {
      checkOutputs([{ path: opts.output, flag: '--output' }], []);
      const table = await runCalibrateCosts({ ...opts, log: (line) => process.stderr.write(`${line}\n`) });
      console.log(formatCostSummary(table));
      console.log(`wrote ${opts.output}`);
    });
}
