// A SEAL client and evaluator for one parameter set, and ciphertexts of given values brought down to a
// level (encrypted at the top, mod-switched down): what the refresh tests start from.
import { topLevel, type CkksParameters } from '../../ir/ckks/params.js';
import type { CkksClient, CkksEvaluator, CkksHandle, CkksEvaluatorOptions } from '../../runtime/backend.js';
import { sealBackend } from '../../runtime/seal/backend.js';

export interface SealPair {
  client: CkksClient;
  ev: CkksEvaluator;
  /** Enc(values) at `level`, owned by the caller. */
  atLevel(level: number, values: Float64Array): CkksHandle;
  dispose(): void;
}

export async function sealPair(params: CkksParameters, options: CkksEvaluatorOptions = {}): Promise<SealPair> {
  const client = await sealBackend.createClient(params, { galoisSteps: [], relin: true });
  const ev = await sealBackend.createEvaluator(params, structuredClone(client.evaluationKeys()), options);
  const top = topLevel(params);
  return {
    client,
    ev,
    atLevel(level, values) {
      let ct = ev.loadCiphertext(client.encrypt(values, top, params.scale));
      for (let l = top; l > level; l--) {
        const next = ev.modSwitch(ct);
        ev.free(ct);
        ct = next;
      }
      return ct;
    },
    dispose() {
      ev.dispose();
      client.dispose();
    },
  };
}
