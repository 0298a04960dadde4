// Helpers for the `fhec serve` tests: the built CLI (dist/, as `npm test` builds it) started as a real
// server process on 127.0.0.1 with a free port, and `fhec client generate` runs as real processes, so
// concurrency, kill -9 and restarts are what a deployment sees.

import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { ROOT } from './shared.js';

const BIN = path.join(ROOT, 'bin', 'fhec.js');

export interface Served {
  proc: ChildProcess;
  url: string;
  stderr: () => string;
  /** Resolves with the exit code (or signal) when the process ends. */
  exited: Promise<number | string>;
}

/** Starts `fhec serve ARGS --port 0` and waits for its "listening on URL" line. */
export function startServe(args: string[], timeoutMs = 600_000): Promise<Served> {
  const proc = spawn(process.execPath, [BIN, 'serve', ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const exited = new Promise<number | string>((resolve) => proc.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fhec serve did not start within ${timeoutMs} ms:\n${err}`)), timeoutMs);
    proc.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, url: m[1]!, stderr: () => err, exited });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`fhec serve exited (${code}) before listening:\n${err}`));
    });
  });
}

export interface ClientRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `fhec client generate ARGS` to the end. `onStderr` sees its stderr as it comes. */
export function runClient(args: string[], onStderr?: (chunk: string, all: string) => void): Promise<ClientRun> {
  const proc = spawn(process.execPath, [BIN, 'client', 'generate', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString('utf8')));
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    onStderr?.(d.toString(), err);
  });
  return new Promise((resolve) => proc.on('exit', (code) => resolve({ status: code, stdout: out, stderr: err })));
}

export async function health(url: string): Promise<{ status: string; sessions: number; maxSessions: number; rssBytes: number }> {
  return (await (await fetch(`${url}/v1/health`)).json()) as { status: string; sessions: number; maxSessions: number; rssBytes: number };
}

/** A port free on 127.0.0.1 right now (for a server that must come back on the same address). */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** The highest `next` step saved by any session under a --state-dir folder, or -1 (none yet). */
export function savedStep(stateDir: string): number {
  let best = -1;
  if (!fs.existsSync(stateDir)) return best;
  for (const d of fs.readdirSync(stateDir)) {
    try {
      const b = fs.readFileSync(path.join(stateDir, d, 'state.bin'));
      const n = b.readUInt32LE(6);
      best = Math.max(best, (JSON.parse(b.subarray(10, 10 + n).toString()) as { next: number }).next);
    } catch {
      // not written yet, or being replaced
    }
  }
  return best;
}
