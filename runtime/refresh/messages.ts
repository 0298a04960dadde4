// The refresh protocol's two messages, as bytes: everything the evaluator and the key holder exchange
// is one of these, so the traffic is exactly their lengths. A request names the step it belongs to and,
// per item, the refresh point (the refreshed value's name in the plan), the scale the fresh ciphertext
// must have, the bound on |x| and the k the coefficient mask was sized with (mask.ts; the key holder
// checks both against the plan's), the rotation steps the evaluator wants the fresh value in as well (the
// plan's rotations of the refreshed value, schedule.ts: the key holder permutes the value it already holds,
// runtime/seal/galois.ts, instead of the evaluator key-switching each) and the masked ciphertext; the reply
// carries, per item in order, the fresh top-level ciphertext and then one per rotation step, under the same
// request id. The key holder checks every item against the
// plan's schedule (schedule.ts) before it decrypts anything.
//
//   request: "FHRQ" u16 version, u32 id, u32 count, u32 step,
//            count x (u16 point length, point UTF-8, f64 scale, f64 bound, u16 mask bits,
//                     u16 rotations, rotations x i32 step, u32 length, ciphertext bytes)
//   reply:   "FHRP" u16 version, u32 id, u32 count, count x (u32 length, ciphertext bytes)
//            (count = the request's items plus their rotations)
// All integers little-endian; the ciphertext bytes are runtime/ckks/wire.ts envelopes. There is no
// message authentication code: a key both parties hold authenticates nothing against either of them,
// and against a third party on the wire the transport's own (TLS) is what counts (README, security model).

import { FhecError } from '../../ir/errors.js';

export const REFRESH_PROTOCOL_VERSION = 4;
const REQUEST_MAGIC = [0x46, 0x48, 0x52, 0x51]; // "FHRQ"
const REPLY_MAGIC = [0x46, 0x48, 0x52, 0x50]; // "FHRP"
const HEADER = 14;

export interface RefreshRequestItem {
  /** The refresh point: the refreshed value's name in the plan. */
  point: string;
  /** Masked ciphertext (wire envelope). */
  ciphertext: Uint8Array;
  /** Scale the fresh top-level ciphertext must have. */
  scale: number;
  /** Bound on |x| the mask was sized for, and the mask's k (W = 2^k B', mask.ts). */
  bound: number;
  maskBits: number;
  /** Left rotations of the fresh value the reply also carries, each a ciphertext after the item's own (none: absent or empty). */
  rotations?: number[];
}

export interface RefreshRequest {
  id: number;
  /** The step of the session the request belongs to (0 for a single program). */
  step: number;
  items: RefreshRequestItem[];
}

export interface RefreshReply {
  id: number;
  ciphertexts: Uint8Array[];
}

function header(magic: number[], id: number, count: number, bodyBytes: number): { out: Uint8Array; dv: DataView } {
  if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) throw new FhecError(`refresh request id ${id} is not a u32`);
  const out = new Uint8Array(HEADER + bodyBytes);
  const dv = new DataView(out.buffer);
  out.set(magic, 0);
  dv.setUint16(4, REFRESH_PROTOCOL_VERSION, true);
  dv.setUint32(6, id, true);
  dv.setUint32(10, count, true);
  return { out, dv };
}

