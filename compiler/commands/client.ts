// `fhec client generate --server URL --prompt TEXT --max-new-tokens N`: encrypted generation against
// `fhec serve` (service/client): keys, encryption, the key holder's refresh loop, decryption, here.
// Prints the text, then a summary on stderr: round trips, bytes each way, latency per token.

import type { Command } from 'commander';
import { FhecError } from '../../ir/errors.js';
import { shapeName } from '../../runtime/generate/plan-source.js';
import { formatRemoteSummary, generateRemote, type RemoteGenerationResult } from '../../service/client/remote-generation.js';
import { backendByName } from '../fhe-run.js';
import { intOption, MIN_HIDING_BITS_HELP, minHidingBitsOption } from './common.js';
import { stepsBar, type Bar } from './generate.js';

interface ClientGenerateFlags {
  server: string;
  plan?: string;
  prompt: string;
  maxNewTokens: number;
  backend: string;
  progress: boolean;
  reconnectTimeout: number;
  minHidingBits?: number;
}

export async function clientGenerateCommand(f: ClientGenerateFlags): Promise<{ run: RemoteGenerationResult; lines: string[] }> {
  const backend = backendByName(f.backend);
  if (f.prompt.length === 0) throw new FhecError('--prompt must be a non-empty text', { field: '--prompt' });
  if (f.prompt.includes('\uFFFD')) throw new FhecError('the prompt holds U+FFFD, what invalid UTF-8 bytes become: it must be valid UTF-8', { field: '--prompt' });
  let server: URL;
  try {
    server = new URL(f.server);
  } catch {
    throw new FhecError(`'${f.server}' is not a URL (e.g. http://127.0.0.1:8080)`, { field: '--server' });
  }
  let bar: Bar | undefined;
  const run = await generateRemote({
    server: server.href,
    ...(f.plan ? { plan: f.plan } : {}),
    prompt: f.prompt,
    maxNewTokens: f.maxNewTokens,
    backend,
    reconnectMs: f.reconnectTimeout * 1000,
    ...(f.minHidingBits !== undefined ? { minHidingBits: f.minHidingBits } : {}),
    onStatus: (m) => {
      if (f.progress || m.includes('reconnect') || m.includes('resumed')) process.stderr.write(`${m}\n`);
    },
    onStep: (done, total, rec) => {
      if (!f.progress) return;
      bar ??= stepsBar(total);
      bar.update(done, { step: shapeName(rec.shape), ms: `${(rec.ms / 1000).toFixed(2)} s` });
      if (done === total) bar.stop();
    },
  });
  const label = backend.simulated ? `SIMULATION (nothing encrypted): ${backend.label}` : `SEAL, encrypted: ${backend.label}`;
  return { run, lines: formatRemoteSummary(run, label) };
}

export function registerClient(program: Command): void {
  const client = program.command('client').description('a client of fhec serve');
  client
    .command('generate')
    .description('generate text from an encrypted prompt on a fhec serve server; the secret key stays here')
    .requiredOption('--server <url>', 'the server, e.g. http://127.0.0.1:8080')
    .requiredOption('--prompt <text>', 'prompt text (UTF-8 bytes)')
    .requiredOption('--max-new-tokens <n>', 'tokens to generate', intOption('--max-new-tokens', 1))
    .option('--plan <name>', 'the served plan (default: the server\'s only one)')
    .option('--backend <name>', 'seal (real encryption) or sim (only against a sim server)', 'seal')
    .option('--no-progress', 'no progress bar')
    .option('--reconnect-timeout <s>', 'how long to wait for a lost server to come back before giving up', intOption('--reconnect-timeout', 0), 120)
    .option('--min-hiding-bits <bits>', MIN_HIDING_BITS_HELP, minHidingBitsOption())
    .action(async (f: ClientGenerateFlags) => {
      const out = await clientGenerateCommand(f);
      process.stdout.write(`${out.run.result.text}\n`);
      for (const l of out.lines) process.stderr.write(`${l}\n`);
    });
}
