// `fhec client generate --server URL --plan PLAN.json --prompt TEXT --max-new-tokens N`: encrypted
// generation against `fhec serve` (service/client): keys, encryption, the key holder's refresh loop,
// decryption, here. Prints the text, then a summary on stderr: round trips, bytes each way, latency per
// token. The key holder enforces the refresh schedule of the client's own copy of the plan (--plan:
// the generation plan, or the schedule file `fhec client schedule` writes from it); there is no mode
// that takes the schedule from the server, which would let a malicious server choose what the key
// holder re-encrypts.
// `fhec client schedule PLAN.json [-o FILE]`: that schedule file and its sha256 (what the browser page
// takes, as a file or as the digest to check the server's copy against).

import * as fs from 'node:fs';
import type { Command } from 'commander';
import { FhecError } from '../../ir/errors.js';
import { buildClientSchedule, CLIENT_SCHEDULE_KIND, encodeClientSchedule, loadedSchedule, readClientSchedule, type LoadedSchedule } from '../../runtime/generate/client-schedule.js';
import { GENERATION_PLAN_KIND } from '../../runtime/generate/manifest.js';
import { writeFileAtomic } from '../../runtime/plan/files.js';
import { GenerationPlanStore } from '../generation-plan.js';
import { shapeName } from '../../runtime/generate/plan-source.js';
import { formatRemoteSummary, generateRemote, type RemoteGenerationResult } from '../../service/client/remote-generation.js';
import { backendByName } from '../fhe-run.js';
import { intOption, MIN_HIDING_BITS_HELP, minHidingBitsOption } from './common.js';
import { stepsBar, type Bar } from './generate.js';

/**
 * The refresh schedule of the client's own copy of a plan: a generation plan (its step plans are read,
 * without weights; missing decode plans are compiled from the model the plan names), or a schedule file.
 */
export async function ownSchedule(file: string, onCompile?: (what: string) => void): Promise<LoadedSchedule> {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new FhecError(`cannot read the plan (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { file, field: '--plan' });
  }
  let kind: unknown;
  try {
    kind = (JSON.parse(Buffer.from(bytes).toString('utf8')) as { kind?: unknown }).kind;
  } catch (e) {
    throw new FhecError(`the plan is not valid JSON: ${(e as Error).message}`, { file, field: '--plan' });
  }
  if (kind === CLIENT_SCHEDULE_KIND) return readClientSchedule(bytes, file);
  if (kind !== GENERATION_PLAN_KIND) throw new FhecError(`--plan takes a generation plan (kind ${GENERATION_PLAN_KIND}) or a refresh schedule (kind ${CLIENT_SCHEDULE_KIND}), this file's kind is ${JSON.stringify(kind)}`, { file, field: '--plan' });
  const store = new GenerationPlanStore(file, { keep: 2, ...(onCompile ? { onCompile: (shape, ms) => ms === undefined && onCompile(shape.kind === 'prefill' ? `prefill-${shape.tokens}` : `decode-${shape.past}`) } : {}) });
  return loadedSchedule(buildClientSchedule(store.manifest, store));
}

const NO_PLAN =
  'fhec client generate needs --plan FILE: your own copy of the served generation plan (or the schedule file `fhec client schedule PLAN.json -o FILE` writes from it). ' +
  'The key holder checks every refresh request against the schedule it derives from it; a schedule taken from the server would let a malicious server choose what your key re-encrypts.';

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
  if (!f.plan) throw new FhecError(NO_PLAN, { field: '--plan' });
  const schedule = await ownSchedule(f.plan, (step) => f.progress && process.stderr.write(`compiling step plan ${step} of your copy of the plan...\n`));
  let bar: Bar | undefined;
  const run = await generateRemote({
    server: server.href,
    schedule,
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
    .option('--plan <file>', 'your copy of the generation plan (or its schedule file): the key holder enforces its refresh schedule, and the server must serve the same plan')
    .option('--backend <name>', 'seal (real encryption) or sim (only against a sim server)', 'seal')
    .option('--no-progress', 'no progress bar')
    .option('--reconnect-timeout <s>', 'how long to wait for a lost server to come back before giving up', intOption('--reconnect-timeout', 0), 120)
    .option('--min-hiding-bits <bits>', MIN_HIDING_BITS_HELP, minHidingBitsOption())
    .action(async (f: ClientGenerateFlags) => {
      const out = await clientGenerateCommand(f);
      process.stdout.write(`${out.run.result.text}\n`);
      for (const l of out.lines) process.stderr.write(`${l}\n`);
    });
  client
    .command('schedule')
    .description('the refresh schedule of your copy of a generation plan, and its sha256 (for the browser page: load the file, or check the server\'s copy against the digest)')
    .argument('<plan>', 'generation plan (fhec compile ... -o PLAN.json --max-context C)')
    .option('-o, --output <file>', 'write the schedule file here')
    .action(async (plan: string, f: { output?: string }) => {
      const s = await ownSchedule(plan, (step) => process.stderr.write(`compiling step plan ${step}...\n`));
      if (f.output) writeFileAtomic(f.output, encodeClientSchedule(s.schedule));
      process.stdout.write(`${s.sha256}\n`);
      process.stderr.write(`refresh schedule of ${plan}: ${Object.keys(s.schedule.steps).length} steps, ${Object.values(s.schedule.steps).reduce((a, p) => a + p.length, 0)} refresh points${f.output ? `, written to ${f.output}` : ''}\n`);
    });
}
