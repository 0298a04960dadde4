// The refresh protocol's two messages, as bytes: everything the evaluator and the key holder exchange
// is one of these, so the traffic is exactly their lengths. A request carries masked ciphertexts at any
// level, the scale each one must come back at, the refresh point's name, the bound on |x| the mask was
// sized for and the mask's k (runtime/refresh/mask.ts); the reply carries the same count of fresh
// top-level ciphertexts, in order, under the same request id.
//
//   request: "FHRQ" u16 version, u32 id, u32 count,
//            count x (f64 scale, f64 bound, u16 mask bits, u16 name length, name (UTF-8), u32 length, ciphertext bytes)
//   reply:   "FHRP" u16 version, u32 id, u32 count, count x (u32 length, ciphertext bytes)
// All integers little-endian; the ciphertext bytes are runtime/ckks/wire.ts envelopes.
// With a session key shared by the two parties, each message is followed by its HMAC-SHA256, so a
// request or reply altered on the way is rejected before anything in it is used.

import { createHmac, timingSafeEqual } from 'node:crypto';
import { FhecError } from '../../ir/errors.js';

export const REFRESH_PROTOCOL_VERSION = 2;
const REQUEST_MAGIC = [0x46, 0x48, 0x52, 0x51]; // "FHRQ"
const REPLY_MAGIC = [0x46, 0x48, 0x52, 0x50]; // "FHRP"
const HEADER = 14;

export interface RefreshRequestItem {
  /** Masked ciphertext (wire envelope). */
  ciphertext: Uint8Array;
  /** Scale the fresh top-level ciphertext must have. */
  scale: number;
  /** The refresh point (refreshed value's name). */
  point: string;
  /** Bound on |x| the mask was sized for, and the mask's k. */
  bound: number;
  maskBits: number;
}

export interface RefreshRequest {
  id: number;
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

const ITEM_FIXED = 8 + 8 + 2 + 2 + 4;

export function encodeRefreshRequest(r: RefreshRequest): Uint8Array {
  const names = r.items.map((it) => new TextEncoder().encode(it.point));
  const body = r.items.reduce((s, it, i) => s + ITEM_FIXED + names[i]!.length + it.ciphertext.length, 0);
  const { out, dv } = header(REQUEST_MAGIC, r.id, r.items.length, body);
  let at = HEADER;
  r.items.forEach((it, i) => {
    if (!(it.scale > 0) || !Number.isFinite(it.scale)) throw new FhecError(`refresh scale ${it.scale} is not a positive number`);
    const name = names[i]!;
    if (name.length > 0xffff) throw new FhecError('refresh point name is too long');
    dv.setFloat64(at, it.scale, true);
    dv.setFloat64(at + 8, it.bound, true);
    dv.setUint16(at + 16, it.maskBits, true);
    dv.setUint16(at + 18, name.length, true);
    out.set(name, at + 20);
    at += 20 + name.length;
    dv.setUint32(at, it.ciphertext.length, true);
    out.set(it.ciphertext, at + 4);
    at += 4 + it.ciphertext.length;
  });
  return out;
}

export function decodeRefreshRequest(bytes: Uint8Array): RefreshRequest {
  const { id, count, dv } = readHeader(bytes, REQUEST_MAGIC, 'request');
  const items: RefreshRequestItem[] = [];
  let at = HEADER;
  for (let i = 0; i < count; i++) {
    if (at + 20 > bytes.length) throw new FhecError('refresh request is truncated');
    const scale = dv.getFloat64(at, true);
    if (!(scale > 0) || !Number.isFinite(scale)) throw new FhecError(`refresh request asks for scale ${scale}`);
    const bound = dv.getFloat64(at + 8, true);
    if (!(bound > 0) || !Number.isFinite(bound)) throw new FhecError(`refresh request gives bound ${bound}`);
    const maskBits = dv.getUint16(at + 16, true);
    const nameLength = dv.getUint16(at + 18, true);
    if (at + 20 + nameLength > bytes.length) throw new FhecError('refresh request is truncated');
    let point: string;
    try {
      point = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(at + 20, at + 20 + nameLength));
    } catch {
      throw new FhecError('refresh request names its refresh point in malformed UTF-8');
    }
    const { blob, next } = readBlob(bytes, dv, at + 20 + nameLength, 'request');
    items.push({ ciphertext: blob, scale, point, bound, maskBits });
    at = next;
  }
  if (at !== bytes.length) throw new FhecError('refresh request has trailing bytes');
  return { id, items };
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

const TAG_BYTES = 32;

function tag(message: Uint8Array, key: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac('sha256', key).update(message).digest());
}

/** The message followed by its HMAC-SHA256 under the session key. */
export function authenticateMessage(message: Uint8Array, key: Uint8Array): Uint8Array {
  const out = new Uint8Array(message.length + TAG_BYTES);
  out.set(message, 0);
  out.set(tag(message, key), message.length);
  return out;
}

/** The message without its tag; throws if the tag does not match (the message was altered). */
export function checkAuthenticatedMessage(bytes: Uint8Array, key: Uint8Array, what: string): Uint8Array {
  if (bytes.length < TAG_BYTES) throw new FhecError(`refresh ${what} failed its integrity check: too short to carry a tag`);
  const message = bytes.subarray(0, bytes.length - TAG_BYTES);
  if (!timingSafeEqual(tag(message, key), bytes.subarray(bytes.length - TAG_BYTES))) {
    throw new FhecError(`refresh ${what} failed its integrity check: it was altered on the way or made with another session key`);
  }
  return message;
}
