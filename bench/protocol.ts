// What the network protocol of `fhec serve` costs per token, measured through the real protocol on
// loopback: a server in this process (its session in a worker thread) and `fhec/client` answering
// refreshes with the key holder, twice: refresh rounds batched (one message per refresh round and per
// cache carry, the default) and unbatched (`--ciphertexts-per-message 1`: one message per refreshed
// ciphertext). Per step it reports key-holder round trips, refreshed ciphertexts, and the WebSocket
// payload bytes each way (embeddings, refresh requests and replies, logits; the evaluation keys, sent
// once per session, are reported apart). Round trips and ciphertext counts do not depend on the
// backend's arithmetic, so `sim` counts them; byte counts are the backend's ciphertext sizes (sim's
// differ from SEAL's: run with --backend seal for those).
//   node dist/bench/index.js protocol --plan PLAN [--prompt TEXT] [--tokens N] [--backend sim|seal] [--modes batched,unbatched]

import { FhecError } from '../ir/errors.js';
import { backendByName } from '../compiler/fhe-run.js';
import { serveCommand } from '../compiler/commands/serve.js';
import { ownSchedule } from '../compiler/commands/client.js';
import { shapeName } from '../runtime/generate/plan-source.js';
import { generateRemote } from '../service/client/remote-generation.js';

export interface ProtocolBenchOptions {
  plan: string;
  prompt: string;
  tokens: number;
  backend: 'seal' | 'sim';
  modes: ('batched' | 'unbatched')[];
}

export interface ProtocolStep {
  step: string;
  roundTrips: number;
  ciphertexts: number;
  bytesToServer: number;
  bytesToClient: number;
}

export interface ProtocolRun {
  mode: 'batched' | 'unbatched';
  generated: number[];
  setup: { bytesToServer: number; bytesToClient: number };
  steps: ProtocolStep[];
  /** Means over the decode steps. */
  perDecodeToken: Omit<ProtocolStep, 'step'>;
  wallS: number;
}

export interface ProtocolBenchResult extends ProtocolBenchOptions {
  runs: ProtocolRun[];
}

function arg(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

export function protocolBenchOptions(argv: string[]): ProtocolBenchOptions {
  const plan = arg(argv, '--plan');
  if (!plan) throw new FhecError('the protocol bench needs --plan PLAN (a generation plan)');
  const backend = arg(argv, '--backend') ?? 'sim';
  if (backend !== 'sim' && backend !== 'seal') throw new FhecError(`--backend is sim or seal, got ${backend}`);
  const modes = (arg(argv, '--modes') ?? 'batched,unbatched').split(',');
  for (const m of modes) if (m !== 'batched' && m !== 'unbatched') throw new FhecError(`--modes lists batched and/or unbatched, got ${m}`);
  return { plan, prompt: arg(argv, '--prompt') ?? 'The cat ', tokens: Number(arg(argv, '--tokens') ?? 4), backend, modes: modes as ProtocolBenchOptions['modes'] };
}

async function runOne(o: ProtocolBenchOptions, mode: 'batched' | 'unbatched'): Promise<ProtocolRun> {
  const server = await serveCommand([o.plan], {
    host: '127.0.0.1', port: 0, backend: o.backend, maxSessions: 1, sessionMemoryMib: 8192, plaintextCacheMib: 256,
    idleTimeout: 3600, refreshTimeout: 3600, maxMessageMib: 2048, browser: false, logLevel: 'warn',
    ...(mode === 'unbatched' ? { ciphertextsPerMessage: 1 } : {}),
  });
  try {
    const t0 = performance.now();
    const g = await generateRemote({ server: server.url, schedule: await ownSchedule(o.plan), prompt: o.prompt, maxNewTokens: o.tokens, backend: backendByName(o.backend) });
    const steps = g.result.steps.map((s, i): ProtocolStep => {
      const t = g.stepTraffic[i]!;
      return { step: shapeName(s.shape), roundTrips: t.refreshRoundTrips, ciphertexts: s.evaluator.refreshes + s.evaluator.cacheRefreshes, bytesToServer: t.bytesSent, bytesToClient: t.bytesReceived };
    });
    const inSteps = (f: (s: ProtocolStep) => number) => steps.reduce((a, s) => a + f(s), 0);
    const dec = steps.slice(1);
    const mean = (f: (s: ProtocolStep) => number) => dec.reduce((a, s) => a + f(s), 0) / Math.max(1, dec.length);
    return {
      mode,
      generated: g.result.generated,
      // Everything not in a step: the hello, the open and the evaluation keys, the close.
      setup: { bytesToServer: g.traffic.bytesSent - inSteps((s) => s.bytesToServer), bytesToClient: g.traffic.bytesReceived - inSteps((s) => s.bytesToClient) },
      steps,
      perDecodeToken: { roundTrips: mean((s) => s.roundTrips), ciphertexts: mean((s) => s.ciphertexts), bytesToServer: mean((s) => s.bytesToServer), bytesToClient: mean((s) => s.bytesToClient) },
      wallS: (performance.now() - t0) / 1000,
    };
  } finally {
    await server.close();
  }
}

export async function runProtocolBench(o: ProtocolBenchOptions): Promise<ProtocolBenchResult> {
  const runs: ProtocolRun[] = [];
  for (const m of o.modes) runs.push(await runOne(o, m));
  const texts = new Set(runs.map((r) => r.generated.join()));
  if (texts.size > 1) throw new FhecError(`batched and unbatched runs generated different tokens: ${[...texts].join(' vs ')}`);
  return { ...o, runs };
}

const mib = (b: number) => (b / 1048576).toFixed(2);

export function printProtocolBench(r: ProtocolBenchResult): void {
  console.log(`\n## fhec serve protocol per token (${r.backend}, loopback, prompt ${JSON.stringify(r.prompt)}, ${r.tokens} new tokens)`);
  console.log('| mode | step | key-holder round trips | refreshed ciphertexts | MiB client -> server | MiB server -> client |');
  console.log('|---|---|---:|---:|---:|---:|');
  for (const run of r.runs) {
    console.log(`| ${run.mode} | setup (evaluation keys, once) | - | - | ${mib(run.setup.bytesToServer)} | ${mib(run.setup.bytesToClient)} |`);
    for (const s of run.steps) console.log(`| ${run.mode} | ${s.step} | ${s.roundTrips} | ${s.ciphertexts} | ${mib(s.bytesToServer)} | ${mib(s.bytesToClient)} |`);
    const p = run.perDecodeToken;
    console.log(`| ${run.mode} | **per decode token (mean)** | **${p.roundTrips.toFixed(1)}** | ${p.ciphertexts.toFixed(1)} | **${mib(p.bytesToServer)}** | **${mib(p.bytesToClient)}** |`);
  }
  console.log(`generated bytes: ${r.runs[0]?.generated.join(',')}; wall: ${r.runs.map((x) => `${x.mode} ${x.wallS.toFixed(1)} s`).join(', ')}`);
}
