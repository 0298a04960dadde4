// `--audit-refresh FILE`: one JSON line per refreshed or carried ciphertext, written by the evaluator's
// refreshers as they mask it: the step, the refresh point, the bound the mask was sized from, the
// statistical hiding that mask gives per ciphertext (mask.ts: k - log2 N for W = 2^k B'), and the largest |x| in the ciphertext's slots.
// Only the simulator can know that last figure (it carries the values in the clear); on SEAL nobody
// holding only the evaluator's material can, and the key holder sees x + r only, so it is null there.

import * as fs from 'node:fs';
import { FhecError } from '../../ir/errors.js';
import type { RefreshPointKind } from './schedule.js';
import { DEFAULT_HIDING_BITS } from './mask.js';

export interface RefreshAuditRecord {
  /** The program run (accuracy windows are runs; a generation is one run of many steps). */
  run: number;
  step: number;
  kind: RefreshPointKind;
  point: string;
  level: number;
  scale: number;
  bound: number;
  /** max |x| over the slots (simulator only; null on encrypted backends). */
  observedMax: number | null;
  /** Statistical hiding of the mask, bits per ciphertext (mask.ts). */
  hidingBits: number;
}

export class RefreshAudit {
  readonly records: RefreshAuditRecord[] = [];
  private fd?: number;

  /** With a file, every record is appended to it as it is made (the file is truncated first). */
  constructor(readonly file?: string) {
    if (file === undefined) return;
    try {
      this.fd = fs.openSync(file, 'w');
    } catch (e) {
      throw new FhecError(`cannot write the refresh audit (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { file, field: '--audit-refresh' });
    }
  }

  private runs = 0;

  /** A new run of a program begins (its records carry the next run number). */
  nextRun(): void {
    this.runs++;
  }

  record(r: Omit<RefreshAuditRecord, 'run'>): void {
    const rec: RefreshAuditRecord = { run: Math.max(0, this.runs - 1), ...r };
    this.records.push(rec);
    r = rec;
    if (this.fd !== undefined) fs.writeSync(this.fd, `${JSON.stringify(r)}\n`);
  }

  /** Records whose observed |x| exceeds the bound the mask assumed. */
  overBound(): RefreshAuditRecord[] {
    return this.records.filter((r) => r.observedMax !== null && r.observedMax > r.bound);
  }

  /** One line for the command's summary. */
  summary(): string {
    const recs = this.records;
    const carries = recs.filter((r) => r.kind === 'carry').length;
    const seen = recs.filter((r) => r.observedMax !== null);
    const over = this.overBound();
    const minHiding = recs.reduce((m, r) => Math.min(m, r.hidingBits), Infinity);
    const ratio = seen.reduce((m, r) => Math.max(m, r.observedMax! / r.bound), 0);
    return (
      `refresh audit${this.file ? ` (${this.file})` : ''}: ${recs.length} masked ciphertexts (${recs.length - carries} refreshes, ${carries} cache carries), ` +
      `hiding >= ${recs.length ? minHiding.toFixed(1) : '-'} bits per ciphertext` +
      (minHiding < DEFAULT_HIDING_BITS ? ` (BELOW the ${DEFAULT_HIDING_BITS}-bit target: accepted only because --min-hiding-bits was lowered)` : '') +
      '; ' +
      (seen.length === 0
        ? 'observed |x| unknown (encrypted: only the simulator sees the values)'
        : over.length === 0
          ? `every observed |x| within its bound (largest |x| / bound ${ratio.toFixed(3)})`
          : `${over.length} over their bound (largest |x| / bound ${ratio.toFixed(3)}; first: step ${over[0]!.step}, ${over[0]!.kind} of '${over[0]!.point}')`)
    );
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

/** max |v_i| (the audit's observed figure). */
export function maxAbsOf(values: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < values.length; i++) m = Math.max(m, Math.abs(values[i]!));
  return m;
}
