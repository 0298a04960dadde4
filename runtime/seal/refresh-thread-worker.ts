// The key holder's refresh thread (refresh-thread.ts): a SEAL client rebuilt from the client's secret
// key, answering each round with SealClient.refreshExact, the same code the calling thread would run.
// Its answer goes on the dedicated port, then the shared flag wakes the caller.

import { parentPort, type MessagePort } from 'node:worker_threads';
import { FhecError } from '../../ir/errors.js';
import type { CkksParameters } from '../../ir/ckks/params.js';
import type { CkksClient, ExactRefreshItem } from '../backend.js';
import { sealClientFromSecretKey } from './backend.js';
import { loadSeal } from './module.js';
import type { RefreshThreadReply } from './refresh-thread.js';

const parent = parentPort;
if (!parent) throw new Error('runtime/seal/refresh-thread-worker.ts runs as a worker thread');

let client: CkksClient | undefined;
let out: MessagePort | undefined;
let flag: Int32Array | undefined;

function answer(reply: RefreshThreadReply): void {
  // The fresh ciphertexts' buffers move to the caller (nothing here uses them again): no copy.
  out!.postMessage(reply, reply.kind === 'done' ? [...new Set(reply.fresh.map((f) => f.buffer as ArrayBuffer))] : []);
  Atomics.store(flag!, 0, 1);
  Atomics.notify(flag!, 0);
}

parent.on('message', async (m: { kind: 'init'; params: CkksParameters; secretKey: Uint8Array; port: MessagePort; flag: SharedArrayBuffer } | { kind: 'refresh'; items: ExactRefreshItem[] }) => {
  if (m.kind === 'init') {
    try {
      client = sealClientFromSecretKey(await loadSeal(), m.params, m.secretKey);
      out = m.port;
      flag = new Int32Array(m.flag);
      parent.postMessage({ kind: 'ready' });
    } catch (e) {
      parent.postMessage({ kind: 'error', message: (e as Error).message });
    }
    return;
  }
  const t0 = performance.now();
  try {
    const fresh = client!.refreshExact(m.items);
    answer({ kind: 'done', fresh, ms: performance.now() - t0, repliesAhead: client!.repliesEncryptedAhead?.() ?? 0 });
  } catch (e) {
    answer({ kind: 'failed', message: (e as Error).message, where: e instanceof FhecError ? e.where : {} });
  }
});
