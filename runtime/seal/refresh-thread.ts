// The key holder's refreshes on a thread of the client's own: its own node-seal instance and the
// client's secret key (the client's side of the protocol, never the evaluator's). The key holder is
// called synchronously in the middle of an evaluation step; with the work on this thread, the caller
// posts the round, runs the work it was given meanwhile (the evaluator's next zeros, when evaluator and
// key holder share a process, as in `fhec generate`), then blocks on a shared flag until the answer is
// on the port. Same checks and same exact arithmetic as on the calling thread (SealClient.refreshExact
// runs there); the thread only moves where it runs. Node only (worker_threads).

import { MessageChannel, receiveMessageOnPort, type MessagePort, type Worker } from 'node:worker_threads';
import { FhecError, type ErrorWhere } from '../../ir/errors.js';
import type { CkksParameters } from '../../ir/ckks/params.js';
import type { ExactRefreshItem, RefreshThreadStats, WhileWaiting } from '../backend.js';
import { startWorker } from '../worker-script.js';

export type RefreshThreadReply = { kind: 'done'; fresh: Uint8Array[]; ms: number; repliesAhead: number } | { kind: 'failed'; message: string; where: ErrorWhere };

/** Longest wait for a round's answer: far above any round seen (a second or less at N = 16384). */
const ANSWER_TIMEOUT_MS = 600_000;

export class RefreshThread {
  readonly stats: RefreshThreadStats = { rounds: 0, ciphertexts: 0, ms: 0, waitedMs: 0, repliesAhead: 0 };
  private failed?: string;

  private constructor(
    private readonly worker: Worker,
    private readonly port: MessagePort,
    private readonly flag: Int32Array,
  ) {}

  /** Starts the thread with the secret key; resolves once it can refresh. */
  static async start(params: CkksParameters, secretKey: Uint8Array): Promise<RefreshThread> {
    const { port1, port2 } = new MessageChannel();
    port1.unref();
    const flag = new Int32Array(new SharedArrayBuffer(4));
    let worker: Worker;
    try {
      worker = await startWorker(import.meta.url, 'refresh-thread-worker', { kind: 'init', params, secretKey, port: port2, flag: flag.buffer }, [port2]);
    } catch (e) {
      throw new FhecError(`the key holder's refresh thread did not start: ${(e as Error).message}`);
    }
    const thread = new RefreshThread(worker, port1, flag);
    worker.on('error', (e) => (thread.failed ??= e.message));
    worker.on('exit', (code) => (thread.failed ??= `it exited (code ${code})`));
    return thread;
  }

  /** The round's fresh ciphertexts, made on the thread; `whileWaiting` runs on this thread meanwhile. */
  refresh(items: ExactRefreshItem[], whileWaiting?: WhileWaiting): Uint8Array[] {
    if (this.failed) throw new FhecError(`the key holder's refresh thread failed: ${this.failed}`);
    Atomics.store(this.flag, 0, 0);
    this.worker.postMessage({ kind: 'refresh', items });
    let idleError: unknown;
    try {
      whileWaiting?.(() => Atomics.load(this.flag, 0) !== 0);
    } catch (e) {
      // The answer is still taken off the port below, so that it cannot pass for the next round's.
      idleError = e ?? new Error('the work done while waiting failed');
    }
    // The thread sets the flag after posting its answer. Its errors come back as answers; a thread that
    // died outright never answers, and its exit event cannot reach this blocked thread: after
    // ANSWER_TIMEOUT_MS without an answer the run stops instead of hanging (and the thread is not used again).
    const t0 = performance.now();
    if (Atomics.wait(this.flag, 0, 0, ANSWER_TIMEOUT_MS) === 'timed-out') {
      this.close();
      throw new FhecError(`the key holder's refresh thread gave no answer within ${ANSWER_TIMEOUT_MS / 1000} s (it stopped)`);
    }
    this.stats.waitedMs += performance.now() - t0;
    const m = receiveMessageOnPort(this.port);
    if (!m) throw new FhecError("internal: the refresh thread's answer was signalled but not posted");
    const reply = m.message as RefreshThreadReply;
    if (idleError !== undefined) throw idleError;
    if (reply.kind === 'failed') throw new FhecError(reply.message, reply.where);
    this.stats.rounds++;
    this.stats.ciphertexts += items.length;
    this.stats.ms += reply.ms;
    this.stats.repliesAhead = reply.repliesAhead;
    return reply.fresh;
  }

  close(): void {
    this.failed ??= 'closed';
    this.port.close();
    void this.worker.terminate();
  }
}
