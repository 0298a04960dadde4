// Writes one section's figures: figures/<section>.json (bench/figures/check.ts SectionFile), the measured
// figures under stable keys (bench/figures/stated.ts pairs them with the README's numbers), the commands
// or library calls that measured them, the machine and the commit. Comparing with the README is
// `npm run figures -- --check`'s job, not this file's.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { SectionFile } from '../bench/figures/check.js';
import type { AccuracyFigures } from '../compiler/accuracy.js';
import { ROOT } from '../test/helpers/shared.js';

export const FIGURES_DIR = path.join(ROOT, 'figures');

export function machine(): SectionFile['machine'] {
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    node: process.version,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    loadAverage: os.loadavg().map((x) => Number(x.toFixed(2))),
  };
}

/** HEAD, with `+changes` when the product code (compiler, passes, runtime, ir, models) differs from it (the figures then describe uncommitted code). */
export function commit(): string {
  try {
    const head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'compiler', 'passes', 'runtime', 'ir', 'models'], { cwd: ROOT, encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.trim()).length;
    return dirty ? `${head}+changes` : head;
  } catch {
    return 'unknown';
  }
}

/** Writes figures/<section>.json and prints its figures. */
export function writeSection(section: string, t0: number, ran: string[], figures: SectionFile['figures'], details?: unknown): string {
  const file = path.join(FIGURES_DIR, `${section}.json`);
  const out: SectionFile = {
    section,
    command: `npm run figures -- --only ${section}`,
    ran,
    machine: machine(),
    date: new Date().toISOString(),
    commit: commit(),
    seconds: Number(((performance.now() - t0) / 1000).toFixed(1)),
    figures,
    details,
  };
  fs.writeFileSync(file, JSON.stringify(out, null, 2) + '\n');
  console.log(`${section}:\n${Object.entries(figures).map(([k, v]) => `  ${k} = ${JSON.stringify(v)}`).join('\n')}\n  wrote ${path.relative(ROOT, file)}`);
  return file;
}

/** What `fhec accuracy` measures, under `<prefix>.<figure>` keys. */
export function accuracyFigures(prefix: string, f: AccuracyFigures): Record<string, number> {
  return {
    [`${prefix}.positions`]: f.positions,
    [`${prefix}.agree`]: f.agree,
    [`${prefix}.agreement`]: f.agreement,
    [`${prefix}.maxAbsError`]: f.maxAbsError,
    [`${prefix}.meanAbsError`]: f.meanAbsError,
    [`${prefix}.rangeWarnings`]: f.warnings.length,
    [`${prefix}.seconds`]: f.ms / 1000,
  };
}

/**
 * Where a per-model section starts: when only some models run (`only`), the other models' figures and
 * details from the section's previous file, so one file keeps every model's latest measurement.
 */
export function previousModels(section: string, only: string[] | undefined): { previous?: SectionFile; figures: SectionFile['figures']; details: Record<string, unknown> } {
  const file = path.join(FIGURES_DIR, `${section}.json`);
  const previous = only && fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as SectionFile) : undefined;
  return { previous, figures: { ...previous?.figures }, details: { ...(previous?.details as Record<string, unknown> | undefined) } };
}
