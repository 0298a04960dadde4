// Encrypted generation against `fhec serve`, as a library (Node 22+ and browsers): the client makes
// its keys, encrypts the prompt, answers the server's refresh requests as the key holder, decrypts and
// detokenizes; the secret key never leaves this process (or page). The refresh schedule the key holder
// enforces is the client's own (runtime/generate/client-schedule.ts: derived from its copy of the plan,
// or a schedule file whose sha256 it trusts), never the server's: the client picks the served plan
// whose announced schedule digest equals its own, checks the session's digest again, and refuses any
// refresh request outside its schedule (wrong value, level, scale, bound, order, or one too many). The
// embedding table comes over HTTP and is checked against the digest in the client's own schedule.
// A lost connection (the server killed, or restarted) is resumed: the client reconnects, re-sends its
// evaluation keys, and the server continues from the last completed step it kept on disk; a server
// that does not come back within `reconnectMs` is a clear error.

import { FhecError } from '../../ir/errors.js';
import type { CkksBackend } from '../../runtime/backend.js';
import { GenerationClient, type ClientPlans, type GenerationResult, type StepRecord } from '../../runtime/generate/client.js';
import type { ClientModel } from '../../runtime/generate/manifest.js';
import { decodeMessage } from '../../runtime/generate/messages.js';
import { generationSteps, shapeName } from '../../runtime/generate/plan-source.js';
import { checkScheduleCovers, readClientSchedule, schedulePlans, sha256Hex, type LoadedSchedule } from '../../runtime/generate/client-schedule.js';
import { ByteTokenizer } from '../../runtime/generate/tokenizer.js';
import { formatMasksAhead, formatPrefetched } from '../../runtime/generate/summary-lines.js';
import type { PlanInfo } from '../protocol.js';
import { ConnectionLost, SessionConnection, type Traffic } from './connection.js';

export interface RemoteGenerateOptions {
  /** The server's base URL, e.g. http://127.0.0.1:8080 */
  server: string;
  /**
   * The refresh schedule the key holder enforces, from the client's own copy of the plan (the CLI's
   * --plan), or fetchClientSchedule with a digest the user trusts. The served plan is the one whose
   * announced schedule digest equals this one's.
   */
  schedule: LoadedSchedule;
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

const short = (h: string) => `${h.slice(0, 12)}...`;

/** The served plan whose refresh schedule is `schedule` (by its announced digest). */
async function servedPlan(server: string, schedule: LoadedSchedule): Promise<PlanInfo> {
  const plans = await getJson<PlanInfo[]>(new URL('/v1/plans', server).href);
  if (plans.length === 0) throw new FhecError(`the server at ${server} serves no plans`);
  const info = plans.find((p) => p.scheduleSha256 === schedule.sha256);
  if (!info) {
    throw new FhecError(
      `the server at ${new URL(server).origin} serves no plan with your plan's refresh schedule (sha256 ${short(schedule.sha256)}); it serves ${plans.map((p) => `${p.name} (schedule sha256 ${short(String(p.scheduleSha256))})`).join(', ')}: ` +
        'it runs another plan than your copy, and its refresh requests would not be the ones your key holder accepts',
    );
  }
  return info;
}

/**
 * The refresh schedule the server serves for a plan, accepted only if its sha256 is `sha256`, a digest
 * the user got from a copy of the plan they trust (`fhec client schedule PLAN.json` prints it): the
 * server's own word on the digest is not evidence.
 */
export async function fetchClientSchedule(server: string, sha256: string): Promise<LoadedSchedule> {
  const want = sha256.trim().toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(want)) throw new FhecError(`'${sha256}' is not a sha256 (64 hex digits): give the digest \`fhec client schedule PLAN.json\` prints for your copy of the plan`, { field: 'schedule sha256' });
  const plans = await getJson<PlanInfo[]>(new URL('/v1/plans', server).href);
  const info = plans.find((p) => p.scheduleSha256 === want);
  if (!info) throw new FhecError(`the server at ${new URL(server).origin} serves no plan whose refresh schedule has sha256 ${short(want)} (it announces ${plans.map((p) => `${p.name}: ${short(String(p.scheduleSha256))}`).join(', ') || 'no plans'})`);
  const bytes = new Uint8Array(await (await fetchOrFail(new URL(`/v1/plans/${encodeURIComponent(info.name)}/schedule`, server).href)).arrayBuffer());
  const got = await readClientSchedule(bytes, `the refresh schedule of ${info.name} from ${new URL(server).origin}`);
  if (got.sha256 !== want) throw new FhecError(`the refresh schedule the server sent has sha256 ${short(got.sha256)}, not the ${short(want)} you gave: refused (the server is not serving the plan you trust)`);
  return got;
}

