// `fhec serve` and `fhec client generate` on SEAL (really encrypted, 128-bit): three clients at once
// against one server on 127.0.0.1 each print exactly onnxruntime's greedy bytes for their own prompt
// (prompts chosen with different answers, so a mix-up between sessions shows); then a server killed
// with SIGKILL in the middle of a generation and started again on the same state folder: the client
// reconnects, re-sends its evaluation keys, resumes from the last completed step, and prints the bytes
// of an uninterrupted run. The serve tests' plan (zoo model Z1, test/helpers/serve-plan.ts). The concurrent clients ask 2, 1 and 1 new bytes:
// one decode step runs while the other sessions prefill (each session's KV cache its own), and the
// decode steps of all three would add minutes on 2 cores without testing more; the resumed client
// asks 2 (a prefill and one decode step), its server started with --key-holder-rotations (the client's key
// holder returns the plan's rotations of refresh results; off in the first server). Slow: key generation and three generations share 2 cores.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ortGreedy } from './helpers/ort-greedy.js';
import { freePort, health, runClient, savedStep, startServe, type Served } from './helpers/serve.js';
import { FP32_MODEL, servePlan } from './helpers/serve-plan.js';

const PROMPTS = ['She ', 'The ', 'It w'];
const NEW_EACH = [2, 1, 1];
const NEW = 2;

function text(bytes: number[]): string {
  return new TextDecoder().decode(Uint8Array.from(bytes));
}

describe('fhec serve on SEAL', () => {
  let plan: string;
  const servers: Served[] = [];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-serve-seal-'));

  beforeAll(() => {
    plan = servePlan();
  }, 900_000);
  afterAll(() => {
    for (const s of servers) s.proc.kill('SIGKILL');
  });

  it('three concurrent clients each get onnxruntime\'s greedy bytes for their prompt', async () => {
    const expected = await Promise.all(PROMPTS.map(async (p, i) => text(await ortGreedy(FP32_MODEL, p, NEW_EACH[i]!))));
    expect(new Set(expected).size).toBe(PROMPTS.length);
    const server = await startServe([plan, '--port', '0', '--no-browser', '--max-sessions', '3', '--plaintext-cache-mib', '128']);
    servers.push(server);
    const runs = await Promise.all(PROMPTS.map((p, i) => runClient(['--server', server.url, '--plan', plan, '--prompt', p, '--max-new-tokens', String(NEW_EACH[i]), '--no-progress'])));
    runs.forEach((r, i) => {
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toBe(`${expected[i]}\n`);
      expect(r.stderr).toMatch(/^SEAL, encrypted:/m);
      expect(r.stderr).not.toMatch(/SIMULATION/);
      expect(r.stderr).toMatch(/round trips: [1-9]\d* refresh \(key holder\)/);
      expect(r.stderr).toMatch(NEW_EACH[i]! > 1 ? /latency per generated token \(decode steps\): mean [\d.]+ s/ : /latency: prefill [\d.]+ s/);
      // The session's evaluator encodes the decode step's weight plaintexts while it waits on this client's
      // refresh answers (during the prefill); a prefill-only generation has no decode step to encode for.
      if (NEW_EACH[i]! > 1) expect(r.stderr).toMatch(/encoded ahead while waiting on the key holder: [1-9]\d* weight plaintexts \(per step: [1-9]/);
      else expect(r.stderr).not.toMatch(/encoded ahead/);
      // The client, the key holder, makes its replies' encryptions of zero while the server computes:
      // some replies use one, never more than one per refreshed ciphertext.
      const holder = /key holder work [\d.]+ s for (\d+) ciphertexts \((\d+) replies encrypted between rounds\)/.exec(r.stderr);
      expect(holder, r.stderr).not.toBeNull();
      expect(Number(holder![2])).toBeGreaterThan(0);
      expect(Number(holder![2])).toBeLessThanOrEqual(Number(holder![1]));
      // The server asks for no rotated copies unless told to (--key-holder-rotations, the resumed run below).
      expect(r.stderr).not.toMatch(/rotated copies/);
    });
    for (const r of runs) process.stderr.write(`${r.stderr}\n`);
    expect((await health(server.url)).sessions).toBe(0);
    server.proc.kill('SIGTERM');
    expect(await server.exited).toBe(0);
  }, 3_600_000);

  it('resumes after the server is killed with SIGKILL mid-generation and started again', async () => {
    const prompt = 'was ';
    const expected = text(await ortGreedy(FP32_MODEL, prompt, NEW));
    const port = String(await freePort());
    const state = path.join(tmp, 'state');
    // With the key holder's rotated copies (opt-in on a server): they survive the restart too.
    const args = [plan, '--port', port, '--no-browser', '--state-dir', state, '--plaintext-cache-mib', '128', '--key-holder-rotations'];
    const s1 = await startServe(args);
    servers.push(s1);
    // Kill once the prefill is done and saved: the client is then inside the decode step.
    const run = runClient(['--server', s1.url, '--plan', plan, '--prompt', prompt, '--max-new-tokens', String(NEW), '--no-progress', '--reconnect-timeout', '600']);
    let killed = false;
    const watch = setInterval(() => {
      if (!killed && savedStep(state) >= 1) {
        killed = true;
        s1.proc.kill('SIGKILL');
      }
    }, 20);
    await s1.exited;
    clearInterval(watch);
    expect(killed).toBe(true);
    const s2 = await startServe(args);
    servers.push(s2);
    const r = await run;
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/resumed at step 1/);
    expect(r.stdout).toBe(`${expected}\n`);
    const copies = /, (\d+) rotated copies of fresh values/.exec(r.stderr);
    expect(copies, r.stderr).not.toBeNull();
    expect(Number(copies![1])).toBeGreaterThan(0);
    process.stderr.write(`${r.stderr}\n`);
  }, 3_600_000);
});

