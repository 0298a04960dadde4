// DEBUG ONLY: measures the real CKKS error of every intermediate value of a managed program.
//
// The program runs on a backend's evaluator through the executor (executeProgram: the same ops, the
// same encoding) while a client holding the SECRET KEY decrypts every ciphertext an op produces (or
// only the ones asked for), and compares it with a float64
// evaluation of the same program (ir/fhe/plain-eval.ts). This breaks the client/evaluator separation
// on purpose: it exists to check the precision pass's predictions (passes/fhe/precision.ts) and must
// never be part of the normal execution path (runtime/ckks/execute.ts). Every result carries
// DEBUG_LABEL.
//
// refresh is done here by the key holder itself (decrypt, re-encrypt at the top level and the result's
// scale), which is what a client-aided refresh computes, without the mask.

import type { FheOp, FheOpKind, FheProgram } from '../../ir/fhe/types.js';
import { verifyFhe } from '../../ir/fhe/verify.js';
import type { BackendName, CkksBackend, CkksClient, CkksEvaluator, CkksHandle, CkksRefresher } from '../backend.js';
import { encryptInputs, executeProgram, keyRequestFor } from '../ckks/execute.js';
import { topLevel, type CkksParameters } from '../../ir/ckks/params.js';
import { evaluatePlain, maxAbs, type PlainEvaluation } from '../../ir/fhe/plain-eval.js';
import { sealBackend } from '../seal/backend.js';

export const DEBUG_LABEL = 'DEBUG MEASUREMENT: the secret key decrypted every intermediate value (never do this in production)';

export interface MeasuredValue {
  name: string;
  op: FheOpKind;
  level: number;
  /** max over the slots of |decrypted - float64 reference|. */
  error: number;
  /** Root mean square of the same difference. */
  rmsError: number;
  /** max |reference| over the slots. */
  magnitude: number;
}

export interface MeasuredErrors {
  label: typeof DEBUG_LABEL;
  backend: BackendName;
  /** Every ciphertext value, by SSA name. */
  values: Map<string, MeasuredValue>;
  /** Output tensors -> the measured value they read. */
  outputs: Map<string, MeasuredValue>;
}

function compare(decrypted: Float64Array, reference: Float64Array): { error: number; rms: number } {
  let e = 0;
  let s = 0;
  for (let i = 0; i < reference.length; i++) {
    const d = Math.abs(decrypted[i]! - reference[i]!);
    e = Math.max(e, d);
    s += d * d;
  }
  return { error: e, rms: Math.sqrt(s / reference.length) };
}

export interface DebugMeasureOptions {
  /** Default: seal. */
  backend?: CkksBackend;
  /**
   * A client and evaluator to reuse (the caller disposes them); they must hold the keys the program
   * needs. Default: a fresh pair with exactly the program's keys.
   */
  session?: { client: CkksClient; evaluator: CkksEvaluator };
  /** The float64 evaluation of `program` on the same inputs, if the caller already has it. */
  reference?: PlainEvaluation;
  /** Decrypt and compare only these values (default: every ciphertext; decryption dominates the run). */
  only?: ReadonlySet<string>;
}

/**
 * DEBUG ONLY. Runs `program` with inputs `tensors` (row-major per input) and returns the measured
 * error of every ciphertext value against the float64 reference.
 */
export async function debugMeasureErrors(
  program: FheProgram,
  params: CkksParameters,
  tensors: Record<string, ArrayLike<number>>,
  options: DebugMeasureOptions = {},
): Promise<MeasuredErrors> {
  verifyFhe(program, { managed: true });
  const backend = options.backend ?? sealBackend;
  const reference = options.reference ?? evaluatePlain(program, tensors);
  const client = options.session?.client ?? (await backend.createClient(params, keyRequestFor(program)));
  const ev = options.session?.evaluator ?? (await backend.createEvaluator(params, client.evaluationKeys()));
  const values = new Map<string, MeasuredValue>();
  const outputs = new Map<string, MeasuredValue>();
  try {
    const inputs = encryptInputs(program, client, tensors);
    // The key holder's refresh without the mask: decrypt, encrypt again at the top level.
    const keyHolder: CkksRefresher = {
      refresh: (ct, scale) => ev.loadCiphertext(client.encrypt(client.decrypt(ev.saveCiphertext(ct)), topLevel(params), scale)),
    };
    const observe = (op: FheOp, r: CkksHandle): void => {
      const t = op.result!.type;
      if (t.kind !== 'ct' || (options.only && !options.only.has(op.result!.name))) return;
      const name = op.result!.name;
      const decrypted = client.decrypt(ev.saveCiphertext(r));
      const ref = reference.values.get(name)!;
      const { error, rms } = compare(decrypted, ref);
      values.set(name, { name, op: op.kind, level: t.level!, error, rmsError: rms, magnitude: maxAbs(ref) });
    };
    executeProgram(program, ev, inputs, { refresher: keyHolder, observe });
    for (const op of program.ops) {
      const v = op.kind === 'output' ? values.get(op.args[0]!.name) : undefined;
      if (v) outputs.set(op.tensor!, v);
    }
  } finally {
    if (!options.session) {
      ev.dispose();
      client.dispose();
    }
  }
  return { label: DEBUG_LABEL, backend: client.backend, values, outputs };
}