/** The served plan matching the client's schedule, and the embedding table (checked against the schedule's digest, not the server's). */
export async function fetchClientModel(server: string, schedule: LoadedSchedule): Promise<{ info: PlanInfo; model: ClientModel }> {
  const info = await servedPlan(server, schedule);
  const s = schedule.schedule;
  const bytes = new Uint8Array(await (await fetchOrFail(new URL(`/v1/plans/${encodeURIComponent(info.name)}/embedding`, server).href)).arrayBuffer());
  if (bytes.length !== s.vocab * s.dim * 4) throw new FhecError(`the embedding table has ${bytes.length} bytes, your plan says ${s.vocab} x ${s.dim} float32`);
  if ((await sha256Hex(bytes)) !== s.embeddingSha256) throw new FhecError('the embedding table the server sent does not match your plan\'s sha256');
  if (s.tokenizer !== 'bytes') throw new FhecError('this plan uses a Hugging Face tokenizer: the remote client encodes UTF-8 bytes only (use fhec generate)');
  return { info, model: { vocab: s.vocab, dim: s.dim, table: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4), params: s.params } };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function generateRemote(o: RemoteGenerateOptions): Promise<RemoteGenerationResult> {
  const t0 = performance.now();
  const own = o.schedule;
  const plans: ClientPlans = schedulePlans(own.schedule);
  const { info, model } = await fetchClientModel(o.server, own);
  const tokenizer = new ByteTokenizer(model.vocab);
  const promptTokens = tokenizer.encode(o.prompt).length;
  // Refuse before any key is made if the generation needs a step the schedule lacks.
  const context = promptTokens + o.maxNewTokens - 1;
  if (context > own.schedule.maxContext) throw new FhecError(`a prompt of ${promptTokens} tokens and ${o.maxNewTokens} new tokens needs a context of ${context}, your plan has ${own.schedule.maxContext}`, { field: '--max-new-tokens' });
  checkScheduleCovers(own.schedule, generationSteps(plans, promptTokens, o.maxNewTokens));
  const traffic: Traffic = { refreshRoundTrips: 0, calls: 0, bytesSent: 0, bytesReceived: 0 };
  let client: GenerationClient | undefined;
  const conn = new SessionConnection(o.server, (req) => client!.keyHolder(req), traffic);
  o.onStatus?.('connecting');
  await conn.connect();
  const session = await conn.hello(info.name, promptTokens, o.maxNewTokens);
  if (session.scheduleSha256 !== own.sha256) {
    conn.close();
    throw new FhecError(`the server's session runs a plan whose refresh schedule has sha256 ${short(String(session.scheduleSha256))}, yours has ${short(own.sha256)}: refused`);
  }
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
    `bytes: ${mib(r.traffic.bytesSent)} sent, ${mib(r.traffic.bytesReceived)} received (evaluation keys included); key holder work ${s(r.result.keyHolder.ms)} for ${r.result.keyHolder.ciphertexts} ciphertexts${r.result.keyHolder.repliesAhead > 0 ? ` (${r.result.keyHolder.repliesAhead} replies encrypted between rounds)` : ''}${r.result.keyHolder.rotatedCopies > 0 ? `, ${r.result.keyHolder.rotatedCopies} rotated copies of fresh values` : ''}`,
    `per step: ${traffic.join('; ')}`,
    ...formatPrefetched(steps.map((x) => x.evaluator)),
    ...formatMasksAhead(steps.map((x) => x.evaluator)),
    ...(r.resumes > 0 ? [`resumed ${r.resumes} time(s) after a lost connection`] : []),
    `total ${s(r.totalMs)}`,
  ];
}
