// `fhec serve` / `fhec client generate`: the protocol's refusals and faults, on the `sim` backend (a
// CKKS simulation, nothing encrypted: these tests are about sessions, frames and processes; the
// encrypted runs are in serve-seal.test.ts and serve-browser.test.ts). A bad frame gets a clear error
// on its own connection while another session's generation goes on and ends with the right bytes;
// a SEAL secret key is refused by its layout; a vanished client frees its session; a server killed
// with SIGKILL and started again resumes the generation; a server that stays away is a clear error.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import SEAL from 'node-seal';
import { makeParameters } from '../ir/ckks/params.js';
import { encodeKeys, encodeMessage } from '../runtime/generate/messages.js';
import { makeSealContext } from '../runtime/seal/module.js';
import { frame, readFrame, SERVICE_PATH } from '../service/protocol.js';
import { ortGreedy } from './helpers/ort-greedy.js';
import { freePort, health, runClient, savedStep, startServe, type Served } from './helpers/serve.js';
import { FP32_MODEL, servePlan } from './helpers/serve-plan.js';

const PROMPT = 'She ';

/** A raw protocol client: frames in, frames out. */
class Raw {
  readonly ws: WebSocket;
  readonly frames: Uint8Array[] = [];
  closed?: { code: number; reason: string };
  private wake?: () => void;
  constructor(url: string) {
    this.ws = new WebSocket(url.replace(/^http/, 'ws') + SERVICE_PATH);
    this.ws.on('message', (d: Buffer) => {
      this.frames.push(new Uint8Array(d));
      this.wake?.();
    });
    this.ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.wake?.();
    });
  }
  opened(): Promise<void> {
    return new Promise((r) => this.ws.once('open', () => r()));
  }
  send(b: Uint8Array | string): void {
    this.ws.send(b);
  }
  /** The next frame, decoded (an error frame throws the server's message). */
  async next(): Promise<{ header: Record<string, unknown>; blob?: Uint8Array }> {
    while (this.frames.length === 0) {
      if (this.closed) throw new Error(`closed ${this.closed.code} ${this.closed.reason}`);
      await new Promise<void>((r) => (this.wake = r));
    }
    return readFrame(this.frames.shift()!, ['session', 'resumed', 'reply', 'refresh']) as { header: Record<string, unknown>; blob?: Uint8Array };
  }
  async closedWith(): Promise<{ code: number; reason: string }> {
    while (!this.closed) await new Promise<void>((r) => (this.wake = r));
    return this.closed;
  }
}

async function hello(url: string): Promise<{ raw: Raw; session: string }> {
  const raw = new Raw(url);
  await raw.opened();
  raw.send(frame({ kind: 'hello', plan: 'gen', promptTokens: 4, maxNewTokens: 2 } as { kind: string }));
  const f = await raw.next();
  return { raw, session: f.header['session'] as string };
}

