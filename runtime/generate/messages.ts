// The messages of encrypted generation, as bytes. The client and the evaluator exchange nothing else
// (and the evaluator reaches the key holder only through these and the refresh protocol's messages),
// so the traffic is exactly the lengths of these arrays. One frame for every kind:
//   "FHGM" u16 version, u32 header length, header (UTF-8 JSON with a `kind`), u32 blob count,
//   count x (u32 length, bytes)
// Integers little-endian. Blobs carry ciphertexts and keys; the header carries public metadata only.

import { FhecError } from '../../ir/errors.js';
import type { EvaluationKeys } from '../backend.js';
import type { SlotLayout } from '../../ir/fhe/types.js';

/** One ciphertext of a step's logits: the columns colStart .. colStart + layout.length of every token's row. */
export interface LogitsBlock {
  layout: SlotLayout;
  colStart: number;
}

export const GENERATION_PROTOCOL_VERSION = 1;
const MAGIC = [0x46, 0x48, 0x47, 0x4d]; // "FHGM"

export interface GenerationMessage<H extends { kind: string } = { kind: string }> {
  header: H;
  blobs: Uint8Array[];
}

export function isGenerationMessage(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && MAGIC.every((m, i) => bytes[i] === m);
}

export function encodeMessage(header: { kind: string }, blobs: Uint8Array[] = []): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const size = 4 + 2 + 4 + json.length + 4 + blobs.reduce((s, b) => s + 4 + b.length, 0);
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  out.set(MAGIC, 0);
  dv.setUint16(4, GENERATION_PROTOCOL_VERSION, true);
  dv.setUint32(6, json.length, true);
  out.set(json, 10);
  let at = 10 + json.length;
  dv.setUint32(at, blobs.length, true);
  at += 4;
  for (const b of blobs) {
    dv.setUint32(at, b.length, true);
    out.set(b, at + 4);
    at += 4 + b.length;
  }
  return out;
}

/** Decodes a frame; `expect` names the kinds the receiver accepts at this point. */
export function decodeMessage<H extends { kind: string }>(bytes: Uint8Array, expect: readonly string[]): GenerationMessage<H> {
  if (!isGenerationMessage(bytes) || bytes.length < 14) throw new FhecError('not a generation protocol message');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = dv.getUint16(4, true);
  if (version !== GENERATION_PROTOCOL_VERSION) throw new FhecError(`generation message has protocol version ${version}, expected ${GENERATION_PROTOCOL_VERSION}`);
  const n = dv.getUint32(6, true);
  if (10 + n + 4 > bytes.length) throw new FhecError('generation message is truncated');
  let header: H;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(10, 10 + n))) as H;
  } catch {
    throw new FhecError('generation message header is not valid JSON');
  }
  if (!header || typeof header !== 'object' || typeof header.kind !== 'string') throw new FhecError('generation message header has no kind');
  if (header.kind === 'error') throw new FhecError(`the other side reported: ${(header as unknown as { message?: string }).message ?? 'an error'}`);
  if (!expect.includes(header.kind)) throw new FhecError(`unexpected generation message '${header.kind}' (expected ${expect.join(' or ')})`);
  let at = 10 + n;
  const count = dv.getUint32(at, true);
  at += 4;
  const blobs: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    if (at + 4 > bytes.length) throw new FhecError('generation message is truncated');
    const len = dv.getUint32(at, true);
    if (at + 4 + len > bytes.length) throw new FhecError('generation message is truncated');
    blobs.push(bytes.slice(at + 4, at + 4 + len));
    at += 4 + len;
  }
  if (at !== bytes.length) throw new FhecError('generation message has trailing bytes');
  return { header, blobs };
}

/** An error reply: the receiver's decodeMessage turns it back into an FhecError. */
export function errorMessage(message: string): Uint8Array {
  return encodeMessage({ kind: 'error', message } as { kind: string });
}

interface KeysHeader {
  kind: 'keys';
  backend: EvaluationKeys['backend'];
  parametersId: string;
  galoisSteps: number[];
  relin: boolean;
  /** The product key travels with the relinearization keys (absent in messages of older builds). */
  product?: boolean;
  galois: boolean;
}

/** The client's public evaluation material: never a secret key, and no other key either. */
export function encodeKeys(keys: EvaluationKeys): Uint8Array {
  const blobs = [keys.publicKey];
  if (keys.relinKeys) blobs.push(keys.relinKeys);
  if (keys.productKey) blobs.push(keys.productKey);
  if (keys.galoisKeys) blobs.push(keys.galoisKeys);
  const header: KeysHeader = {
    kind: 'keys',
    backend: keys.backend,
    parametersId: keys.parametersId,
    galoisSteps: keys.galoisSteps,
    relin: !!keys.relinKeys,
    product: !!keys.productKey,
    galois: !!keys.galoisKeys,
  };
  return encodeMessage(header, blobs);
}

export function decodeKeys(bytes: Uint8Array): EvaluationKeys {
  const { header: h, blobs } = decodeMessage<KeysHeader>(bytes, ['keys']);
  if (blobs.length !== 1 + (h.relin ? 1 : 0) + (h.product ? 1 : 0) + (h.galois ? 1 : 0)) throw new FhecError('keys message has the wrong number of keys');
  const keys: EvaluationKeys = { backend: h.backend, parametersId: h.parametersId, publicKey: blobs[0]!, galoisSteps: h.galoisSteps };
  let i = 1;
  if (h.relin) keys.relinKeys = blobs[i++];
  if (h.product) keys.productKey = blobs[i++];
  if (h.galois) keys.galoisKeys = blobs[i++];
  return keys;
}
