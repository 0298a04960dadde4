// Encrypted generation against `fhec serve`, as a library (Node 22+ and browsers): the client makes
// its keys, encrypts the prompt, answers the server's refresh requests as the key holder, decrypts and
// detokenizes; the secret key never leaves this process (or page). The server's plan facts and the
// embedding table come over HTTP (the table is checked against the plan's sha256); the refresh
// schedule of every step comes with the session, and the key holder refuses any request outside it.
// A lost connection (the server killed, or restarted) is resumed: the client reconnects, re-sends its
// evaluation keys, and the server continues from the last completed step it kept on disk; a server
// that does not come back within `reconnectMs` is a clear error.

import { FhecError } from '../../ir/errors.js';
import type { CkksBackend } from '../../runtime/backend.js';
import { GenerationClient, type ClientPlans, type GenerationResult, type StepRecord } from '../../runtime/generate/client.js';
import type { ClientModel } from '../../runtime/generate/manifest.js';
import { decodeMessage } from '../../runtime/generate/messages.js';
import { shapeName } from '../../runtime/generate/plan-source.js';
import { ByteTokenizer } from '../../runtime/generate/tokenizer.js';
import type { PlanInfo } from '../protocol.js';
import { ConnectionLost, SessionConnection, type Traffic } from './connection.js';

export interface RemoteGenerateOptions {
  /** The server's base URL, e.g. http://127.0.0.1:8080 */
  server: string;
  /** Plan name (default: the server's only plan). */
  plan?: string;
  prompt: string | Uint8Array;
  maxNewTokens: number;
  /** The CKKS backend of the client (the server's plan says which: seal, or sim for tests). */
  backend: CkksBackend;
  /** Least hiding per refreshed ciphertext the key holder accepts (default 40 bits). */
  minHidingBits?: number;
  /** Called after every step, with the text so far. */
  onStep?: (done: number, total: number, record: StepRecord, text: string) => void;
  /** Told about setup phases and resumes, for progress displays. */
  onStatus?: (message: string) => void;
  /** How long to try to reconnect after losing the server (default 120 s). */
  reconnectMs?: number;
  /** How many times a generation may resume (default 3). */
  maxResumes?: number;
}

export interface RemoteGenerationResult {
  result: GenerationResult;
  session: string;
  plan: PlanInfo;
  traffic: Traffic;
  /** Traffic during each step (from the step's request to its reply: embeddings, refreshes, logits). */
  stepTraffic: Traffic[];
  resumes: number;
  totalMs: number;
}

async function getJson<T>(url: string): Promise<T> {
  const r = await fetchOrFail(url);
  return (await r.json()) as T;
}

