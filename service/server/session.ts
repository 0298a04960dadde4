// One session on the server's main thread: its worker (session-worker.ts), the WebSocket it talks to,
// the sequence numbers both ways, its memory account and its idle timer. Frames are checked here
// before anything reaches the evaluator: the session id, the order, the keys (evaluation keys only),
// the size; a bad frame gets an error frame and ends this session only.

import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import * as path from 'node:path';
import { FhecError } from '../../ir/errors.js';
import { decodeKeys, decodeMessage } from '../../runtime/generate/messages.js';
import { errorFrame, frame, type CallHeader } from '../protocol.js';
import { checkEvaluationKeys } from './key-check.js';
import { answerRefresh } from './worker-link.js';
import type { FromWorker, SessionWorkerData, ToWorker } from './session-worker.js';

export interface SessionLimits {
  /** Bytes a session may hold: evaluation keys, KV cache, and its plaintext cache budget. */
  memoryBytes: number;
  /** Encoded-weight cache per session (counted in memoryBytes). */
  plaintextCacheBytes: number;
  /** A session with no frame from its client for this long ends (ms). */
  idleMs: number;
  /** How long a refresh may wait for the client (ms). */
  refreshTimeoutMs: number;
  /** At most this many ciphertexts per refresh message (absent: a whole refresh round or cache carry). */
  ciphertextsPerMessage?: number;
  /** Ask the client's key holder for the plan's rotations of refresh results (one more ciphertext back per copy; default off). */
  keyHolderRotations?: boolean;
}

export interface SessionPlan {
  name: string;
  file: string;
  ringDegree: number;
  primes: number;
}

/** What the session needs of its connection. */
export interface SessionSocket {
  send(bytes: Uint8Array): void;
  close(code: number, reason: string): void;
}

type Log = { info(o: object, m?: string): void; warn(o: object, m?: string): void };

export class ServerSession {
  private readonly worker: Worker;
  private readonly flag = new SharedArrayBuffer(4);
  private readonly port: MessagePort;
  private nextCall = 1;
  private pendingCall?: number;
  private refreshSeq = 0;
  private pendingRefresh?: number;
  private idle?: NodeJS.Timeout;
  private keyBytes = 0;
  private ended = false;
  /** Round trips and bytes with the key holder (for the logs). */
  readonly traffic = { refreshes: 0, bytesToClient: 0, bytesFromClient: 0 };
  /** Resolves what the worker answers to schedule/restore. */
  private waiting?: (m: FromWorker) => void;
  stepsDone = 0;

  constructor(
    readonly id: string,
    readonly plan: SessionPlan,
    private readonly socket: SessionSocket,
    private readonly limits: SessionLimits,
    opts: { sourceModule: string; backend: 'seal' | 'sim'; stateRoot?: string },
    private readonly log: Log,
    private readonly onEnd: (s: ServerSession) => void,
  ) {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    const data: SessionWorkerData = {
      flag: this.flag,
      port: port2,
      refreshTimeoutMs: limits.refreshTimeoutMs,
      sourceModule: opts.sourceModule,
      planFile: plan.file,
      backend: opts.backend,
      ...(opts.stateRoot ? { stateDir: path.join(opts.stateRoot, id) } : {}),
      plaintextCacheBytes: limits.plaintextCacheBytes,
      ...(limits.ciphertextsPerMessage ? { ciphertextsPerMessage: limits.ciphertextsPerMessage } : {}),
      ...(limits.keyHolderRotations ? { keyHolderRotations: true } : {}),
    };
    this.worker = new Worker(new URL('./session-worker.js', import.meta.url), { workerData: data, transferList: [port2] });
    this.worker.on('message', (m: FromWorker) => this.fromWorker(m));
    this.worker.on('error', (e) => this.end(`the session's evaluator failed: ${e.message}`));
    this.worker.on('exit', (code) => {
      if (!this.ended) this.end(`the session's evaluator exited (code ${code})`);
    });
    this.touch();
  }

  private touch(): void {
    clearTimeout(this.idle);
    this.idle = setTimeout(() => this.end(`session idle for more than ${Math.round(this.limits.idleMs / 1000)} s: expired`), this.limits.idleMs);
    this.idle.unref();
  }

