// The messages between the main thread and its evaluation workers (pool.ts, worker.ts), and between
// workers. They travel by structured clone inside one process; ciphertexts are always serialized bytes.

import type { ErrorWhere } from '../../ir/errors.js';
import type { FheProgram } from '../../ir/fhe/types.js';
import type { CkksParameters } from '../../ir/ckks/params.js';
import type { EvaluationKeys } from '../backend.js';
import type { PlaintextCacheStats } from '../ckks/plaintext-cache.js';
import type { MessagePort } from 'node:worker_threads';
import type { WorkerAction } from './placement.js';
import type { RefreshRequestItem } from '../refresh/messages.js';

export type MainToWorker =
  | { kind: 'init'; params: CkksParameters; keys: EvaluationKeys; plaintextBudget: number; peers: (MessagePort | undefined)[] }
  /** A program and this worker's actions in it, kept under `id`. */
  | { kind: 'program'; id: number; program: FheProgram; actions: WorkerAction[][] }
  /** Run stage `stage` of run `run` of program `program`: refresh results it holds from the last round, inputs it reads. */
  | {
      kind: 'stage';
      run: number;
      program: number;
      stage: number;
      /** Refresh results this worker holds from the last round: [value, bytes]. */
      fresh: [string, Uint8Array][];
      /** The same, still masked (the worker masked their inputs): [value, refreshed input, bytes]. */
      freshMasked: [string, string, Uint8Array][];
      inputs: [string, Uint8Array][];
      /** In the run's first stage: false when the run's encodes must not go into the plaintext cache. */
      cachePlaintexts?: boolean;
      /** When set, the worker masks this stage's refresh inputs itself (client-aided refresh, runtime/refresh/refresher.ts). */
      masking?: StageMasking;
      /** The next stage's masking, so that the worker makes its masks while this round is answered (mask-stock.ts). */
      nextMasking?: StageMasking;
    }
  | { kind: 'end'; run: number }
  /** Move (when a slot map is given) and mask these ciphertexts for one refresh round trip; keep the masks under `carry`. */
  | { kind: 'carry-mask'; carry: number; items: CarryItem[]; hiding: { hidingBits: number; minHidingBits: number } }
  /** The key holder's replies to the masked items of `carry`, in order: unmask, send back the fresh ciphertexts. */
  | { kind: 'carry-unmask'; carry: number; replies: Uint8Array[] }
  | { kind: 'close' };

/** A ciphertext refreshed outside a program (the KV-cache carry between generation steps). */
export interface CarryItem {
  bytes: Uint8Array;
  /** Public slot map (destination -> source, -1: zero) applied before masking; none: the slots stay. */
  map?: Int32Array;
  /** Level and scale it comes back at. */
  level: number;
  scale: number;
  bound: number;
  point: string;
}

export interface StageMasking {
  hidingBits: number;
  minHidingBits: number;
  /** Level the fresh ciphertexts come back at. */
  level: number;
  /**
   * Per refresh of the stage: [refreshed value, bound on |x| at its masked scale, scale it comes back at,
   * the refresh's factor (1: none; the value is masked declared at its scale over the factor: maskedScale)].
   */
  points: [string, number, number, number][];
}

/** A refresh input the worker masked: the request item, and the masked ciphertext's level, scale and hiding (audits). */
export interface MaskedExport {
  value: string;
  request: RefreshRequestItem;
  level: number;
  scale: number;
  hidingBits: number;
}

export interface StageDone {
  kind: 'stage-done';
  run: number;
  stage: number;
  /** Output tensors made on this worker. */
  outputs: [string, Uint8Array][];
  /** Refresh inputs held here (this stage's round), raw, or masked when the stage asked. */
  exports: [string, Uint8Array][];
  masked: MaskedExport[];
  /** [op index, ms] of each op run. */
  opMs: [number, number][];
  /** Ciphertexts sent to other workers, their bytes, and the time spent saving and loading them. */
  moved: { count: number; bytes: number; ms: number };
  /** Time spent waiting for other workers' values. */
  waitMs: number;
}

export type WorkerToMain =
  | { kind: 'ready' }
  | StageDone
  | { kind: 'ended'; run: number; plaintexts?: PlaintextCacheStats; masks?: { made: number; used: number } }
  | { kind: 'carry-masked'; carry: number; masked: MaskedExport[] }
  | { kind: 'carry-fresh'; carry: number; fresh: Uint8Array[] }
  | { kind: 'error'; message: string; where: ErrorWhere; fhec: boolean };

/** Worker to worker: one ciphertext of run `run`. */
export interface PeerMessage {
  run: number;
  value: string;
  bytes: Uint8Array;
}