async function fetchOrFail(url: string): Promise<Response> {
  let r: Response;
  try {
    r = await fetch(url);
  } catch (e) {
    throw new FhecError(`cannot reach the server at ${new URL(url).origin}: ${(e as Error).message}`);
  }
  if (!r.ok) throw new FhecError(`${url}: HTTP ${r.status} ${await r.text()}`);
  return r;
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The plan facts and the embedding table a client needs, from the server. */
export async function fetchClientModel(server: string, plan?: string): Promise<{ info: PlanInfo; model: ClientModel }> {
  const plans = await getJson<PlanInfo[]>(new URL('/v1/plans', server).href);
  if (plans.length === 0) throw new FhecError(`the server at ${server} serves no plans`);
  const info = plan ? plans.find((p) => p.name === plan) : plans[0];
  if (!info) throw new FhecError(`the server has no plan '${plan}' (it has ${plans.map((p) => p.name).join(', ')})`);
  if (!plan && plans.length > 1) throw new FhecError(`the server has ${plans.length} plans (${plans.map((p) => p.name).join(', ')}): name one`);
  const bytes = new Uint8Array(await (await fetchOrFail(new URL(`/v1/plans/${encodeURIComponent(info.name)}/embedding`, server).href)).arrayBuffer());
  if (bytes.length !== info.vocab * info.dim * 4) throw new FhecError(`the embedding table has ${bytes.length} bytes, the plan says ${info.vocab} x ${info.dim} float32`);
  if ((await sha256Hex(bytes)) !== info.embeddingSha256) throw new FhecError('the embedding table does not match the plan\'s sha256');
  return { info, model: { vocab: info.vocab, dim: info.dim, table: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4), params: info.params } };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function generateRemote(o: RemoteGenerateOptions): Promise<RemoteGenerationResult> {
  const t0 = performance.now();
  const { info, model } = await fetchClientModel(o.server, o.plan);
  const tokenizer = new ByteTokenizer(model.vocab);
  const promptTokens = tokenizer.encode(o.prompt).length;
  const traffic: Traffic = { refreshRoundTrips: 0, calls: 0, bytesSent: 0, bytesReceived: 0 };
  let client: GenerationClient | undefined;
  const conn = new SessionConnection(o.server, (req) => client!.keyHolder(req), traffic);
  o.onStatus?.('connecting');
  await conn.connect();
  const session = await conn.hello(info.name, promptTokens, o.maxNewTokens);
  const stepNames = session.steps.map(shapeName).join();
  const plans: ClientPlans = {
    prefillLengths: () => info.prefill,
    refreshPoints: (steps, i) => {
      if (steps.map(shapeName).join() !== stepNames) throw new FhecError('the generation\'s steps are not the session\'s');
      const points = session.schedules[i];
      if (!Array.isArray(points)) throw new FhecError(`the server sent no refresh schedule for step ${i}`);
      return points;
    },
  };
  client = new GenerationClient(o.backend, model, plans, o.minHidingBits);
  let keysRequest: Uint8Array | undefined;
  let resumes = 0;
  const reconnectMs = o.reconnectMs ?? 120_000;
  const maxResumes = o.maxResumes ?? 3;

  /** Reconnects and resumes; returns the reply to `request` if the server already answered it before it went away. */
  const resume = async (request: Uint8Array, why: string): Promise<Uint8Array | undefined> => {
    if (++resumes > maxResumes) throw new FhecError(`${why}; resumed ${maxResumes} times already, giving up`);
    const deadline = performance.now() + reconnectMs;
    for (let delay = 250; ; delay = Math.min(delay * 2, 4000)) {
      o.onStatus?.(`${why}: reconnecting`);
      try {
        await conn.connect();
        break;
      } catch (e) {
        if (!(e instanceof ConnectionLost)) throw e;
        if (performance.now() > deadline) throw new FhecError(`${why}, and the server did not come back within ${Math.round(reconnectMs / 1000)} s`);
        await sleep(delay);
      }
    }
    const r = await conn.resume(info.name, session.session);
    o.onStatus?.(`resumed at step ${r.header.next}`);
    // The step in flight may have been completed and saved before the server went away: its reply
    // comes with the resume. Otherwise the new evaluator runs it again from its start.
    const h = decodeMessage<{ kind: string; index?: number }>(request, ['open', 'keys', 'step', 'close']).header;
    const saved = h.kind === 'step' && h.index === r.header.next - 1 && r.lastReply ? r.lastReply : undefined;
    client!.restartEvaluator(!saved);
    if (keysRequest && request !== keysRequest) decodeMessage(await conn.call(keysRequest), ['ready']);
    return saved;
  };

  let setupTraffic: Traffic | undefined;
  const channel = async (request: Uint8Array): Promise<Uint8Array> => {
    const kind = decodeMessage(request, ['open', 'keys', 'step', 'close']).header.kind;
    if (kind === 'keys') keysRequest = request;
    if (kind === 'step') setupTraffic ??= { ...traffic };
    for (;;) {
      try {
        return await conn.call(request);
      } catch (e) {
        if (!(e instanceof ConnectionLost)) throw e;
        const done = await resume(request, e.why);
        if (done) return done;
      }
    }
  };

  try {
    const generated: number[] = [];
    const stepTraffic: Traffic[] = [];
    let mark: Traffic | undefined;
    const result = await client.generate(o.prompt, o.maxNewTokens, channel, {
      onStep: (done, total, rec) => {
        // Steps follow one another; the first starts after the keys' reply (setup is not a step's traffic).
        const now = { ...traffic };
        const from = mark ?? setupTraffic ?? now;
        stepTraffic.push({ refreshRoundTrips: now.refreshRoundTrips - from.refreshRoundTrips, calls: now.calls - from.calls, bytesSent: now.bytesSent - from.bytesSent, bytesReceived: now.bytesReceived - from.bytesReceived });
        mark = now;
        if (rec.next !== undefined) generated.push(rec.next);
        o.onStep?.(done, total, rec, tokenizer.decode(generated));
      },
    });
    return { result, session: session.session, plan: info, traffic, stepTraffic, resumes, totalMs: performance.now() - t0 };
  } finally {
    conn.close();
    client.dispose();
  }
}

/** The summary `fhec client generate` prints (and the page shows). */
export function formatRemoteSummary(r: RemoteGenerationResult, label: string): string[] {
  const steps = r.result.steps;
  const dec = steps.slice(1);
  const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const perStep = steps.map((x) => `${shapeName(x.shape)} ${s(x.ms)}`).join(', ');
  const traffic = steps.map((x, i) => {
    const t = r.stepTraffic[i]!;
    return `${shapeName(x.shape)}: ${t.refreshRoundTrips} refresh round trips, ${mib(t.bytesSent)} sent, ${mib(t.bytesReceived)} received`;
  });
  return [
    label,
    `session ${r.session.slice(0, 8)}... on plan ${r.plan.name}: setup (keys, upload) ${s(r.result.setupMs)}, ${steps.length} steps (${perStep})`,
    dec.length > 0 ? `latency per generated token (decode steps): mean ${s(dec.reduce((a, x) => a + x.ms, 0) / dec.length)}` : `latency: prefill ${s(steps[0]!.ms)}`,
    `round trips: ${r.traffic.refreshRoundTrips} refresh (key holder), ${r.traffic.calls} evaluator calls`,
    `bytes: ${mib(r.traffic.bytesSent)} sent, ${mib(r.traffic.bytesReceived)} received (evaluation keys included); key holder work ${s(r.result.keyHolder.ms)} for ${r.result.keyHolder.ciphertexts} ciphertexts`,
    `per step: ${traffic.join('; ')}`,
    ...(r.resumes > 0 ? [`resumed ${r.resumes} time(s) after a lost connection`] : []),
    `total ${s(r.totalMs)}`,
  ];
}