  /** Asks the worker for something it answers once (schedule, restore). */
  ask(m: ToWorker): Promise<FromWorker> {
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.worker.postMessage(m);
    });
  }

  get heldBytes(): number {
    return this.keyBytes + this.cacheBytes + this.limits.plaintextCacheBytes;
  }
  private cacheBytes = 0;

  private fromWorker(m: FromWorker): void {
    if (this.ended) return;
    switch (m.type) {
      case 'refresh': {
        this.pendingRefresh = ++this.refreshSeq;
        this.traffic.refreshes++;
        this.traffic.bytesToClient += m.bytes.length;
        this.socket.send(frame({ kind: 'refresh', session: this.id, seq: this.pendingRefresh } as CallHeader, m.bytes));
        return;
      }
      case 'reply': {
        this.pendingCall = undefined;
        this.cacheBytes = m.cacheBytes;
        if (m.step !== undefined) {
          this.stepsDone = m.step;
          this.log.info({ session: this.id, step: m.step, refreshes: this.traffic.refreshes, heldBytes: this.heldBytes }, 'step done');
        }
        if (this.heldBytes > this.limits.memoryBytes) return this.end(`the session holds ${mib(this.heldBytes)}, over its limit of ${mib(this.limits.memoryBytes)}`);
        this.socket.send(frame({ kind: 'reply', session: this.id, seq: m.seq } as CallHeader, m.bytes));
        return;
      }
      case 'failed':
        return this.end(m.message);
      default: {
        const w = this.waiting;
        this.waiting = undefined;
        w?.(m);
      }
    }
  }

  /** A 'call' or 'refreshed' frame from the client (already decoded). */
  fromClient(h: CallHeader, blob: Uint8Array | undefined): void {
    this.touch();
    if (h.session !== this.id) throw new FhecError(`frame for session ${String(h.session).slice(0, 8)}... on the connection of session ${this.id.slice(0, 8)}...: refused`);
    if (!blob) throw new FhecError(`a '${h.kind}' frame must carry one message`);
    if (h.kind === 'refreshed') {
      if (this.pendingRefresh === undefined || h.seq !== this.pendingRefresh) {
        throw new FhecError(`refresh reply ${h.seq} answers no outstanding request (${this.pendingRefresh === undefined ? 'none is' : `${this.pendingRefresh} is`} outstanding): replayed or out of order`);
      }
      this.pendingRefresh = undefined;
      this.traffic.bytesFromClient += blob.length;
      answerRefresh(this.flag, this.port, { bytes: blob });
      return;
    }
    if (h.seq !== this.nextCall || this.pendingCall !== undefined) {
      throw new FhecError(`request ${h.seq} out of order (expected ${this.nextCall}${this.pendingCall !== undefined ? ` after the reply to ${this.pendingCall}` : ''})`);
    }
    const kind = decodeMessage(blob, ['open', 'keys', 'step', 'close']).header.kind;
    if (kind === 'keys') {
      const keys = decodeKeys(blob);
      if (keys.backend === 'seal') checkEvaluationKeys(keys, this.plan.ringDegree, this.plan.primes);
      this.keyBytes = blob.length;
      if (this.heldBytes > this.limits.memoryBytes) throw new FhecError(`the keys (${mib(blob.length)}) and the session's caches would hold ${mib(this.heldBytes)}, over the session limit of ${mib(this.limits.memoryBytes)}`);
    }
    this.nextCall++;
    this.pendingCall = h.seq;
    this.worker.postMessage({ type: 'call', seq: h.seq, bytes: blob } satisfies ToWorker);
  }

  /** Ends the session: the client is told why (if it is still there), the worker stops. */
  end(reason?: string, code = 1011): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.idle);
    // A worker blocked on a refresh is released with an error before it is stopped.
    if (this.pendingRefresh !== undefined) answerRefresh(this.flag, this.port, { error: reason ?? 'the session ended' });
    void this.worker.terminate();
    this.port.close();
    if (reason) {
      this.log.warn({ session: this.id, reason }, 'session ended');
      try {
        // Going away (shutdown) is no error: the client reconnects and resumes from the saved state.
        if (code !== 1001) this.socket.send(errorFrame(reason));
        this.socket.close(code, reason.slice(0, 120));
      } catch {
        // the connection is gone already
      }
    } else this.log.info({ session: this.id, steps: this.stepsDone, ...this.traffic }, 'session closed');
    this.waiting?.({ type: 'failed', message: reason ?? 'the session ended' });
    this.onEnd(this);
  }
}

function mib(b: number): string {
  return `${(b / 1048576).toFixed(1)} MiB`;
}
