// The worker thread of one session (worker-link.ts): a GenerationEvaluator over the served plan, its
// key holder reached through the main thread. After every step it writes what the next step needs
// (state-store.ts) when the server keeps state on disk, so a restarted server can resume.
// The plan source is made by a module the CLI names (`sourceModule`, exporting createPlanSource): the
// service does not know how plans are compiled or stored.

import { parentPort, workerData } from 'node:worker_threads';
import { FhecError } from '../../ir/errors.js';
import { GenerationEvaluator } from '../../runtime/generate/evaluator.js';
import { decodeMessage } from '../../runtime/generate/messages.js';
import { generationSteps, type GenerationPlanSource, type StepShape } from '../../runtime/generate/plan-source.js';
import { sealBackend } from '../../runtime/seal/backend.js';
import { simBackend } from '../../runtime/sim/backend.js';
import { blockingKeyHolder, type WorkerLinkData } from './worker-link.js';
import { loadState, saveState } from './state-store.js';

export interface SessionWorkerData extends WorkerLinkData {
  sourceModule: string;
  planFile: string;
  backend: 'seal' | 'sim';
  /** Where this session's state is kept between steps (absent: memory only). */
  stateDir?: string;
  plaintextCacheBytes: number;
  /** At most this many ciphertexts per refresh message (absent: a whole round; 1 measures the unbatched protocol). */
  ciphertextsPerMessage?: number;
  /** The client's key holder returns the plan's rotations of refresh results (fhec serve --key-holder-rotations). */
  keyHolderRotations?: boolean;
}

export type ToWorker =
  | { type: 'schedule'; promptTokens: number; maxNewTokens: number }
  | { type: 'restore' }
  | { type: 'call'; seq: number; bytes: Uint8Array };

export type FromWorker =
  | { type: 'schedule'; steps: StepShape[] }
  | { type: 'restored'; next: number; lastReply?: Uint8Array }
  | { type: 'reply'; seq: number; bytes: Uint8Array; cacheBytes: number; step?: number }
  | { type: 'refresh'; bytes: Uint8Array }
  | { type: 'failed'; message: string };

async function main(): Promise<void> {
  const data = workerData as SessionWorkerData;
  const port = parentPort!;
  const post = (m: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
  const { createPlanSource } = (await import(data.sourceModule)) as { createPlanSource: (file: string) => GenerationPlanSource };
  const source = createPlanSource(data.planFile);
  const keyHolder = blockingKeyHolder(data, (bytes) => post({ type: 'refresh', bytes }));
  const evaluator = new GenerationEvaluator(source, data.backend === 'seal' ? sealBackend : simBackend, keyHolder, {
    plaintextCacheBytes: data.plaintextCacheBytes,
    ...(data.ciphertextsPerMessage ? { ciphertextsPerMessage: data.ciphertextsPerMessage } : {}),
    ...(data.keyHolderRotations ? { keyHolderRotations: true } : {}),
  });
  // One message at a time, in order (a step is synchronous; the next message waits in the queue).
  let chain = Promise.resolve();
  port.on('message', (m: ToWorker) => {
    chain = chain.then(async () => {
      try {
        if (m.type === 'schedule') {
          post({ type: 'schedule', steps: generationSteps(source, m.promptTokens, m.maxNewTokens) });
        } else if (m.type === 'restore') {
          if (!data.stateDir) throw new FhecError('this server keeps no session state');
          const saved = loadState(data.stateDir);
          evaluator.restore(saved.state);
          post({ type: 'restored', next: saved.state.next, ...(saved.lastReply ? { lastReply: saved.lastReply } : {}) });
        } else {
          let kind = '';
          try {
            kind = decodeMessage(m.bytes, ['open', 'keys', 'step', 'close']).header.kind;
          } catch {
            // The evaluator answers a malformed request with an error message of its own.
          }
          const reply = await evaluator.handle(m.bytes);
          const state = evaluator.snapshot();
          if (data.stateDir && (kind === 'step' || kind === 'open')) saveState(data.stateDir, state, kind === 'step' ? reply : undefined);
          post({ type: 'reply', seq: m.seq, bytes: reply, cacheBytes: evaluator.cacheBytes, ...(kind === 'step' ? { step: state.next } : {}) });
        }
      } catch (e) {
        post({ type: 'failed', message: e instanceof FhecError ? e.format() : `internal error: ${(e as Error).message}` });
      }
    });
  });
}

void main().catch((e) => parentPort!.postMessage({ type: 'failed', message: e instanceof FhecError ? e.format() : String((e as Error).message) }));
