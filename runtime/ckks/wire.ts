// Byte envelope for ciphertexts crossing the client/evaluator boundary: magic, backend, parameters id,
// then the backend's own bytes. Loading checks the envelope first, so a ciphertext made for other
// parameters (or another backend) is a clear error instead of a crash deep inside SEAL.

import { FhecError } from '../../ir/errors.js';
import type { BackendName } from '../backend.js';

const MAGIC = [0x46, 0x48, 0x43, 0x54]; // "FHCT"

export function wrapCiphertext(backend: BackendName, parametersId: string, payload: Uint8Array): Uint8Array {
  const id = new TextEncoder().encode(`${backend}|${parametersId}`);
  const out = new Uint8Array(6 + id.length + payload.length);
  out.set(MAGIC, 0);
  new DataView(out.buffer).setUint16(4, id.length, true);
  out.set(id, 6);
  out.set(payload, 6 + id.length);
  return out;
}

export function unwrapCiphertext(bytes: Uint8Array, backend: BackendName, parametersId: string): Uint8Array {
  if (bytes.length < 6 || MAGIC.some((m, i) => bytes[i] !== m)) throw new FhecError('not a fhec ciphertext');
  const idLen = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint16(4, true);
  const [b, pid] = new TextDecoder().decode(bytes.subarray(6, 6 + idLen)).split('|');
  if (b !== backend) throw new FhecError(`ciphertext was made by the ${b} backend, not ${backend}`);
  if (pid !== parametersId) {
    throw new FhecError(`ciphertext belongs to another context: parameters ${pid}, this evaluator has ${parametersId}`);
  }
  return bytes.subarray(6 + idLen);
}

export function checkKeysMatch(keys: { backend: BackendName; parametersId: string }, backend: BackendName, parametersId: string): void {
  if (keys.backend !== backend) throw new FhecError(`evaluation keys are for the ${keys.backend} backend, not ${backend}`);
  if (keys.parametersId !== parametersId) {
    throw new FhecError(`evaluation keys were made for other parameters (${keys.parametersId}); this context is ${parametersId}`);
  }
}
