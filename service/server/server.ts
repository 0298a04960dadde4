// `fhec serve`: the evaluator as a network service. fastify serves the health endpoint, the list of
// plans (public facts and the embedding table the client looks tokens up in), the browser page, and
// one WebSocket per generation (protocol.ts). Each served plan's refresh schedule (the public document a
// client's key holder checks requests against, runtime/generate/client-schedule.ts) is derived at start;
// its sha256 is announced with the plan and with every session, and its bytes are served for clients
// that check them against a digest they trust (the browser page). Each session runs in a worker thread (session.ts) with
// limits: sessions at once, memory per session, idle expiry, message size. Logs are fastify's pino
// JSON lines. SIGTERM closes the listener, tells every client, stops the workers and exits; session
// state on disk (--state-dir) stays, so a server started again resumes those sessions.

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import websocket from '@fastify/websocket';
import fastifyStatic from '@fastify/static';
import type { WebSocket } from 'ws';
import { FhecError } from '../../ir/errors.js';
import { makeParameters } from '../../ir/ckks/params.js';
import { readGenerationManifest } from '../../runtime/generate/manifest.js';
import { buildClientSchedule, checkScheduleCovers, encodeClientSchedule, sha256Hex, type ClientSchedule } from '../../runtime/generate/client-schedule.js';
import type { GenerationPlanSource } from '../../runtime/generate/plan-source.js';
import { readCheckedFile } from '../../runtime/plan/files.js';
import { CLIENT_KINDS, errorFrame, frame, readFrame, SERVICE_PATH, SESSION_ID, type CallHeader, type HelloHeader, type PlanInfo, type ResumeHeader } from '../protocol.js';
import { ServerSession, type SessionLimits, type SessionPlan } from './session.js';
import { sweepStates } from './state-store.js';
import { browserAssets } from './browser-assets.js';

export interface ServeOptions {
  plans: string[];
  host: string;
  port: number;
  backend: 'seal' | 'sim';
  /** Module that makes a plan source from a plan file (exports createPlanSource). */
  sourceModule: string;
  maxSessions: number;
  limits: SessionLimits;
  /** Largest WebSocket message accepted (the evaluation keys are the largest). */
  maxMessageBytes: number;
  /** Keep session state here after every step (resume after a restart). */
  stateDir?: string;
  /** Serve the browser page (bundled at start with esbuild). */
  browser: boolean;
  logLevel?: string;
  /** pino destination (default stdout). */
  logFile?: string;
}

interface ServedPlan extends SessionPlan {
  info: PlanInfo;
  embedding: Uint8Array;
  schedule: ClientSchedule;
  scheduleBytes: Uint8Array;
}

async function loadPlan(file: string, createPlanSource: (file: string) => GenerationPlanSource): Promise<ServedPlan> {
  const m = readGenerationManifest(file);
  const schedule = buildClientSchedule(m, createPlanSource(file));
  const scheduleBytes = encodeClientSchedule(schedule);
  const params = makeParameters(m.params);
  const embedding = readCheckedFile(path.join(path.dirname(file), m.embedding), `embedding table ${m.embedding}`, { bytes: m.vocab * m.dim * 4, sha256: m.embeddingSha256 }, { owner: file, field: 'embedding' });
  const name = path.basename(file).replace(/\.json$/, '');
  return {
    name,
    file: path.resolve(file),
    ringDegree: params.ringDegree,
    primes: params.primes.length,
    embedding,
    schedule,
    scheduleBytes,
    info: {
      name,
      params: m.params,
      vocab: m.vocab,
      dim: m.dim,
      maxContext: m.maxContext,
      prefill: [...m.prefill].sort((a, b) => a - b),
      embeddingSha256: m.embeddingSha256,
      scheduleSha256: await sha256Hex(scheduleBytes),
    },
  };
}

export interface RunningServer {
  app: FastifyInstance;
  url: string;
  sessions: Map<string, ServerSession>;
  close(): Promise<void>;
}