/** Reads the header of a message of the given kind; returns the id, the count and a cursor. */
function readHeader(bytes: Uint8Array, magic: number[], what: string): { id: number; count: number; dv: DataView } {
  if (bytes.length < HEADER || magic.some((m, i) => bytes[i] !== m)) throw new FhecError(`not a refresh ${what}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = dv.getUint16(4, true);
  if (version !== REFRESH_PROTOCOL_VERSION) {
    throw new FhecError(`refresh ${what} has protocol version ${version}, expected ${REFRESH_PROTOCOL_VERSION}`);
  }
  return { id: dv.getUint32(6, true), count: dv.getUint32(10, true), dv };
}

function readBlob(bytes: Uint8Array, dv: DataView, at: number, what: string): { blob: Uint8Array; next: number } {
  if (at + 4 > bytes.length) throw new FhecError(`refresh ${what} is truncated`);
  const n = dv.getUint32(at, true);
  if (at + 4 + n > bytes.length) throw new FhecError(`refresh ${what} is truncated`);
  return { blob: bytes.slice(at + 4, at + 4 + n), next: at + 4 + n };
}

const utf8 = new TextEncoder();
/** Per request item besides the point's bytes, its rotations' 4 bytes each and the ciphertext: u16 point length, f64 scale, f64 bound, u16 mask bits, u16 rotations, u32 length. */
export const REQUEST_ITEM_FIXED = 2 + 8 + 8 + 2 + 2 + 4;
const MAX_ROTATIONS = 0xffff;
const MAX_POINT_BYTES = 0xffff;

export function encodeRefreshRequest(r: RefreshRequest): Uint8Array {
  if (!Number.isInteger(r.step) || r.step < 0 || r.step > 0xffffffff) throw new FhecError(`refresh request step ${r.step} is not a u32`);
  const points = r.items.map((it) => utf8.encode(it.point));
  const body = 4 + r.items.reduce((s, it, i) => s + REQUEST_ITEM_FIXED + points[i]!.length + 4 * (it.rotations?.length ?? 0) + it.ciphertext.length, 0);
  const { out, dv } = header(REQUEST_MAGIC, r.id, r.items.length, body);
  dv.setUint32(HEADER, r.step, true);
  let at = HEADER + 4;
  r.items.forEach((it, i) => {
    const p = points[i]!;
    if (p.length === 0 || p.length > MAX_POINT_BYTES) throw new FhecError(`refresh point name '${it.point}' must have 1..${MAX_POINT_BYTES} bytes`);
    if (!(it.scale > 0) || !Number.isFinite(it.scale)) throw new FhecError(`refresh scale ${it.scale} is not a positive number`);
    dv.setUint16(at, p.length, true);
    out.set(p, at + 2);
    at += 2 + p.length;
    if (!(it.bound > 0) || !Number.isFinite(it.bound)) throw new FhecError(`refresh bound ${it.bound} is not a positive number`);
    if (!Number.isInteger(it.maskBits) || it.maskBits < 0 || it.maskBits > 0xffff) throw new FhecError(`refresh mask bits ${it.maskBits} is not a u16`);
    dv.setFloat64(at, it.scale, true);
    dv.setFloat64(at + 8, it.bound, true);
    dv.setUint16(at + 16, it.maskBits, true);
    const rotations = it.rotations ?? [];
    if (rotations.length > MAX_ROTATIONS) throw new FhecError(`refresh of '${it.point}' asks for ${rotations.length} rotations, at most ${MAX_ROTATIONS}`);
    dv.setUint16(at + 18, rotations.length, true);
    at += 20;
    for (const step of rotations) {
      if (!Number.isInteger(step) || step < -0x80000000 || step > 0x7fffffff) throw new FhecError(`refresh rotation step ${step} is not an i32`);
      dv.setInt32(at, step, true);
      at += 4;
    }
    dv.setUint32(at, it.ciphertext.length, true);
    out.set(it.ciphertext, at + 4);
    at += 4 + it.ciphertext.length;
  });
  return out;
}

export function decodeRefreshRequest(bytes: Uint8Array): RefreshRequest {
  const { id, count, dv } = readHeader(bytes, REQUEST_MAGIC, 'request');
  if (HEADER + 4 > bytes.length) throw new FhecError('refresh request is truncated');
  const step = dv.getUint32(HEADER, true);
  const items: RefreshRequestItem[] = [];
  let at = HEADER + 4;
  for (let i = 0; i < count; i++) {
    if (at + 2 > bytes.length) throw new FhecError('refresh request is truncated');
    const n = dv.getUint16(at, true);
    if (n === 0 || at + 2 + n + 20 > bytes.length) throw new FhecError('refresh request is truncated or names no refresh point');
    let point: string;
    try {
      point = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(at + 2, at + 2 + n));
    } catch {
      throw new FhecError('refresh request names a refresh point that is not UTF-8');
    }
    at += 2 + n;
    const scale = dv.getFloat64(at, true);
    if (!(scale > 0) || !Number.isFinite(scale)) throw new FhecError(`refresh request asks for scale ${scale}`);
    const bound = dv.getFloat64(at + 8, true);
    if (!(bound > 0) || !Number.isFinite(bound)) throw new FhecError(`refresh request gives bound ${bound}`);
    const maskBits = dv.getUint16(at + 16, true);
    const k = dv.getUint16(at + 18, true);
    at += 20;
    if (at + 4 * k > bytes.length) throw new FhecError('refresh request is truncated');
    const rotations: number[] = [];
    for (let j = 0; j < k; j++, at += 4) rotations.push(dv.getInt32(at, true));
    const { blob, next } = readBlob(bytes, dv, at, 'request');
    items.push({ point, ciphertext: blob, scale, bound, maskBits, ...(k > 0 ? { rotations } : {}) });
    at = next;
  }
  if (at !== bytes.length) throw new FhecError('refresh request has trailing bytes');
  return { id, step, items };
}

export function encodeRefreshReply(r: RefreshReply): Uint8Array {
  const body = r.ciphertexts.reduce((s, c) => s + 4 + c.length, 0);
  const { out, dv } = header(REPLY_MAGIC, r.id, r.ciphertexts.length, body);
  let at = HEADER;
  for (const c of r.ciphertexts) {
    dv.setUint32(at, c.length, true);
    out.set(c, at + 4);
    at += 4 + c.length;
  }
  return out;
}

export function decodeRefreshReply(bytes: Uint8Array): RefreshReply {
  const { id, count, dv } = readHeader(bytes, REPLY_MAGIC, 'reply');
  const ciphertexts: Uint8Array[] = [];
  let at = HEADER;
  for (let i = 0; i < count; i++) {
    const { blob, next } = readBlob(bytes, dv, at, 'reply');
    ciphertexts.push(blob);
    at = next;
  }
  if (at !== bytes.length) throw new FhecError('refresh reply has trailing bytes');
  return { id, ciphertexts };
}