describe('fhec serve protocol (sim backend)', () => {
  let plan: string;
  let server: Served;
  let expected: string;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-serve-protocol-'));

  beforeAll(async () => {
    plan = servePlan();
    server = await startServe([plan, '--port', '0', '--backend', 'sim', '--no-browser', '--max-sessions', '3', '--max-message-mib', '64']);
    expected = new TextDecoder().decode(Uint8Array.from(await ortGreedy(FP32_MODEL, PROMPT, 2)));
  }, 900_000);
  const others: Served[] = [];
  afterAll(() => {
    for (const s of [server, ...others]) s?.proc.kill('SIGKILL');
  });

  it('answers health and lists its plan', async () => {
    const h = await health(server.url);
    expect(h).toMatchObject({ status: 'ok', sessions: 0, maxSessions: 3 });
    const plans = (await (await fetch(`${server.url}/v1/plans`)).json()) as { name: string; vocab: number }[];
    expect(plans.map((p) => [p.name, p.vocab])).toEqual([['gen', 256]]);
  });

  it('refuses bad frames on their own connection while another generation goes on', async () => {
    const good = runClient(['--server', server.url, '--plan', plan, '--prompt', PROMPT, '--max-new-tokens', '2', '--backend', 'sim', '--no-progress']);
    // Not a frame at all; a truncated frame; a text frame.
    for (const bad of [new Uint8Array([1, 2, 3]), frame({ kind: 'hello', plan: 'gen', promptTokens: 4, maxNewTokens: 2 } as { kind: string }).subarray(0, 20), 'hello']) {
      const raw = new Raw(server.url);
      await raw.opened();
      raw.send(bad);
      await expect(raw.next()).rejects.toThrow(/not a generation protocol message|truncated|frames must be binary/);
      expect((await raw.closedWith()).code).toBe(1008);
    }
    // A frame naming another session; a request out of order; a refresh reply nobody asked for (replayed).
    const a = await hello(server.url);
    const b = await hello(server.url);
    expect(a.session).toMatch(/^[0-9a-f]{32}$/);
    a.raw.send(frame({ kind: 'call', session: b.session, seq: 1 } as { kind: string }, encodeMessage({ kind: 'close' })));
    await expect(a.raw.next()).rejects.toThrow(/frame for session .* on the connection of session .*: refused/);
    b.raw.send(frame({ kind: 'call', session: b.session, seq: 2 } as { kind: string }, encodeMessage({ kind: 'close' })));
    await expect(b.raw.next()).rejects.toThrow(/request 2 out of order \(expected 1\)/);
    const c = await hello(server.url);
    c.raw.send(frame({ kind: 'refreshed', session: c.session, seq: 1 } as { kind: string }, new Uint8Array(8)));
    await expect(c.raw.next()).rejects.toThrow(/refresh reply 1 answers no outstanding request .*replayed or out of order/);
    // Larger than --max-message-mib: the connection closes with "message too big".
    const d = new Raw(server.url);
    await d.opened();
    // (The limit sits above the largest honest message: a whole refresh round travels in one frame.)
    d.send(new Uint8Array(65 * 1048576));
    expect((await d.closedWith()).code).toBe(1009);
    // An unknown plan, and a context the plan does not have.
    const e = new Raw(server.url);
    await e.opened();
    e.send(frame({ kind: 'hello', plan: 'nope', promptTokens: 4, maxNewTokens: 2 } as { kind: string }));
    await expect(e.next()).rejects.toThrow(/no plan named 'nope' \(this server has gen\)/);
    const f = new Raw(server.url);
    await f.opened();
    f.send(frame({ kind: 'hello', plan: 'gen', promptTokens: 4, maxNewTokens: 9 } as { kind: string }));
    await expect(f.next()).rejects.toThrow(/needs a context of 12, plan gen has 7/);
    // The good client was not disturbed.
    const r = await good;
    expect(r.stderr).toMatch(/SIMULATION/);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${expected}\n`);
    expect(r.stderr).toMatch(/round trips: [1-9]\d* refresh/);
  }, 600_000);

  it('refuses a SEAL secret key sent as an evaluation key', async () => {
    const p = makeParameters({ ringDegree: 16384, bitSizes: [60, 40, 40, 40, 40, 60], scale: 2 ** 40 });
    const seal = await SEAL();
    const { context } = makeSealContext(seal, p);
    const keygen = new seal.KeyGenerator(context);
    const sk = keygen.secretKey().saveToArray(seal.ComprModeType.none) as Uint8Array;
    const pk = keygen.createPublicKey().saveToArray(seal.ComprModeType.none) as Uint8Array;
    const { raw, session } = await hello(server.url);
    raw.send(frame({ kind: 'call', session, seq: 1 } as { kind: string }, encodeKeys({ backend: 'seal', parametersId: 'x', publicKey: sk, galoisSteps: [] })));
    await expect(raw.next()).rejects.toThrow(/keys refused: the public key is a SEAL SecretKey .*never leaves the client/);
    // The same check passes a real public key (it is not refused as a secret key).
    const ok = await hello(server.url);
    ok.raw.send(frame({ kind: 'call', session: ok.session, seq: 1 } as { kind: string }, encodeKeys({ backend: 'seal', parametersId: 'x', publicKey: pk, galoisSteps: [] })));
    const reply = await ok.raw.next().catch((e: Error) => e);
    expect(String(reply instanceof Error ? reply.message : '')).not.toMatch(/SecretKey/);
    ok.raw.ws.close();
  }, 120_000);

  it('frees the session of a client that disappears', async () => {
    await new Promise((r) => setTimeout(r, 500));
    const before = (await health(server.url)).sessions;
    const { raw } = await hello(server.url);
    expect((await health(server.url)).sessions).toBe(before + 1);
    raw.ws.terminate();
    for (let i = 0; i < 50 && (await health(server.url)).sessions > before; i++) await new Promise((r) => setTimeout(r, 100));
    expect((await health(server.url)).sessions).toBe(before);
  });

  it('resumes after kill -9 and restart, and gives a clear error when the server stays away', async () => {
    const port = String(await freePort());
    const state = path.join(tmp, 'state');
    const args = [plan, '--port', port, '--backend', 'sim', '--no-browser', '--state-dir', state];
    let s1 = await startServe(args);
    others.push(s1);
    // Kill the server once the first step is done (the client is then inside step 2).
    let killed = false;
    const watch = setInterval(() => {
      if (!killed && savedStep(state) >= 1) {
        killed = true;
        s1.proc.kill('SIGKILL');
      }
    }, 20);
    const run = runClient(['--server', s1.url, '--plan', plan, '--prompt', PROMPT, '--max-new-tokens', '2', '--backend', 'sim', '--no-progress', '--reconnect-timeout', '120']);
    await s1.exited;
    clearInterval(watch);
    expect(killed).toBe(true);
    s1 = await startServe(args);
    others.push(s1);
    const r = await run;
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/resumed at step 1/);
    expect(r.stdout).toBe(`${expected}\n`);
    // Now a server that goes away for good, once the new session has saved its first state.
    const before = new Set(fs.readdirSync(state));
    const run2 = runClient(['--server', s1.url, '--plan', plan, '--prompt', PROMPT, '--max-new-tokens', '2', '--backend', 'sim', '--no-progress', '--reconnect-timeout', '2']);
    const started = () => fs.readdirSync(state).some((d) => !before.has(d) && fs.existsSync(path.join(state, d, 'state.bin')));
    for (let i = 0; i < 6000 && !started(); i++) await new Promise((r2) => setTimeout(r2, 50));
    expect(started()).toBe(true);
    s1.proc.kill('SIGKILL');
    const r2 = await run2;
    expect(r2.status).toBe(2);
    expect(r2.stderr).toMatch(/fhec: error: the connection to http:\/\/127\.0\.0\.1:\d+\/? closed \(code 1006\).*did not come back within 2 s/);
  }, 600_000);
});

