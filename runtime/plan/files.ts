// File access for plans and their sidecars: reads that check what they read (a regular file, the size
// and sha256 digest the plan recorded, hashed while reading) and writes that never leave a half-written
// file (a temporary file beside the target, then a rename). Every failure is a FhecError naming the file.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FhecError } from '../../ir/errors.js';

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export interface ExpectedContent {
  /** Byte length the file must have. */
  bytes?: number;
  /** sha256 (lowercase hex) the file's bytes must have. */
  sha256?: string;
}

/** Why an fs call failed, in words. */
export function ioReason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT':
      return 'does not exist';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EROFS':
      return 'read-only file system';
    case 'EISDIR':
      return 'is a directory';
    case 'ENOTDIR':
      return 'a parent is not a directory';
    case 'ENOSPC':
      return 'no space left on the device';
    default:
      return code ?? (e as Error).message;
  }
}

/**
 * Reads `file` as a regular file (opened non-blocking, so a FIFO is refused instead of waiting for a
 * writer), checking its size and digest against `expect` while reading. `owner` is the file that names
 * it (the plan), `what` how messages call it (with its name), `field` where the owner records it.
 */
export function readCheckedFile(file: string, what: string, expect: ExpectedContent = {}, where: { owner?: string; field?: string } = {}): Uint8Array {
  const errWhere = { file: where.owner ?? file, ...(where.field ? { field: where.field } : {}) };
  const shown = what;
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    throw new FhecError(`cannot read ${shown}: ${ioReason(e)}`, errWhere);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new FhecError(`${shown} is not a regular file`, errWhere);
    if (expect.bytes !== undefined && st.size !== expect.bytes) {
      throw new FhecError(`${shown} has ${st.size} bytes, expected ${expect.bytes}`, errWhere);
    }
    const out = new Uint8Array(st.size);
    const hash = expect.sha256 ? createHash('sha256') : undefined;
    const block = 1 << 22;
    let got = 0;
    while (got < st.size) {
      const n = fs.readSync(fd, out, got, Math.min(block, st.size - got), got);
      if (n === 0) throw new FhecError(`${shown} shrank while being read`, errWhere);
      hash?.update(out.subarray(got, got + n));
      got += n;
    }
    if (hash) {
      const digest = hash.digest('hex');
      if (digest !== expect.sha256) {
        throw new FhecError(`${shown} is corrupt or was changed: its sha256 is ${digest.slice(0, 16)}..., expected ${expect.sha256!.slice(0, 16)}...`, errWhere);
      }
    }
    return out;
  } finally {
    fs.closeSync(fd);
  }
}

let tmpCounter = 0;

/**
 * Writes `data` to `file` atomically: into a temporary file in the same folder, then renamed over the
 * target, so a failed or interrupted write leaves the old file (or none), never a truncated one.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}-${tmpCounter++}`);
  try {
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    if (e instanceof FhecError) throw e;
    throw new FhecError(`cannot write: ${ioReason(e)}`, { file });
  }
}
