// Reading bytes of an ONNX external data file: the compiler's importer (whole tensors) and the runtime's
// weight streaming (the rows or columns one matrix block needs) read through these, so both apply
// the same rules: the file stays inside its folder (symlinks resolved), is a regular file, is long
// enough, and is opened without following a link swapped in after the check.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { FhecError } from './errors.js';

/** readSync reads at most ~2 GB per call. */
const READ_CHUNK_BYTES = 2 ** 30;

/** A tensor's bytes in an external data file. */
export interface ExternalRef {
  /** The `location` as written (relative to `dir`). */
  location: string;
  /** Absolute path of the data file. */
  path: string;
  /** The folder the data file must stay inside. */
  dir: string;
  offset: number;
  length: number;
}

export interface ErrorPlace {
  file: string;
  field: string;
}

/**
 * The real path of an external data file (symlinks resolved), or undefined when it does not exist.
 * It must stay inside its real folder (a symlink pointing out is refused, like `../x`) and be a
 * regular file (a FIFO or device would hang or never end).
 */
export function resolveExternal(ref: ExternalRef, where: ErrorPlace): string | undefined {
  let real: string;
  try {
    real = fs.realpathSync(ref.path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new FhecError(`external data file '${ref.location}' cannot be resolved (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, where);
  }
  const dir = fs.realpathSync(ref.dir);
  const rel = path.relative(dir, real);
  if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) {
    throw new FhecError(`external data location '${ref.location}' resolves to '${real}', outside the model's folder '${dir}'`, where);
  }
  if (!fs.statSync(real).isFile()) throw new FhecError(`external data file '${ref.location}' is not a regular file`, where);
  return real;
}

/** Throws unless the tensor's bytes lie within a data file of `size` bytes. */
export function checkExternalRange(ref: ExternalRef, size: number, where: ErrorPlace): void {
  if (ref.offset + ref.length > size) {
    throw new FhecError(
      `external data file '${ref.location}' is too short: the tensor needs bytes ${ref.offset}..${ref.offset + ref.length}, ` +
        `the file has ${size}`,
      where,
    );
  }
}

/**
 * Reads byte ranges of a tensor's external bytes: each `[start, end)` is relative to the tensor's first
 * byte and within its length; the result is the ranges' bytes one after another. Default: the whole tensor.
 */
export function readExternal(ref: ExternalRef, where: ErrorPlace, ranges: readonly (readonly [number, number])[] = [[0, ref.length]]): Uint8Array {
  const real = resolveExternal(ref, where);
  if (real === undefined) throw new FhecError(`external data file '${ref.path}' is missing`, where);
  let fd: number;
  try {
    // Non-blocking and not following a link swapped in since it was resolved.
    fd = fs.openSync(real, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FhecError(`external data file '${ref.path}' cannot be opened (${code ?? (e as Error).message})`, where);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new FhecError(`external data file '${ref.location}' is not a regular file`, where);
    checkExternalRange(ref, st.size, where);
    const total = ranges.reduce((n, [a, b]) => n + (b - a), 0);
    const buf = Buffer.allocUnsafe(total);
    let done = 0;
    for (const [a, b] of ranges) {
      if (a < 0 || b < a || b > ref.length) throw new Error(`internal: external read ${a}..${b} outside a tensor of ${ref.length} bytes`);
      for (let at = a; at < b; ) {
        const got = fs.readSync(fd, buf, done, Math.min(READ_CHUNK_BYTES, b - at), ref.offset + at);
        if (got === 0) throw new FhecError(`unexpected end of external data file '${ref.path}'`, where);
        done += got;
        at += got;
      }
    }
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}