export async function startServer(o: ServeOptions): Promise<RunningServer> {
  const plans = new Map<string, ServedPlan>();
  const { createPlanSource } = (await import(o.sourceModule)) as { createPlanSource: (file: string) => GenerationPlanSource };
  for (const f of o.plans) {
    const p = await loadPlan(f, createPlanSource);
    if (plans.has(p.name)) throw new FhecError(`two plans are named ${p.name}`, { file: f });
    plans.set(p.name, p);
  }
  const logger = { level: o.logLevel ?? 'info', ...(o.logFile ? { file: o.logFile } : {}) };
  const app = Fastify({ logger, bodyLimit: 1 << 20 });
  const sessions = new Map<string, ServerSession>();
  const started = Date.now();
  if (o.stateDir) {
    fs.mkdirSync(o.stateDir, { recursive: true });
    const sweep = () => sweepStates(o.stateDir!, o.limits.idleMs, new Set(sessions.keys()));
    sweep();
    setInterval(sweep, Math.min(o.limits.idleMs, 60_000)).unref();
  }

  // @fastify/websocket's default error handler terminates the socket at once, which races the close
  // frame ws has just queued (an oversized message then reached the client as 1006, not 1009). Log,
  // let ws finish its closing handshake, and cut the socket only if the peer never answers.
  await app.register(websocket, {
    options: { maxPayload: o.maxMessageBytes },
    errorHandler: (err, socket, req) => {
      req.log.warn({ err: err.message }, 'socket error');
      setTimeout(() => socket.terminate(), 2_000).unref();
    },
  });
  if (o.browser) {
    const assets = await browserAssets();
    await app.register(fastifyStatic, { root: assets.staticDir, prefix: '/' });
    app.get('/app.js', (_req, reply) => reply.type('text/javascript').send(assets.bundle));
    app.get('/seal_throws.wasm', (_req, reply) => reply.type('application/wasm').send(assets.wasm));
  }

  app.get('/v1/health', () => ({
    status: 'ok',
    sessions: sessions.size,
    maxSessions: o.maxSessions,
    plans: [...plans.keys()],
    backend: o.backend,
    uptimeS: Math.round((Date.now() - started) / 1000),
    rssBytes: process.memoryUsage().rss,
  }));
  app.get('/v1/plans', () => [...plans.values()].map((p) => p.info));
  app.get<{ Params: { name: string } }>('/v1/plans/:name/embedding', (req, reply) => {
    const p = plans.get(req.params.name);
    if (!p) return reply.code(404).send({ error: `no plan named ${req.params.name}` });
    return reply.type('application/octet-stream').send(Buffer.from(p.embedding.buffer, p.embedding.byteOffset, p.embedding.byteLength));
  });
  app.get<{ Params: { name: string } }>('/v1/plans/:name/schedule', (req, reply) => {
    const p = plans.get(req.params.name);
    if (!p) return reply.code(404).send({ error: `no plan named ${req.params.name}` });
    return reply.type('application/json').send(Buffer.from(p.scheduleBytes.buffer, p.scheduleBytes.byteOffset, p.scheduleBytes.byteLength));
  });

  app.get(SERVICE_PATH, { websocket: true }, (socket: WebSocket, req) => {
    let session: ServerSession | undefined;
    const log = req.log;
    const sink = {
      send: (b: Uint8Array) => socket.send(b),
      close: (code: number, reason: string) => socket.close(code, reason),
    };
    const refuse = (message: string) => {
      log.warn({ session: session?.id, message }, 'frame refused');
      if (session) session.end(message, 1008);
      else {
        socket.send(errorFrame(message));
        socket.close(1008, message.slice(0, 120));
      }
    };
    const open = (id: string, plan: ServedPlan) => {
      if (sessions.size >= o.maxSessions) throw new FhecError(`the server holds ${sessions.size} sessions, its limit: try again later`);
      const s = new ServerSession(id, plan, sink, o.limits, { sourceModule: o.sourceModule, backend: o.backend, ...(o.stateDir ? { stateRoot: o.stateDir } : {}) }, log, (x) => sessions.delete(x.id));
      sessions.set(id, s);
      return s;
    };
    let chain = Promise.resolve();
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      chain = chain.then(async () => {
        try {
          if (!isBinary) throw new FhecError('frames must be binary');
          const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
          const { header, blob } = readFrame<{ kind: string }>(bytes, CLIENT_KINDS);
          if (header.kind === 'hello' || header.kind === 'resume') {
            if (session) throw new FhecError(`a '${header.kind}' on a connection that has a session already`);
            if (header.kind === 'hello') {
              const h = header as HelloHeader;
              const plan = plans.get(h.plan);
              if (!plan) throw new FhecError(`no plan named '${String(h.plan)}' (this server has ${[...plans.keys()].join(', ')})`);
              if (!Number.isInteger(h.promptTokens) || h.promptTokens < 1 || !Number.isInteger(h.maxNewTokens) || h.maxNewTokens < 1) throw new FhecError('hello needs promptTokens and maxNewTokens, positive integers');
              if (h.promptTokens + h.maxNewTokens - 1 > plan.info.maxContext) throw new FhecError(`a prompt of ${h.promptTokens} tokens and ${h.maxNewTokens} new tokens needs a context of ${h.promptTokens + h.maxNewTokens - 1}, plan ${plan.name} has ${plan.info.maxContext}`);
              session = open(randomBytes(16).toString('hex'), plan);
              const s = session;
              const m = await s.ask({ type: 'schedule', promptTokens: h.promptTokens, maxNewTokens: h.maxNewTokens });
              if (m.type !== 'schedule') throw new FhecError(m.type === 'failed' ? m.message : 'internal: no schedule');
              // Only steps the announced schedule holds: a client checks every refresh against it.
              checkScheduleCovers(plan.schedule, m.steps);
              socket.send(frame({ kind: 'session', session: s.id, plan: plan.name, steps: m.steps, scheduleSha256: plan.info.scheduleSha256 } as { kind: string }));
              log.info({ session: s.id, plan: plan.name, promptTokens: h.promptTokens, maxNewTokens: h.maxNewTokens, sessions: sessions.size }, 'session opened');
            } else {
              const h = header as ResumeHeader;
              if (typeof h.session !== 'string' || !SESSION_ID.test(h.session)) throw new FhecError('resume names no valid session id');
              if (sessions.has(h.session)) throw new FhecError('that session is running on another connection');
              if (!o.stateDir) throw new FhecError('this server keeps no session state (start it with --state-dir to resume sessions)');
              const chosen = plans.get(h.plan);
              if (!chosen) throw new FhecError(`no plan named '${String(h.plan)}'`);
              session = open(h.session, chosen);
              const m = await session.ask({ type: 'restore' });
              if (m.type !== 'restored') throw new FhecError(m.type === 'failed' ? m.message : 'internal: not restored');
              socket.send(frame({ kind: 'resumed', session: session.id, next: m.next } as { kind: string }, m.lastReply));
              log.info({ session: session.id, next: m.next }, 'session resumed');
            }
            return;
          }
          if (!session) throw new FhecError(`a '${header.kind}' before hello: open a session first`);
          session.fromClient(header as CallHeader, blob);
        } catch (e) {
          if (!(e instanceof FhecError)) log.error({ err: e }, 'internal error');
          refuse(e instanceof FhecError ? e.message : `internal error: ${(e as Error).message}`);
        }
      });
    });
    socket.on('close', () => session?.end());
  });

  await app.listen({ host: o.host, port: o.port });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : o.port;
  const url = `http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}`;
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      for (const s of sessions.values()) s.end('the server is shutting down', 1001);
      await app.close();
    })());
  return { app, url, sessions, close };
}
