// A bounded load test of `fhec serve` on loopback: one server (in this process, its sessions in worker
// threads) and C clients at once (in this process too), each running R generations of N new tokens
// back to back. More clients than --max-sessions are refused with a clear error and retried after a
// pause, so the run also shows the session limit at work. Samples the health endpoint every 500 ms.
// Reports sessions held (max, mean), tokens per minute, refusals, and the process's peak resident
// memory (server, workers and clients together).
//   node dist/bench/index.js serve --plan PLAN [--clients C] [--rounds R] [--tokens N] [--backend sim|seal] [--max-sessions M]

import { FhecError } from '../ir/errors.js';
import { backendByName } from '../compiler/fhe-run.js';
import { serveCommand } from '../compiler/commands/serve.js';
import { ownSchedule } from '../compiler/commands/client.js';
import { generateRemote } from '../service/client/remote-generation.js';

export interface ServeLoadOptions {
  plan: string;
  clients: number;
  rounds: number;
  tokens: number;
  backend: 'seal' | 'sim';
  maxSessions: number;
  prompt: string;
}

export interface ServeLoadResult extends ServeLoadOptions {
  wallS: number;
  tokensGenerated: number;
  tokensPerMinute: number;
  generations: number;
  refusals: number;
  sessionsMax: number;
  sessionsMean: number;
  peakRssMiB: number;
  texts: string[];
}

function arg(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

export function serveLoadOptions(argv: string[]): ServeLoadOptions {
  const plan = arg(argv, '--plan');
  if (!plan) throw new FhecError('the serve load test needs --plan PLAN (a generation plan)');
  const backend = (arg(argv, '--backend') ?? 'sim') as 'seal' | 'sim';
  return {
    plan,
    clients: Number(arg(argv, '--clients') ?? 4),
    rounds: Number(arg(argv, '--rounds') ?? 1),
    tokens: Number(arg(argv, '--tokens') ?? 2),
    backend,
    maxSessions: Number(arg(argv, '--max-sessions') ?? 3),
    prompt: arg(argv, '--prompt') ?? 'She ',
  };
}

export async function runServeLoad(o: ServeLoadOptions): Promise<ServeLoadResult> {
  const server = await serveCommand([o.plan], {
    host: '127.0.0.1', port: 0, backend: o.backend, maxSessions: o.maxSessions, sessionMemoryMib: 4096, plaintextCacheMib: 256,
    idleTimeout: 600, refreshTimeout: 300, maxMessageMib: 2048, browser: false, logLevel: 'warn',
  });
  const samples: number[] = [];
  let peakRss = process.memoryUsage().rss;
  const sampler = setInterval(() => {
    samples.push(server.sessions.size);
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }, 500);
  const backend = backendByName(o.backend);
  const schedule = await ownSchedule(o.plan);
  let refusals = 0;
  let tokens = 0;
  const texts: string[] = [];
  const t0 = performance.now();
  try {
    await Promise.all(
      Array.from({ length: o.clients }, async () => {
        for (let r = 0; r < o.rounds; r++) {
          for (;;) {
            try {
              const g = await generateRemote({ server: server.url, schedule, prompt: o.prompt, maxNewTokens: o.tokens, backend });
              tokens += g.result.generated.length;
              texts.push(g.result.text);
              break;
            } catch (e) {
              if (!(e instanceof FhecError) || !/its limit/.test(e.message)) throw e;
              refusals++;
              await new Promise((res) => setTimeout(res, 2000));
            }
          }
        }
      }),
    );
  } finally {
    clearInterval(sampler);
    await server.close();
  }
  const wallS = (performance.now() - t0) / 1000;
  return {
    ...o,
    wallS,
    tokensGenerated: tokens,
    tokensPerMinute: tokens / (wallS / 60),
    generations: texts.length,
    refusals,
    sessionsMax: Math.max(0, ...samples),
    sessionsMean: samples.reduce((a, b) => a + b, 0) / Math.max(1, samples.length),
    peakRssMiB: Math.max(peakRss, process.resourceUsage().maxRSS * 1024) / 1048576,
    texts,
  };
}

export function printServeLoad(r: ServeLoadResult): void {
  console.log(`\n## fhec serve load test (${r.backend}, ${r.clients} clients x ${r.rounds} rounds x ${r.tokens} tokens, max ${r.maxSessions} sessions)`);
  console.log('| generations | tokens | wall (s) | tokens/min | sessions held (max / mean) | refused (limit) | peak RSS (MiB) |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|');
  console.log(`| ${r.generations} | ${r.tokensGenerated} | ${r.wallS.toFixed(1)} | ${r.tokensPerMinute.toFixed(2)} | ${r.sessionsMax} / ${r.sessionsMean.toFixed(2)} | ${r.refusals} | ${r.peakRssMiB.toFixed(0)} |`);
  console.log(`texts: ${[...new Set(r.texts)].map((t) => JSON.stringify(t)).join(', ')}`);
}
