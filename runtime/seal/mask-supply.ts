// Refresh masks made ahead on a helper thread. Masking a refresh costs the evaluator a fresh public-key
// encryption of the mask r at the ciphertext's level and the unmask -round(rho r) as a plaintext at the
// level the reply comes back at (runtime/refresh/mask-stock.ts): at N = 16384 about 15 ms per refreshed
// ciphertext on the evaluator's thread, as much as the key holder's whole share. A mask depends only on
// where the refresh happens (its shape), never on data, so a helper thread (its own node-seal instance,
// public keys only: no secret) samples r and makes both ends while the evaluator computes, and the
// evaluator loads them (well under a millisecond). A mask for an unrelinearized product is a size-3
// encryption with the client's product key (zero-encryptor.ts). r itself stays on the helper thread:
// the evaluator needs only its two ends. Each mask is used once; a refresh whose mask has not arrived is masked on
// the evaluator's thread, so the supply changes how fast a run is, never what it computes. Node only
// (worker_threads).

import { MessageChannel, receiveMessageOnPort, type MessagePort, type Worker } from 'node:worker_threads';
import type { CkksParameters } from '../../ir/ckks/params.js';
import type { MaskRequest } from '../backend.js';
import { startWorker } from '../worker-script.js';

export interface MaskSupplyRequest {
  kind: 'masks';
  items: MaskRequest[];
}

/** A mask as the helper thread sends it: Enc(r) serialized at its level and scale, -round(rho r) as NTT words. */
export interface MadeMask {
  key: string;
  masked: Uint8Array;
  toLevel: number;
  toScale: number;
  unmask: BigUint64Array;
}

export type MaskSupplyMessage = { kind: 'ready' } | { kind: 'masks'; masks: MadeMask[] } | { kind: 'error'; message: string };

export class MaskSupply {
  /** Masks asked for, and masks that have arrived. */
  readonly stats = { requested: 0, delivered: 0 };
  /** Why the supply stopped making masks, once it has (from then on the evaluator masks inline). */
  failed?: string;

  private constructor(
    private readonly worker: Worker,
    private readonly port: MessagePort,
  ) {}

  /** Starts the thread with the public key; resolves once it can make masks. */
  static async start(params: CkksParameters, publicKey: Uint8Array, productKey?: Uint8Array): Promise<MaskSupply> {
    // Masks come back on their own port, which collect() reads synchronously (the evaluator's thread is
    // busy computing, its event loop does not turn during a run); requests go on the worker's port.
    const { port1, port2 } = new MessageChannel();
    port1.unref();
    let worker: Worker;
    try {
      worker = await startWorker(import.meta.url, 'mask-supply-worker', { kind: 'init', params, publicKey, productKey, port: port2 }, [port2]);
    } catch (e) {
      throw new Error(`the refresh-mask thread did not start: ${(e as Error).message}`);
    }
    const supply = new MaskSupply(worker, port1);
    // A thread that fails later only stops the supply: the evaluator masks inline from then on.
    worker.on('error', (e) => (supply.failed ??= e.message));
    worker.on('exit', (code) => (supply.failed ??= `the refresh-mask thread exited (code ${code})`));
    return supply;
  }

  /** Asks for masks of these shapes (made in order). */
  request(items: MaskRequest[]): void {
    if (this.failed || items.length === 0) return;
    this.stats.requested += items.length;
    this.worker.postMessage({ kind: 'masks', items } satisfies MaskSupplyRequest);
  }

  /** Every mask that has arrived, without waiting. */
  collect(): MadeMask[] {
    const out: MadeMask[] = [];
    for (let m = receiveMessageOnPort(this.port); m; m = receiveMessageOnPort(this.port)) {
      const msg = m.message as MaskSupplyMessage;
      if (msg.kind === 'masks') out.push(...msg.masks);
      else if (msg.kind === 'error') this.failed ??= msg.message;
    }
    this.stats.delivered += out.length;
    return out;
  }

  close(): void {
    this.port.close();
    void this.worker.terminate();
  }
}
