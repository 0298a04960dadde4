// A session's evaluator runs in a worker thread of its own: the executor is synchronous and asks the
// key holder for refreshes in the middle of a step, while the key holder is across the network. The
// worker posts each refresh request to the main thread and blocks on a shared flag (Atomics.wait)
// until the main thread has the reply from the client's WebSocket and posts it on a dedicated port;
// the main thread's event loop (other sessions, health checks) never blocks. Steps of different
// sessions run on different cores.
//
// Main -> worker (parentPort):  {type: 'call', seq, bytes} | {type: 'restore'} | {type: 'schedule', promptTokens, maxNewTokens}
// Worker -> main (parentPort):  {type: 'reply', seq, bytes, held} | {type: 'refresh', bytes} | {type: 'schedule', ...} | {type: 'failed', message}
// Main -> worker (sync port):   {bytes} | {error}, then the flag is set and notified.

import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { FhecError } from '../../ir/errors.js';
import type { SyncChannel } from '../../runtime/generate/transport.js';

export interface WorkerLinkData {
  /** Int32Array over a SharedArrayBuffer of 4 bytes: 0 waiting, 1 an answer is on the port. */
  flag: SharedArrayBuffer;
  port: MessagePort;
  /** How long a refresh may wait for the client (ms). */
  refreshTimeoutMs: number;
}

export type RefreshAnswer = { bytes: Uint8Array } | { error: string };

/** The worker's synchronous channel to the key holder, through the main thread. */
export function blockingKeyHolder(link: WorkerLinkData, post: (bytes: Uint8Array) => void): SyncChannel {
  const flag = new Int32Array(link.flag);
  return (request, whileWaiting) => {
    Atomics.store(flag, 0, 0);
    post(request);
    // The client decrypts and re-encrypts meanwhile: this thread can do the work it was given, until
    // the answer is in.
    whileWaiting?.(() => Atomics.load(flag, 0) !== 0);
    const r = Atomics.wait(flag, 0, 0, link.refreshTimeoutMs);
    if (r === 'timed-out') throw new FhecError(`the client did not answer a refresh request within ${Math.round(link.refreshTimeoutMs / 1000)} s`);
    const m = receiveMessageOnPort(link.port);
    if (!m) throw new FhecError('internal: the refresh answer was signalled but not posted');
    const answer = m.message as RefreshAnswer;
    if ('error' in answer) throw new FhecError(answer.error);
    return answer.bytes;
  };
}

/** The main thread's half: hand an answer to a blocked worker. */
export function answerRefresh(flag: SharedArrayBuffer, port: MessagePort, answer: RefreshAnswer): void {
  port.postMessage(answer);
  const f = new Int32Array(flag);
  Atomics.store(f, 0, 1);
  Atomics.notify(f, 0);
}
