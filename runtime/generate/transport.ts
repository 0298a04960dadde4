// In-process transports that carry only bytes and count them. Each message is copied on the way, as a
// network would, so the two sides never share a buffer (or any object).

import type { WhileWaiting } from '../backend.js';

/** Client to evaluator: asynchronous request/reply. */
export type AsyncChannel = (request: Uint8Array) => Promise<Uint8Array>;
/** Evaluator to key holder, inside an evaluation step: synchronous request/reply. */
export type SyncChannel = (request: Uint8Array, whileWaiting?: WhileWaiting) => Uint8Array;
/**
 * Evaluator to key holder as the evaluator takes it: one message per refresh round or cache carry,
 * each a batch of ciphertexts (runtime/refresh/messages.ts, generate/cache-refresh.ts). An in-process
 * key holder answers at once; a remote one (a browser client) with a promise, which the evaluation
 * workers' path waits for (the one-thread path needs an immediate answer).
 */
export type KeyHolderChannel = (request: Uint8Array, whileWaiting?: WhileWaiting) => Uint8Array | Promise<Uint8Array>;

export interface ChannelCounters {
  roundTrips: number;
  bytesSent: number;
  bytesReceived: number;
}

/** A copy with a buffer of its own (slice copies the bytes at once; Uint8Array.from walks them one by one). */
function copy(b: Uint8Array): Uint8Array {
  return b.slice();
}

export class CountingChannel {
  readonly counters: ChannelCounters = { roundTrips: 0, bytesSent: 0, bytesReceived: 0 };
  constructor(private readonly peer: AsyncChannel) {}
  readonly send: AsyncChannel = async (request) => {
    this.counters.roundTrips++;
    this.counters.bytesSent += request.length;
    const reply = await this.peer(copy(request));
    this.counters.bytesReceived += reply.length;
    return copy(reply);
  };
}

export class CountingSyncChannel {
  readonly counters: ChannelCounters = { roundTrips: 0, bytesSent: 0, bytesReceived: 0 };
  constructor(private readonly peer: SyncChannel) {}
  readonly send: SyncChannel = (request, whileWaiting) => {
    this.counters.roundTrips++;
    this.counters.bytesSent += request.length;
    const reply = this.peer(copy(request), whileWaiting);
    this.counters.bytesReceived += reply.length;
    return copy(reply);
  };
}
