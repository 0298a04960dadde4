// How the textual IR spells a calibrated range (ir/graph/range.ts), after a value's type:
//
//   %x : f32[1, 8, 64] range<min = -3.5, max = 2.25, lo = -3.85, hi = 2.475, margin = 0.1, mean = 0.01,
//        std = 0.9, p0.1 = -3.1, p1 = -2.2, p99 = 2.0, p99.9 = 2.2, abs.p0.1 = 0.001, abs.p1 = 0.01,
//        abs.p99 = 2.3, abs.p99.9 = 3.0, accuracy = 0.01, count = 512, masked = 0, nans = 0>
//
// (on one line). Inner quantities of the producing op follow as `scores = range<...>`. Only `min` and
// `max` are required when writing one by hand; the printer writes every field, so text -> graph -> text
// is exact. Numbers are float64 in their shortest round-trip form.

import type { Percentiles, ValueRange } from '../graph/range.js';
import { PERCENTILE_KEYS, withMargin } from '../graph/range.js';
import { formatFloat, formatIdent, formatInt } from './literals.js';

const PCT_TEXT: Record<keyof Percentiles, string> = { p0_1: 'p0.1', p1: 'p1', p99: 'p99', p99_9: 'p99.9' };

/** Scalar keys in print order. */
const SCALAR_KEYS = [
  'min', 'max', 'lo', 'hi', 'margin', 'mean', 'std',
  ...PERCENTILE_KEYS.map((k) => PCT_TEXT[k]),
  ...PERCENTILE_KEYS.map((k) => `abs.${PCT_TEXT[k]}`),
  'accuracy', 'count', 'masked', 'nans',
];
const COUNT_KEYS = new Set(['count', 'masked', 'nans']);

export function formatRange(r: ValueRange): string {
  const values: Record<string, number> = {
    min: r.min, max: r.max, lo: r.lo, hi: r.hi, margin: r.margin, mean: r.mean, std: r.std,
    accuracy: r.percentileAccuracy, count: r.count, masked: r.masked, nans: r.nan,
  };
  for (const k of PERCENTILE_KEYS) {
    values[PCT_TEXT[k]] = r.pct[k];
    values[`abs.${PCT_TEXT[k]}`] = r.absPct[k];
  }
  const parts = SCALAR_KEYS.map((k) => `${k} = ${COUNT_KEYS.has(k) ? formatInt(values[k]!, k) : formatFloat(values[k]!)}`);
  for (const [name, inner] of Object.entries(r.inner ?? {})) parts.push(`${formatIdent(name)} = ${formatRange(inner)}`);
  return `range<${parts.join(', ')}>`;
}

export interface RangeEntry<At> {
  key: string;
  at: At;
  value: number | ValueRange;
}

/**
 * Builds a ValueRange from parsed `key = value` entries. Missing fields default: margin 0, [lo, hi]
 * from min, max and margin, counts 0, mean/std/percentiles NaN (unknown), accuracy 0.
 */
export function rangeFromEntries<At>(entries: RangeEntry<At>[], fail: (at: At | undefined, message: string) => never): ValueRange {
  const scalars = new Map<string, number>();
  const inner: Record<string, ValueRange> = {};
  const known = new Set(SCALAR_KEYS);
  for (const { key, at, value } of entries) {
    if (scalars.has(key) || Object.hasOwn(inner, key)) fail(at, `range field '${key}' is given twice`);
    if (typeof value === 'number') {
      if (!known.has(key)) fail(at, `unknown range field '${key}' (fields: ${SCALAR_KEYS.join(', ')}; other names take a range<...>)`);
      if (COUNT_KEYS.has(key) && !(Number.isInteger(value) && value >= 0)) fail(at, `range field '${key}' must be a count (an integer >= 0)`);
      scalars.set(key, value);
    } else {
      if (known.has(key)) fail(at, `range field '${key}' takes a number, not a range`);
      Object.defineProperty(inner, key, { value, writable: true, enumerable: true, configurable: true });
    }
  }
  const min = scalars.get('min');
  const max = scalars.get('max');
  if (min === undefined || max === undefined) fail(undefined, "a range needs at least 'min' and 'max'");
  if (!(min <= max)) fail(undefined, `range min ${min} is not <= max ${max}`);
  const margin = scalars.get('margin') ?? 0;
  const derived = withMargin(min, max, margin);
  const lo = scalars.get('lo') ?? derived.lo;
  const hi = scalars.get('hi') ?? derived.hi;
  if (!(lo <= hi)) fail(undefined, `range lo ${lo} is not <= hi ${hi}`);
  const pct = (prefix: string) =>
    Object.fromEntries(PERCENTILE_KEYS.map((k) => [k, scalars.get(prefix + PCT_TEXT[k]) ?? NaN])) as unknown as Percentiles;
  const r: ValueRange = {
    count: scalars.get('count') ?? 0,
    masked: scalars.get('masked') ?? 0,
    nan: scalars.get('nans') ?? 0,
    min,
    max,
    absMax: Math.max(Math.abs(min), Math.abs(max)),
    mean: scalars.get('mean') ?? NaN,
    std: scalars.get('std') ?? NaN,
    pct: pct(''),
    absPct: pct('abs.'),
    percentileAccuracy: scalars.get('accuracy') ?? 0,
    margin,
    lo,
    hi,
  };
  if (Object.keys(inner).length) r.inner = inner;
  return r;
}
