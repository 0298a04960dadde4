// The calibration table (`fhec calibrate`): one row per calibrated value and per inner quantity
// (indented `#scores`, `#exp_arg`, ...), with the interval after the margin and the fixed-point bits.

import { integerBits, scaleBits, type PrecisionTarget, type ValueRange } from '../../ir/graph/range.js';
import type { CalibratedValue } from './calibrate.js';

export interface CalibrationRow {
  /** Value name, or `value#inner` for a quantity inside the producing op. */
  name: string;
  producer: string;
  secret: boolean;
  nonlinearUses: string[];
  range: ValueRange;
  integerBits: number;
  scaleBits: number;
}

/** Flattens values and their inner quantities into rows (inner rows right after their value). */
export function calibrationRows(values: CalibratedValue[], precision: PrecisionTarget = {}): CalibrationRow[] {
  const rows: CalibrationRow[] = [];
  const row = (name: string, v: CalibratedValue, range: ValueRange, uses: string[]): CalibrationRow => ({
    name,
    producer: v.producer,
    secret: v.secret,
    nonlinearUses: uses,
    range,
    integerBits: integerBits(range),
    scaleBits: scaleBits(range, precision),
  });
  for (const v of values) {
    const { inner, ...own } = v.range;
    rows.push(row(v.name, v, own, v.nonlinearUses));
    for (const [k, r] of Object.entries(inner ?? {})) rows.push(row(`${v.name}#${k}`, v, r, [innerUse(k)]));
  }
  return rows;
}

/** What a polynomial does with each inner quantity. */
function innerUse(k: string): string {
  switch (k) {
    case 'exp_arg':
      return 'exp';
    case 'exp_sum':
      return 'reciprocal';
    case 'norm_arg':
      return 'inverse sqrt';
    case 'scores':
      return 'softmax';
    default:
      return k;
  }
}

function num(x: number): string {
  if (x === 0) return '0';
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  return a >= 1e5 || a < 1e-3 ? x.toExponential(3) : x.toPrecision(5).replace(/\.?0+$/, '');
}

/** A fixed-width text table. */
export function formatCalibrationTable(rows: CalibrationRow[], header: string[] = []): string {
  const head = ['value', 'producer', 'min', 'max', 'p99.9|x|', 'interval (margin)', 'int bits', 'scale bits', 'nonlinear use'];
  const body = rows.map((r) => [
    r.name,
    r.producer,
    num(r.range.min),
    num(r.range.max),
    num(r.range.absPct.p99_9),
    `[${num(r.range.lo)}, ${num(r.range.hi)}]`,
    String(r.integerBits),
    String(r.scaleBits),
    r.nonlinearUses.join(', ') || (r.secret ? '-' : 'plaintext'),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const right = new Set([2, 3, 4, 6, 7]);
  const line = (cells: string[]) =>
    cells.map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [...header, line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}
