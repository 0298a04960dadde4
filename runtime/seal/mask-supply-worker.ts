// The refresh-mask thread (mask-supply.ts): its own node-seal instance and the client's public key and
// product key (public material only). For each mask asked for it samples r from the OS CSPRNG,
// encrypts it at the level the refresh masks at (zero-encryptor.ts; for an unrelinearized product, a
// size-3 encryption with the product key) and transforms the unmask -round(rho r) at the
// level the reply comes back at; r never leaves this thread. Nothing it makes depends on data: it runs
// ahead.

import { parentPort, type MessagePort } from 'node:worker_threads';
import type { CkksParameters } from '../../ir/ckks/params.js';
import type { MaskRequest } from '../backend.js';
import { IntegerMask } from '../refresh/integer-mask.js';
import { loadSeal, makeSealContext, sealShape } from './module.js';
import { sealNttByLevel } from './ntt.js';
import { LevelZeroEncryptor } from './zero-encryptor.js';
import type { MadeMask, MaskSupplyMessage, MaskSupplyRequest } from './mask-supply.js';

const port = parentPort;
if (!port) throw new Error('runtime/seal/mask-supply-worker.ts runs as a worker thread');

let make: ((items: MaskRequest[]) => MadeMask[]) | undefined;
/** Where masks go (the main thread reads it synchronously); requests arrive on the parent port. */
let out: MessagePort | undefined;
const queue: MaskSupplyRequest[] = [];
let busy = false;

const post = (m: MaskSupplyMessage, transfer: ArrayBuffer[] = []) => out!.postMessage(m, transfer);

/** One request (a round's masks, their unmasks transformed together) at a time, yielding between them. */
function work(): void {
  if (busy) return;
  const next = queue.shift();
  if (!next || !make) return;
  busy = true;
  try {
    const masks = make(next.items);
    post({ kind: 'masks', masks }, masks.flatMap((m) => [m.masked.buffer as ArrayBuffer, m.unmask.buffer as ArrayBuffer]));
  } catch (e) {
    post({ kind: 'error', message: (e as Error).message });
    queue.length = 0;
  } finally {
    busy = false;
  }
  if (queue.length > 0) setImmediate(work);
}

port.on('message', async (m: { kind: 'init'; params: CkksParameters; publicKey: Uint8Array; productKey?: Uint8Array; port: MessagePort } | MaskSupplyRequest) => {
  if (m.kind === 'init') {
    try {
      const seal = await loadSeal();
      const info = makeSealContext(seal, m.params);
      const shape = sealShape(info, m.params);
      const zeros = new LevelZeroEncryptor(seal, m.params, info, shape, m.publicKey, m.productKey);
      const evaluator = new seal.Evaluator(info.context);
      const primes = m.params.primes;
      const n = m.params.ringDegree;
      make = (items) => {
        const masks = items.map((it) => IntegerMask.sample(n, it.width));
        const masked = items.map((it, i) => {
          const ct = new seal.Ciphertext();
          try {
            zeros.encryptZero(it.level, ct, masks[i]!.residues(primes.slice(0, it.level + 1)), it.size === 3 ? 3 : 2);
            ct.setScale(it.scale);
            return new Uint8Array(ct.saveToArray(seal.ComprModeType.none) as Uint8Array);
          } finally {
            ct.delete();
          }
        });
        const unmask = sealNttByLevel(
          seal,
          info,
          shape,
          evaluator,
          items.map((it, i) => ({ level: it.toLevel, scale: it.toScale, words: masks[i]!.negatedScaled(it.ratio).residues(primes.slice(0, it.toLevel + 1)) })),
          true,
        );
        return items.map((it, i) => ({ key: it.key, masked: masked[i]!, toLevel: it.toLevel, toScale: it.toScale, unmask: unmask[i]! }));
      };
      out = m.port;
      port.postMessage({ kind: 'ready' } satisfies MaskSupplyMessage);
    } catch (e) {
      port.postMessage({ kind: 'error', message: (e as Error).message } satisfies MaskSupplyMessage);
    }
  } else if (m.kind === 'masks') {
    queue.push(m);
    work();
  }
});
