// How the textual IR spells names, strings and numbers. The printer uses these; the parser reads
// the same spellings back with JSON.parse / Number, so every value survives a round trip exactly.

import { FhecError } from '../errors.js';
import type { DType } from '../dtype.js';
import { castScalar } from '../numeric.js';

/** Names that need no quotes after `%` or `@`. */
const PLAIN_NAME = /^[A-Za-z0-9_.]+$/;
/** Identifiers (attribute keys, op names, domains, metadata keys) that need no quotes. */
const PLAIN_IDENT = /^[A-Za-z_][A-Za-z0-9_.]*$/;

/** A JSON string literal: escapes quotes, backslashes, control characters and lone surrogates. */
export function quote(s: string): string {
  return JSON.stringify(s);
}

/** A value or graph name after its sigil: bare when it is plain, else quoted. */
export function formatName(sigil: '%' | '@', name: string): string {
  return sigil + (PLAIN_NAME.test(name) ? name : quote(name));
}

/** An identifier-like word: bare when it is a plain identifier, else quoted. */
export function formatIdent(s: string): string {
  return PLAIN_IDENT.test(s) ? s : quote(s);
}

/** An integer, exactly (digits of the float64, never exponent notation; -0 kept). */
export function formatInt(v: number, what = 'integer'): string {
  if (!Number.isInteger(v)) throw new FhecError(`${what} ${String(v)} is not an integer`);
  if (Object.is(v, -0)) return '-0';
  return Number.isSafeInteger(v) ? String(v) : BigInt(v).toString();
}

/**
 * The shortest decimal that, read as float64 and rounded to `dtype`, gives back `v` exactly.
 * Always looks like a float (has `.` or an exponent), so it is never mistaken for an int.
 * `v` must already be representable in `dtype` (see isRepresentable).
 */
export function formatFloat(v: number, dtype: DType = 'float64'): string {
  if (Number.isNaN(v)) return 'nan';
  if (v === Infinity) return 'inf';
  if (v === -Infinity) return '-inf';
  if (Object.is(v, -0)) return '-0.0';
  let s = String(v);
  if (dtype !== 'float64') {
    for (let p = 1; p < 17; p++) {
      const n = Number(v.toPrecision(p));
      if (castScalar(n, dtype) === v) {
        s = String(n);
        break;
      }
    }
  }
  // Tiny magnitudes read better in exponent form (1e-5, not 0.00001).
  if (Math.abs(v) < 1e-4) {
    const e = Number(s).toExponential();
    if (e.length < s.length) s = e;
  }
  return /[.eE]/.test(s) ? s : `${s}.0`;
}

/** Whether `v` is a value `dtype` can hold (so rounding to `dtype` on parse leaves it unchanged). */
export function isRepresentable(v: number, dtype: DType): boolean {
  const c = castScalar(v, dtype);
  return Object.is(c, v) || (Number.isNaN(c) && Number.isNaN(v));
}
