// Encryptions of zero made ahead on a second thread. Every refresh re-randomizes the masked
// ciphertext with a fresh public-key encryption of zero (runtime/refresh/refresher.ts): at N = 16384
// about 10 ms each, a third of the evaluator's share of a refresh, on the critical path. The zeros do
// not depend on any data, so a helper thread (its own node-seal instance, the public key only) makes
// them while the evaluator computes, and the evaluator loads one (well under a millisecond) instead
// of encrypting. Each zero is used once; when none is ready at a level the evaluator encrypts its own,
// so the supply changes how fast a run is, never what it computes. Node only (worker_threads).

import { MessageChannel, receiveMessageOnPort, type MessagePort, type Worker } from 'node:worker_threads';
import type { CkksParameters } from '../../ir/ckks/params.js';
import { startWorker } from '../worker-script.js';

export interface ZeroSupplyRequest {
  kind: 'zeros';
  level: number;
  count: number;
}

export type ZeroSupplyMessage = { kind: 'ready' } | { kind: 'zero'; level: number; bytes: Uint8Array } | { kind: 'error'; message: string };

export interface ZeroSupplyStats {
  /** Zeros the evaluator took from the supply. */
  served: number;
  /** Times it found none ready at the level and encrypted its own. */
  missed: number;
}

/** Zeros kept ready per level (each ~0.5-1 MiB at N = 16384). */
const DEPTH = 8;

export class ZeroSupply {
  readonly stats: ZeroSupplyStats = { served: 0, missed: 0 };
  private readonly ready = new Map<number, Uint8Array[]>();
  /** Zeros asked for and not yet arrived, per level. */
  private readonly coming = new Map<number, number>();
  /** Why the supply stopped making zeros, once it has (then every take() is a miss). */
  failed?: string;

  private constructor(
    private readonly worker: Worker,
    private readonly port: MessagePort,
  ) {}

  /** Starts the thread with the public key; resolves once it can make zeros. */
  static async start(params: CkksParameters, publicKey: Uint8Array): Promise<ZeroSupply> {
    // Zeros come back on their own port, which take() reads synchronously (the evaluator's thread is
    // busy computing, its event loop does not turn during a run); requests go on the worker's port.
    const { port1, port2 } = new MessageChannel();
    port1.unref();
    let worker: Worker;
    try {
      worker = await startWorker(import.meta.url, 'zero-supply-worker', { kind: 'init', params, publicKey, port: port2 }, [port2]);
    } catch (e) {
      throw new Error(`the zero-encryption supply did not start: ${(e as Error).message}`);
    }
    const supply = new ZeroSupply(worker, port1);
    // A thread that fails later only stops the supply: the evaluator encrypts its own zeros from then on.
    worker.on('error', (e) => (supply.failed ??= e.message));
    worker.on('exit', (code) => (supply.failed ??= `the zero-supply thread exited (code ${code})`));
    return supply;
  }

  /** A ready zero at `level` (serialized), or undefined: the caller encrypts its own. Asks for more. */
  take(level: number): Uint8Array | undefined {
    this.drain();
    const list = this.ready.get(level);
    const z = list?.pop();
    if (z) this.stats.served++;
    else this.stats.missed++;
    this.refill(level);
    return z;
  }

  close(): void {
    this.port.close();
    void this.worker.terminate();
    this.ready.clear();
  }

  private refill(level: number): void {
    if (this.failed) return;
    const have = (this.ready.get(level)?.length ?? 0) + (this.coming.get(level) ?? 0);
    if (have >= DEPTH) return;
    const count = DEPTH - have;
    this.coming.set(level, (this.coming.get(level) ?? 0) + count);
    this.worker.postMessage({ kind: 'zeros', level, count } satisfies ZeroSupplyRequest);
  }

  /** Takes every zero that has arrived, without waiting (the evaluator's thread is busy computing). */
  private drain(): void {
    for (let m = receiveMessageOnPort(this.port); m; m = receiveMessageOnPort(this.port)) this.accept(m.message as ZeroSupplyMessage);
  }

  private accept(m: ZeroSupplyMessage): void {
    if (m.kind === 'zero') {
      this.coming.set(m.level, (this.coming.get(m.level) ?? 1) - 1);
      const list = this.ready.get(m.level) ?? [];
      list.push(m.bytes);
      this.ready.set(m.level, list);
    } else if (m.kind === 'error') this.failed = m.message;
  }
}
