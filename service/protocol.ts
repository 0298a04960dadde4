// The wire protocol of `fhec serve`: one WebSocket per generation, binary frames only, each frame one
// generation-protocol message (runtime/generate/messages.ts: "FHGM", a JSON header with a `kind`,
// length-prefixed blobs). The session's messages ride inside as blobs, unchanged: the evaluator's
// requests and replies (open, keys, step, close) and the key holder's refresh requests and replies
// (FHRQ/FHRP, runtime/refresh/messages.ts, and cache carries). A refresh frame carries whatever one
// request of the executor holds: every ciphertext it refreshes together goes in one frame and one
// round trip.
//
//   client -> server  hello   {plan, promptTokens, maxNewTokens}       start a session
//                     resume  {session, plan}                               re-attach after a lost connection
//                     call    {session, seq}         blob: evaluator request (open, keys, step, close)
//                     refreshed {session, seq}       blob: key holder reply
//   server -> client  session {session, plan, steps, scheduleSha256}    the steps, and the digest of the plan's
//                                                                        refresh schedule (the client checks it
//                                                                        against its own copy and never takes a
//                                                                        schedule from the server)
//                     resumed {session, next}                            the step to continue from
//                     reply   {session, seq}         blob: evaluator reply
//                     refresh {session, seq}         blob: refresh request (one batch of ciphertexts)
//                     error   {message}                                  this connection's request was refused
// `seq` counts up from 1 per direction and connection: a frame out of order, replayed, or naming
// another session is refused with an error frame, and the connection is closed.

import { FhecError } from '../ir/errors.js';
import { decodeMessage, encodeMessage } from '../runtime/generate/messages.js';
import type { StepShape } from '../runtime/generate/plan-source.js';

export const SERVICE_PATH = '/v1/session';

export interface HelloHeader {
  kind: 'hello';
  plan: string;
  promptTokens: number;
  maxNewTokens: number;
}
export interface ResumeHeader {
  kind: 'resume';
  session: string;
  plan: string;
}
export interface CallHeader {
  kind: 'call' | 'reply' | 'refresh' | 'refreshed';
  session: string;
  seq: number;
}
export interface SessionHeader {
  kind: 'session';
  session: string;
  plan: string;
  steps: StepShape[];
  /** sha256 of the served plan's refresh schedule (runtime/generate/client-schedule.ts). */
  scheduleSha256: string;
}
export interface ResumedHeader {
  kind: 'resumed';
  session: string;
  /** Index of the first step not completed before the connection was lost. */
  next: number;
}

/** Public facts about a served plan (GET /v1/plans). */
export interface PlanInfo {
  name: string;
  params: { ringDegree: number; bitSizes: number[]; scale: number };
  vocab: number;
  dim: number;
  maxContext: number;
  prefill: number[];
  embeddingSha256: string;
  /** sha256 of the plan's refresh schedule document (GET /v1/plans/NAME/schedule serves its bytes). */
  scheduleSha256: string;
}

export const CLIENT_KINDS = ['hello', 'resume', 'call', 'refreshed'] as const;
export const SERVER_KINDS = ['session', 'resumed', 'reply', 'refresh'] as const;

export function frame(header: { kind: string }, blob?: Uint8Array): Uint8Array {
  return encodeMessage(header, blob ? [blob] : []);
}

/** A frame's header and its one blob (if any); an error frame throws the peer's message. */
export function readFrame<H extends { kind: string }>(bytes: Uint8Array, expect: readonly string[]): { header: H; blob?: Uint8Array } {
  const m = decodeMessage<H>(bytes, expect);
  if (m.blobs.length > 1) throw new FhecError(`a '${m.header.kind}' frame carries ${m.blobs.length} blobs, at most 1`);
  return { header: m.header, ...(m.blobs[0] ? { blob: m.blobs[0] } : {}) };
}

export function errorFrame(message: string): Uint8Array {
  return encodeMessage({ kind: 'error', message } as { kind: string });
}

/** Session ids: 128 random bits, hex. */
export const SESSION_ID = /^[0-9a-f]{32}$/;
