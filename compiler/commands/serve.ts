// `fhec serve PLAN... [--host H] [--port P]`: the evaluator as a network service (service/server).
// The CLI's part: flags, compiling the decode plans before the first session, the plan-source module
// the session workers load, and the signals (SIGTERM/SIGINT: graceful shutdown).

import type { Command } from 'commander';
import { FhecError } from '../../ir/errors.js';
import { shapeName } from '../../runtime/generate/plan-source.js';
import { startServer, type ServeOptions } from '../../service/server/server.js';
import { precompileDecodePlans } from '../generation-plan.js';
import { intOption } from './common.js';

interface ServeFlags {
  host: string;
  port: number;
  backend: string;
  maxSessions: number;
  sessionMemoryMib: number;
  plaintextCacheMib: number;
  idleTimeout: number;
  refreshTimeout: number;
  maxMessageMib: number;
  ciphertextsPerMessage?: number;
  keyHolderRotations?: boolean;
  stateDir?: string;
  browser: boolean;
  logLevel: string;
  logFile?: string;
}

const MIB = 1048576;

export async function serveCommand(plans: string[], f: ServeFlags): Promise<Awaited<ReturnType<typeof startServer>>> {
  if (f.backend !== 'seal' && f.backend !== 'sim') throw new FhecError(`unknown backend '${f.backend}' (use seal or sim)`, { field: '--backend' });
  for (const p of plans) {
    precompileDecodePlans(p, (shape, ms) => {
      if (ms === undefined) process.stderr.write(`compiling step plan ${shapeName(shape)} of ${p}...\n`);
    });
  }
  const o: ServeOptions = {
    plans,
    host: f.host,
    port: f.port,
    backend: f.backend,
    sourceModule: new URL('../generation-plan.js', import.meta.url).href,
    maxSessions: f.maxSessions,
    limits: {
      memoryBytes: f.sessionMemoryMib * MIB,
      plaintextCacheBytes: f.plaintextCacheMib * MIB,
      idleMs: f.idleTimeout * 1000,
      refreshTimeoutMs: f.refreshTimeout * 1000,
      ...(f.ciphertextsPerMessage ? { ciphertextsPerMessage: f.ciphertextsPerMessage } : {}),
      ...(f.keyHolderRotations ? { keyHolderRotations: true } : {}),
    },
    maxMessageBytes: f.maxMessageMib * MIB,
    ...(f.stateDir ? { stateDir: f.stateDir } : {}),
    browser: f.browser,
    logLevel: f.logLevel,
    ...(f.logFile ? { logFile: f.logFile } : {}),
  };
  return startServer(o);
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('serve generation plans: sessions over WebSocket, the client keeps the secret key (fhec client generate, or the browser page at /)')
    .argument('<plans...>', 'generation plans (fhec compile MODEL -o PLAN --calibration FILE --max-context C)')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port (0: any free port, printed)', intOption('--port', 0), 8080)
    .option('--backend <name>', 'seal (real encryption) or sim (CKKS simulation, for tests)', 'seal')
    .option('--max-sessions <n>', 'sessions at once', intOption('--max-sessions', 1), 4)
    .option('--session-memory-mib <n>', 'memory a session may hold: evaluation keys, KV cache, plaintext cache', intOption('--session-memory-mib', 64), 3072)
    .option('--plaintext-cache-mib <n>', 'encoded-weight cache per session (part of its memory)', intOption('--plaintext-cache-mib', 0), 512)
    .option('--idle-timeout <s>', 'a session whose client sends nothing for this long ends', intOption('--idle-timeout', 1), 600)
    .option('--refresh-timeout <s>', 'how long a refresh waits for the client', intOption('--refresh-timeout', 1), 300)
    .option('--max-message-mib <n>', 'largest WebSocket message (the evaluation keys are the largest)', intOption('--max-message-mib', 1), 2048)
    .option('--ciphertexts-per-message <n>', 'at most this many ciphertexts per refresh message (default: a whole refresh round; 1: one message per ciphertext, to measure what batching saves)', intOption('--ciphertexts-per-message', 1))
    .option('--key-holder-rotations', 'ask each client\'s key holder for the plan\'s rotations of refresh results with the refresh (seal): one more fresh ciphertext (0.4 MiB at N=16384, 3 primes) downloaded per rotation instead of a key switch here; worth it on a fast link only (default off; README, Security model, "Rotated copies")')
    .option('--state-dir <dir>', 'keep session state here after every step, so a restarted server resumes sessions')
    .option('--no-browser', 'do not serve the browser page')
    .option('--log-level <level>', 'pino log level', 'info')
    .option('--log-file <file>', 'write the JSON logs here (default stdout)')
    .action(async (plans: string[], f: ServeFlags) => {
      const s = await serveCommand(plans, f);
      process.stderr.write(`fhec serve: listening on ${s.url} (${plans.length} plan(s), backend ${f.backend}${f.stateDir ? `, state in ${f.stateDir}` : ''})\n`);
      await new Promise<void>((resolve) => {
        const stop = (sig: string) => {
          process.stderr.write(`fhec serve: ${sig}, shutting down\n`);
          void s.close().then(resolve);
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
    });
}
