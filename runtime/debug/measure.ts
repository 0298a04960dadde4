// DEBUG ONLY: measures the real CKKS error of every intermediate value of a managed program.
//
// The program runs op by op on a backend's evaluator while a client holding the SECRET KEY decrypts
// every ciphertext it produces (or only the ones asked for), and compares it with a float64
// evaluation of the same program (ir/fhe/plain-eval.ts). This breaks the client/evaluator separation
// on purpose: it exists to check the precision pass's predictions (passes/fhe/precision.ts) and must
// never be part of the normal execution path (runtime/ckks/execute.ts). Every result carries
// DEBUG_LABEL.
//
// refresh is done here by the key holder itself (decrypt, re-encrypt at the result's level and scale),
// which is what a client-aided refresh computes, without the mask.

import { constantSlots } from '../../ir/fhe/layout.js';
import type { FheOpKind, FheProgram } from '../../ir/fhe/types.js';
import { verifyFhe } from '../../ir/fhe/verify.js';
import type { BackendName, CkksBackend, CkksClient, CkksEvaluator, CkksHandle } from '../backend.js';
import { encryptInputs, keyRequestFor } from '../ckks/execute.js';
import type { CkksParameters } from '../../ir/ckks/params.js';
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
    const lastUse = new Map<string, number>();
    program.ops.forEach((op, i) => op.args.forEach((a) => lastUse.set(a.name, i)));
    const live = new Map<string, CkksHandle>();
    const get = (name: string): CkksHandle => live.get(name)!;
    program.ops.forEach((op, i) => {
      const a = op.args[0] ? get(op.args[0].name) : undefined;
      const b = op.args[1] ? get(op.args[1].name) : undefined;
      const t = op.result?.type;
      let r: CkksHandle | undefined;
      switch (op.kind) {
        case 'input':
          r = ev.loadCiphertext(inputs.get(op.tensor!)!);
          break;
        case 'output':
          if (values.has(op.args[0]!.name)) outputs.set(op.tensor!, values.get(op.args[0]!.name)!);
          break;
        case 'encode': {
          const c = program.constants.get(op.constant!)!;
          r = ev.encode(constantSlots(c.data, program.slots, c.name), t!.level!, t!.scale!);
          break;
        }
        case 'add': r = ev.add(a!, b!); break;
        case 'sub': r = ev.sub(a!, b!); break;
        case 'negate': r = ev.negate(a!); break;
        case 'add_plain': r = ev.addPlain(a!, b!); break;
        case 'mul_plain': r = ev.mulPlain(a!, b!); break;
        case 'mul': r = ev.mul(a!, b!); break;
        case 'relinearize': r = ev.relinearize(a!); break;
        case 'rescale': r = ev.rescale(a!); break;
        case 'mod_switch': r = ev.modSwitch(a!); break;
        case 'rotate': r = ev.rotate(a!, op.step!); break;
        case 'refresh': {
          const plain = client.decrypt(ev.saveCiphertext(a!));
          r = ev.loadCiphertext(client.encrypt(plain, t!.level!, t!.scale!));
          break;
        }
      }
      if (r && t?.kind === 'ct' && (!options.only || options.only.has(op.result!.name))) {
        const name = op.result!.name;
        const decrypted = client.decrypt(ev.saveCiphertext(r));
        const ref = reference.values.get(name)!;
        const { error, rms } = compare(decrypted, ref);
        values.set(name, { name, op: op.kind, level: t.level!, error, rmsError: rms, magnitude: maxAbs(ref) });
      }
      if (op.result && r) live.set(op.result.name, r);
      for (const x of new Set(op.args.map((v) => v.name))) {
        if (lastUse.get(x) === i) {
          ev.free(get(x));
          live.delete(x);
        }
      }
      if (op.result && r && !lastUse.has(op.result.name)) {
        ev.free(r);
        live.delete(op.result.name);
      }
    });
    for (const h of live.values()) ev.free(h);
  } finally {
    if (!options.session) {
      ev.dispose();
      client.dispose();
    }
  }
  return { label: DEBUG_LABEL, backend: client.backend, values, outputs };
}
