// The remote key holder enforces the refresh schedule of the client's OWN copy of the plan, never one
// the server supplies (issue 16): a server that runs another plan (a larger bound at a refresh point)
// is refused when its digest differs, and, when it lies about the digest, by the key holder at the
// first request that plan changes; a server that adds a refresh to a request, or reorders one, is
// refused; without --plan the CLI refuses with a clear error; the schedule file `fhec client schedule`
// writes has the digest the server announces, and a client taking the server's copy accepts it only
// under the digest it was given. (The honest path, `fhec client generate --plan` printing onnxruntime's
// greedy bytes, is in serve-protocol.test.ts and serve-seal.test.ts.) sim backend (these are protocol checks: which requests the key holder
// accepts does not depend on the backend's arithmetic).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ownSchedule } from '../compiler/commands/client.js';
import type { LoadedSchedule } from '../runtime/generate/client-schedule.js';
import { simBackend } from '../runtime/sim/backend.js';
import { fetchClientSchedule, generateRemote } from '../service/client/remote-generation.js';
import { lyingProxy, type Lies } from './helpers/lying-proxy.js';
import { runClient, startServe, type Served } from './helpers/serve.js';
import { servePlan } from './helpers/serve-plan.js';
import { fhec } from './helpers/cli.js';

const PROMPT = 'She ';

/** A copy of the plan whose prefill plan has every refresh bound 1.25 times larger (the weights shared by a link). */
function planWithLargerBounds(plan: string, into: string): string {
  const steps = path.join(path.dirname(plan), 'gen.steps');
  const out = path.join(into, 'gen.steps');
  fs.mkdirSync(out, { recursive: true });
  fs.copyFileSync(plan, path.join(into, 'gen.json'));
  fs.copyFileSync(path.join(path.dirname(plan), 'gen.embedding.bin'), path.join(into, 'gen.embedding.bin'));
  for (const f of fs.readdirSync(steps)) {
    if (f === 'weights') fs.symlinkSync(path.join(steps, f), path.join(out, f));
    else fs.copyFileSync(path.join(steps, f), path.join(out, f));
  }
  const prefill = path.join(out, 'prefill-4.json');
  const doc = JSON.parse(fs.readFileSync(prefill, 'utf8')) as { refreshPoints: { bound: number }[] };
  for (const p of doc.refreshPoints) p.bound *= 1.25;
  fs.writeFileSync(prefill, JSON.stringify(doc));
  return path.join(into, 'gen.json');
}

describe('the remote key holder enforces its own copy of the plan (sim backend)', () => {
  let plan: string;
  let honest: Served;
  let lying: Served;
  let mine: LoadedSchedule;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-serve-schedule-'));

  beforeAll(async () => {
    plan = servePlan();
    const flags = ['--port', '0', '--backend', 'sim', '--no-browser', '--log-level', 'warn'];
    // The honest server compiles the decode plans at start; the copy takes them along.
    honest = await startServe([plan, ...flags]);
    lying = await startServe([planWithLargerBounds(plan, tmp), ...flags]);
    mine = await ownSchedule(plan);
  }, 900_000);
  afterAll(() => {
    for (const s of [honest, lying]) s?.proc.kill('SIGKILL');
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const generate = (server: string) => generateRemote({ server, schedule: mine, prompt: PROMPT, maxNewTokens: 2, backend: simBackend });

  it('derives the digest the server announces, and `fhec client schedule` prints it', async () => {
    const plans = (await (await fetch(`${honest.url}/v1/plans`)).json()) as { scheduleSha256: string }[];
    expect(plans[0]!.scheduleSha256).toBe(mine.sha256);
    const file = path.join(tmp, 'schedule.json');
    const run = fhec('client', 'schedule', plan, '-o', file);
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout.trim()).toBe(mine.sha256);
    // The file is accepted by --plan as the plan itself (same digest).
    expect((await ownSchedule(file)).sha256).toBe(mine.sha256);
    // A context of 7 after a prefill of 4: decode steps at pasts 4, 5 and 6, each after a cache carry.
    expect(Object.keys(mine.schedule.steps)).toEqual(['prefill-4', 'prefill-4 -> decode-4', 'decode-4 -> decode-5', 'decode-5 -> decode-6']);
  });

  it('refuses a server running another plan (a larger refresh bound) by its digest', async () => {
    await expect(generate(lying.url)).rejects.toThrow(/serves no plan with your plan's refresh schedule \(sha256 [0-9a-f]{12}\.\.\.\); it serves gen \(schedule sha256 [0-9a-f]{12}\.\.\.\)/);
  });

  it('refuses a larger bound when the server lies about its digest', async () => {
    const proxy = await lyingProxy(lying.url, { scheduleSha256: mine.sha256 });
    try {
      await expect(generate(proxy.url)).rejects.toThrow(/refresh request sizes the mask of '[^']+' for bound [\d.e+-]+, the plan's bound is [\d.e+-]+/);
    } finally {
      await proxy.close();
    }
  }, 120_000);

  const lies: [string, Lies['refresh'], RegExp][] = [
    ['an extra refresh in a request', (r) => ({ ...r, items: [...r.items, r.items[r.items.length - 1]!] }), /refresh request refused, session ended: step 0, refresh point \d+ of \d+: the evaluator asks for refresh of/],
    ['two refreshes out of order', (r, n) => (n === 1 && r.items.length < 2 ? r : { ...r, items: [r.items[1]!, r.items[0]!, ...r.items.slice(2)] }), /refresh request refused, session ended: step 0, refresh point \d+ of \d+: the evaluator asks for refresh of '[^']+', the plan's next refresh point is the refresh of/],
  ];
  for (const [what, refresh, why] of lies) {
    it(`refuses ${what} from a server with the right digest`, async () => {
      const proxy = await lyingProxy(honest.url, { refresh });
      try {
        await expect(generate(proxy.url)).rejects.toThrow(why);
      } finally {
        await proxy.close();
      }
    }, 120_000);
  }

  it('takes the server\'s copy of the schedule only under the digest the user gives', async () => {
    const wrong = mine.sha256.replace(/^./, (c) => (c === '0' ? '1' : '0'));
    await expect(fetchClientSchedule(honest.url, wrong)).rejects.toThrow(/serves no plan whose refresh schedule has sha256/);
    await expect(fetchClientSchedule(honest.url, 'abc')).rejects.toThrow(/is not a sha256/);
    // A server that announces the digest but sends other bytes is refused too.
    const proxy = await lyingProxy(lying.url, { scheduleSha256: mine.sha256 });
    try {
      await expect(fetchClientSchedule(proxy.url, mine.sha256)).rejects.toThrow(/the refresh schedule the server sent has sha256 [0-9a-f]{12}\.\.\., not the [0-9a-f]{12}\.\.\. you gave: refused/);
    } finally {
      await proxy.close();
    }
    const got = await fetchClientSchedule(honest.url, mine.sha256);
    expect(got.schedule).toEqual(mine.schedule);
  });

  it('refuses to generate without --plan, naming it (exit 2)', async () => {
    const run = await runClient(['--server', honest.url, '--prompt', PROMPT, '--max-new-tokens', '2', '--backend', 'sim', '--no-progress']);
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/needs --plan FILE: your own copy of the served generation plan/);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });
});
