// Generation plans shared by the test files of one run: compiling model A's plan takes minutes on 2 cores,
// and several files run the same one (model A's: the SEAL and sim generation tests; zoo model Z1's: the
// serve tests and the zoo's SEAL generation test). A plan is kept under
// the run's temp folder (test/global-setup.ts), named by a digest of everything it is made from (the
// model, the calibration text, the options, and every source file of ir/, passes/, runtime/ and
// compiler/), so a change to any of them compiles afresh. One file compiles while the others that want
// the same plan wait for it (a lock folder holding the compiling process's pid; a dead holder's lock is
// taken over), instead of compiling it again side by side.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { compileGenerationPlan } from '../../compiler/generation-plan.js';
import { ROOT } from './shared.js';

export interface CachedPlanOptions {
  calibration: string;
  maxContext: number;
  prefill: number[];
  /** Calibration windows (default: all the text has). */
  maxWindows?: number;
}

function digest(model: string, options: CachedPlanOptions): string {
  const h = createHash('sha256');
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(ts|json)$/.test(e.name)) h.update(p).update(fs.readFileSync(p));
    }
  };
  for (const d of ['ir', 'passes', 'runtime', 'compiler']) walk(path.join(ROOT, d));
  h.update(fs.readFileSync(model)).update(fs.readFileSync(options.calibration)).update(JSON.stringify(options));
  return h.digest('hex').slice(0, 16);
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The plan file of `model` compiled with `options` (compiled now unless this run has it or is compiling it). */
export function cachedGenerationPlan(model: string, options: CachedPlanOptions): string {
  const dir = path.join(os.tmpdir(), `fhec-plan-${digest(model, options)}`);
  const plan = path.join(dir, 'gen.json');
  const lock = `${dir}.lock`;
  for (;;) {
    if (fs.existsSync(plan)) return plan;
    try {
      fs.mkdirSync(lock);
    } catch {
      let holder = 0;
      try {
        holder = Number(fs.readFileSync(path.join(lock, 'pid'), 'utf8'));
      } catch {
        // not written yet, or the lock was just released: look again
      }
      if (holder > 0 && !alive(holder)) fs.rmSync(lock, { recursive: true, force: true });
      else sleep(1000);
      continue;
    }
    try {
      fs.writeFileSync(path.join(lock, 'pid'), String(process.pid));
      if (fs.existsSync(plan)) return plan;
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-plan-tmp-'));
      compileGenerationPlan(model, path.join(tmp, 'gen.json'), options);
      fs.renameSync(tmp, dir);
      return plan;
    } finally {
      fs.rmSync(lock, { recursive: true, force: true });
    }
  }
}
