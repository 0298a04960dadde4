// A session's evaluator state on disk (EvaluatorState: the steps, the next step, the encrypted KV
// cache), rewritten atomically after every step, so a server killed mid-generation and started again
// resumes from the last completed step. One file per session, in the generation-protocol frame format:
// header {kind: 'session-state', steps, next, prev, cache: [{name, tokenStart}]}, blobs: the cache.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { FhecError } from '../../ir/errors.js';
import type { EvaluatorState } from '../../runtime/generate/evaluator.js';
import { decodeMessage, encodeMessage } from '../../runtime/generate/messages.js';
import type { StepShape } from '../../runtime/generate/plan-source.js';

const FILE = 'state.bin';

interface StateHeader {
  kind: 'session-state';
  steps: StepShape[];
  next: number;
  prev?: StepShape;
  cache: { name: string; tokenStart: number }[];
  /** The last step's reply follows the cache (a reply the client may not have received). */
  lastReply: boolean;
}

export interface SavedSession {
  state: EvaluatorState;
  lastReply?: Uint8Array;
}

export function saveState(dir: string, s: EvaluatorState, lastReply?: Uint8Array): void {
  fs.mkdirSync(dir, { recursive: true });
  const header: StateHeader = { kind: 'session-state', steps: s.steps, next: s.next, ...(s.prev ? { prev: s.prev } : {}), cache: s.cache.map((c) => ({ name: c.name, tokenStart: c.tokenStart })), lastReply: !!lastReply };
  const tmp = path.join(dir, `${FILE}.tmp`);
  fs.writeFileSync(tmp, encodeMessage(header, [...s.cache.map((c) => c.bytes), ...(lastReply ? [lastReply] : [])]));
  fs.renameSync(tmp, path.join(dir, FILE));
}

export function loadState(dir: string): SavedSession {
  const file = path.join(dir, FILE);
  let bytes: Uint8Array;
  try {
    // A plain copy, not a Buffer: decodeMessage's slice of a Buffer is a view into Node's pool, and
    // ciphertext loaders read their bytes from offset 0 of the buffer they are given.
    bytes = new Uint8Array(fs.readFileSync(file));
  } catch {
    throw new FhecError('no saved state for this session (it expired, or never completed a step)');
  }
  const { header: h, blobs } = decodeMessage<StateHeader>(bytes, ['session-state']);
  if (!Array.isArray(h.cache) || h.cache.length + (h.lastReply ? 1 : 0) !== blobs.length || !Array.isArray(h.steps) || !Number.isInteger(h.next)) throw new FhecError('saved session state is malformed', { file });
  const state: EvaluatorState = { steps: h.steps, next: h.next, ...(h.prev ? { prev: h.prev } : {}), cache: h.cache.map((c, i) => ({ name: c.name, tokenStart: c.tokenStart, bytes: blobs[i]! })) };
  return { state, ...(h.lastReply ? { lastReply: blobs[blobs.length - 1]! } : {}) };
}

/** Session state directories not touched for `maxAgeMs` are removed (expired sessions). */
export function sweepStates(root: string, maxAgeMs: number, keep: ReadonlySet<string>): void {
  let names: string[];
  try {
    names = fs.readdirSync(root);
  } catch {
    return;
  }
  const now = Date.now();
  for (const n of names) {
    if (keep.has(n)) continue;
    const dir = path.join(root, n);
    try {
      if (now - fs.statSync(dir).mtimeMs > maxAgeMs) fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      // gone already
    }
  }
}
