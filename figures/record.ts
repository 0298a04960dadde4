// Writes one figure file: figures/out/<name>.json, with what the README states and what was measured.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ROOT } from '../test/helpers/shared.js';

export const OUT = path.join(ROOT, 'figures', 'out');

/** One stated figure: the README's words, the measured value, and whether it still holds. */
export interface Figure {
  /** What the figure is (as the README row names it). */
  what: string;
  /** The README's figure, as written there. */
  readme: string;
  measured: unknown;
  /** The README's claim checked against the measurement. */
  holds: boolean;
}

export interface FigureFile {
  name: string;
  /** The README row (its first cell) these figures come from. */
  readmeRow: string;
  /** How to reproduce this file alone. */
  command: string;
  date: string;
  machine: string;
  seconds: number;
  figures: Figure[];
  /** Everything measured, for tables that need more than the stated figures. */
  details: unknown;
}

export function machine(): string {
  return `${os.cpus()[0]?.model ?? 'cpu'} x${os.cpus().length}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
}

/** The command that reruns one test of a figures file (`npm run figures` runs them all). */
export const commandFor = (script: string, test: string, env = ''): string => `${env ? `${env} ` : ''}npx vitest run --config figures/vitest.config.ts figures/${script}.figures.ts -t '${test}'`;

/** Writes figures/out/NAME.json; `script` and `test` name the figures file and test that measured it. */
export function writeFigures(f: Omit<FigureFile, 'date' | 'machine' | 'command'> & { script: string; test: string; env?: string }): string {
  fs.mkdirSync(OUT, { recursive: true });
  const file = path.join(OUT, `${f.name}.json`);
  const full: FigureFile = { name: f.name, readmeRow: f.readmeRow, command: commandFor(f.script, f.test, f.env), date: new Date().toISOString(), machine: machine(), seconds: f.seconds, figures: f.figures, details: f.details };
  fs.writeFileSync(file, JSON.stringify(full, null, 2) + '\n');
  console.log(
    `${f.readmeRow}\n` + f.figures.map((x) => `  ${x.holds ? 'holds' : 'STALE'}  ${x.what}: README ${x.readme}; measured ${JSON.stringify(x.measured)}`).join('\n') + `\n  wrote ${path.relative(ROOT, file)}`,
  );
  return file;
}

/** "within X" figures: the measured maximum, rounded as the README rounds it (2 digits), is at most X. */
export const within = (measured: number, stated: number): boolean => Number(measured.toPrecision(2)) <= stated;
