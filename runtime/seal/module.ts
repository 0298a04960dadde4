// Loads node-seal once, builds SEAL contexts from our parameter model, and turns SEAL's wasm exceptions
// into FhecErrors with SEAL's own message.

import SEAL from 'node-seal';
import type { MainModule, ParmsIdType, SEALContext } from 'node-seal';
import { FhecError } from '../../ir/errors.js';
import type { CkksParameters } from '../../ir/ckks/params.js';
import { parmsIdHex, type SealShape } from './serialized.js';

let modulePromise: Promise<MainModule> | undefined;

/**
 * Instances that ran out of wasm memory. SEAL's memory pool takes a spin lock around an allocation; a
 * std::bad_alloc thrown inside leaves it locked, and in single-threaded wasm the next allocation or free
 * in that pool spins forever (measured: a delete after the failure never returns). Such an instance is
 * never called again: its object deletes become no-ops (the process is about to report and stop) and
 * sealCall refuses at once.
 */
const outOfMemory = new WeakSet<MainModule>();

export function loadSeal(): Promise<MainModule> {
  modulePromise ??= SEAL().then((seal) => {
    guardDeletes(seal);
    return seal;
  });
  return modulePromise;
}

/** Wraps embind's shared `delete` (on the root of every SEAL class's prototype chain) with the guard. */
function guardDeletes(seal: MainModule): void {
  let proto: { delete?: () => void } | null = (seal.Ciphertext as unknown as { prototype: object }).prototype;
  while (proto && !Object.prototype.hasOwnProperty.call(proto, 'delete')) proto = Object.getPrototypeOf(proto) as typeof proto;
  if (!proto?.delete) return;
  const del = proto.delete;
  proto.delete = function (this: unknown) {
    if (!outOfMemory.has(seal)) del.call(this);
  };
}

/** Runs a SEAL call; a C++ exception becomes an FhecError naming the operation. */
export function sealCall<T>(seal: MainModule, what: string, f: () => T): T {
  if (outOfMemory.has(seal)) throw new FhecError(`SEAL ${what} refused: this SEAL instance ran out of memory earlier and cannot be used again`);
  try {
    return f();
  } catch (e) {
    if (e instanceof FhecError) throw e;
    let message = String(e);
    // C++ exceptions arrive as WebAssembly.Exception objects; SEAL's module can read their message.
    const withMessages = seal as unknown as { getExceptionMessage?: (e: unknown) => unknown };
    if (!(e instanceof Error) && withMessages.getExceptionMessage) {
      try {
        const m = withMessages.getExceptionMessage(e);
        message = Array.isArray(m) ? m.join(': ') : String(m);
      } catch {
        message = 'unknown SEAL exception';
      }
    }
    if (/bad_alloc/.test(message)) {
      outOfMemory.add(seal);
      throw new FhecError(
        `SEAL ${what} ran out of memory: node-seal's wasm heap (4 GiB) is full. It holds the evaluation keys, the ` +
          'cached weight plaintexts and the live ciphertexts of the run; this SEAL instance cannot be used again ' +
          '(its memory pool stays locked), so the run stops here. A plan with fewer levels or a smaller ring ' +
          'degree needs less.',
      );
    }
    throw new FhecError(`SEAL ${what} failed: ${message}`);
  }
}

export interface SealContextInfo {
  context: SEALContext;
  /** parms_id for each level (index = level = chain index). */
  levels: ParmsIdType[];
}

export function makeSealContext(seal: MainModule, p: CkksParameters): SealContextInfo {
  const parms = new seal.EncryptionParameters(seal.SchemeType.ckks);
  parms.setPolyModulusDegree(p.ringDegree);
  parms.setCoeffModulus(seal.CoeffModulus.Create(p.ringDegree, Int32Array.from(p.bitSizes)));
  const sec = p.insecure ? seal.SecLevelType.none : seal.SecLevelType.tc128;
  const context = sealCall(seal, 'context', () => new seal.SEALContext(parms, true, sec));
  if (!context.parametersSet()) throw new FhecError(`SEAL rejects the parameters N=${p.ringDegree} [${p.bitSizes.join(', ')}]`);
  const primes = seal.jsArrayFromVecModulus(context.keyContextData().parms().coeffModulus()) as bigint[];
  if (primes.length !== p.primes.length || primes.some((q, i) => q !== p.primes[i])) {
    throw new FhecError('SEAL chose other primes than the parameter model; the plan cannot be executed exactly');
  }
  const levels: ParmsIdType[] = [];
  for (let cd = context.firstContextData(); ; cd = cd.nextContextData()) {
    levels[cd.chainIndex()] = cd.parmsId();
    if (cd.chainIndex() === 0) break;
  }
  parms.delete();
  return { context, levels };
}

/** The context as the serialized-object checker sees it (runtime/seal/serialized.ts). */
export function sealShape(info: SealContextInfo, p: CkksParameters): SealShape {
  return {
    n: p.ringDegree,
    primes: p.primes,
    levelIds: info.levels.map((id) => parmsIdHex(id.values() as BigUint64Array)),
    keyId: parmsIdHex(info.context.keyParmsId().values() as BigUint64Array),
  };
}
