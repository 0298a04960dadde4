// Runs the built CLI (dist/, made by `npm test`'s tsc step) as a user would.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { ROOT } from './shared.js';

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function fhec(...args: string[]): CliResult {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'fhec.js'), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
