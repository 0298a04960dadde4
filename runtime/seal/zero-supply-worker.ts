// The zero-encryption supply's thread (zero-supply.ts): its own node-seal instance and the client's
// public key (public material only), making encryptions of zero at the levels asked for and sending
// each as bytes. Nothing it makes depends on data: it runs ahead of the evaluator.

import { parentPort, type MessagePort } from 'node:worker_threads';
import type { CkksParameters } from '../../ir/ckks/params.js';
import { loadSeal, makeSealContext, sealShape } from './module.js';
import { LevelZeroEncryptor } from './zero-encryptor.js';
import type { ZeroSupplyRequest, ZeroSupplyMessage } from './zero-supply.js';

const port = parentPort;
if (!port) throw new Error('runtime/seal/zero-supply-worker.ts runs as a worker thread');

let make: ((level: number) => Uint8Array) | undefined;
/** Where zeros go (the main thread reads it synchronously); requests arrive on the parent port. */
let out: MessagePort | undefined;
const queue: ZeroSupplyRequest[] = [];
let busy = false;

// Zeros and their errors go on `out`, set with `make` at init (work() runs only after both).
const post = (m: ZeroSupplyMessage, transfer: ArrayBuffer[] = []) => out!.postMessage(m, transfer);

/** One zero at a time, yielding between them so new requests are seen. */
function work(): void {
  if (busy) return;
  const next = queue.shift();
  if (!next || !make) return;
  busy = true;
  try {
    const bytes = make(next.level);
    post({ kind: 'zero', level: next.level, bytes }, [bytes.buffer as ArrayBuffer]);
    if (next.count > 1) queue.unshift({ ...next, count: next.count - 1 });
  } catch (e) {
    post({ kind: 'error', message: (e as Error).message });
    queue.length = 0;
  } finally {
    busy = false;
  }
  if (queue.length > 0) setImmediate(work);
}

port.on('message', async (m: { kind: 'init'; params: CkksParameters; publicKey: Uint8Array; port: MessagePort } | ZeroSupplyRequest) => {
  if (m.kind === 'init') {
    try {
      const seal = await loadSeal();
      const info = makeSealContext(seal, m.params);
      const zeros = new LevelZeroEncryptor(seal, m.params, info, sealShape(info, m.params), m.publicKey);
      make = (level) => {
        const ct = new seal.Ciphertext();
        try {
          zeros.encryptZero(level, ct);
          return new Uint8Array(ct.saveToArray(seal.ComprModeType.none) as Uint8Array);
        } finally {
          ct.delete();
        }
      };
      out = m.port;
      port.postMessage({ kind: 'ready' } satisfies ZeroSupplyMessage);
    } catch (e) {
      port.postMessage({ kind: 'error', message: (e as Error).message } satisfies ZeroSupplyMessage);
    }
  } else if (m.kind === 'zeros') {
    queue.push(m);
    work();
  }
});
