// `npm run figures -- --check`: each figure a marked README table states (bench/figures/stated.ts pairs
// it with a JSON key of its section) against the section's figures/<section>.json. Tolerances by kind:
// exact figures (counts, agreement, bytes, bits) must equal the measurement rounded as the README
// rounds it; `atMost` ("within X") must not be exceeded at the README's precision; `approx` (measured
// errors) within a relative band; timings within a wide band, since machines and their load differ.
// Only exact and atMost mismatches fail the check.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { figureTables, type FigureTable } from './readme-tables.js';

export type FigureKind = 'exact' | 'atMost' | 'approx' | 'timing';

/** One stated figure: where it is in its table, and which JSON key measures it. */
export interface StatedFigure {
  /** Prefixes of the row's first cells (one string: the first cell), or the row's index in the table. */
  row: string | string[] | number;
  /** Prefix of the column's header. */
  col: string;
  /** The text around the number in that cell, `{}` standing for the number (`**{} passed`). */
  text: string;
  /** Which match of `text` in the cell, when it occurs more than once (default 0, the first). */
  nth?: number;
  /** Key in the section JSON's `figures`. */
  key: string;
  kind: FigureKind;
  /** Multiplies the measurement before comparing (100 for a fraction the README prints as a percentage). */
  scale?: number;
}

/** Relative band of `approx` figures (measured errors move with the fitted approximations). */
export const APPROX_BAND = 0.25;
/** Timings match within this factor either way (another machine, another load). */
export const TIMING_FACTOR = 3;

/** What a section writes: figures/<section>.json. */
export interface SectionFile {
  section: string;
  command: string;
  /** The commands or library calls that measured the figures. */
  ran: string[];
  machine: { cpus: number; cpuModel: string; node: string; memoryGiB: number; loadAverage: number[] };
  date: string;
  commit: string;
  seconds: number;
  figures: Record<string, number | string | boolean | null>;
  details?: unknown;
}

export type Status = 'match' | 'MISMATCH' | 'differs' | 'missing' | 'not in README';

export interface CheckedFigure {
  section: string;
  table: number;
  row: string;
  col: string;
  key: string;
  kind: FigureKind;
  stated?: string;
  measured?: unknown;
  status: Status;
  /** Why it does not match, or how it does. */
  note: string;
}

export interface CheckResult {
  figures: CheckedFigure[];
  /** Sections whose JSON was measured at another commit with changes since in what it runs (stale), with why. */
  stale: { section: string; note: string }[];
  /** Sections in the map without a marked table, and markers naming sections the map does not know. */
  problems: string[];
  /** True when no exact or atMost figure mismatches. */
  ok: boolean;
}

const NUMBER = '([-+]?(?:\\d{1,3}(?:,\\d{3})+|\\d+)(?:\\.\\d+)?(?:e[-+]?\\d+)?)';
const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The number `text` (with `{}` for it) finds in a cell, as written, or null. */
export function statedNumber(cell: string, text: string, nth = 0): string | null {
  const [before, after] = text.split('{}');
  if (after === undefined) throw new Error(`figure text ${JSON.stringify(text)} has no {}`);
  const all = [...cell.matchAll(new RegExp(`${escape(before!)}${NUMBER}${escape(after)}`, 'g'))];
  return all[nth]?.[1] ?? null;
}

/** Significant digits and decimals of a number as written (`1,888` -> 4 / 0, `3.6e-4` -> 2 sig, `0.062` -> 3 decimals). */
function precisionOf(written: string): { decimals?: number; significant?: number } {
  const s = written.replace(/,/g, '').replace(/^[-+]/, '');
  if (/e/i.test(s)) return { significant: s.split(/e/i)[0]!.replace('.', '').replace(/^0+/, '').length };
  return { decimals: s.includes('.') ? s.split('.')[1]!.length : 0 };
}

/** The measurement rounded as the README writes `written`. */
export function roundedLike(measured: number, written: string): number {
  const p = precisionOf(written);
  return p.significant !== undefined ? Number(measured.toPrecision(p.significant)) : Number(measured.toFixed(p.decimals));
}

/** Compares one stated figure with its measurement. */
export function compare(kind: FigureKind, written: string, measured: number): { status: Status; note: string } {
  const stated = Number(written.replace(/,/g, ''));
  const r = roundedLike(measured, written);
  switch (kind) {
    case 'exact':
      return r === stated ? { status: 'match', note: 'equal as rounded' } : { status: 'MISMATCH', note: `measured ${r} (${measured})` };
    case 'atMost':
      return r <= stated ? { status: 'match', note: `${r} <= ${stated}` } : { status: 'MISMATCH', note: `measured ${r} > stated ${stated}` };
    case 'approx': {
      const rel = stated === 0 ? Math.abs(measured) : Math.abs(measured - stated) / Math.abs(stated);
      return rel <= APPROX_BAND ? { status: 'match', note: `within ${(rel * 100).toFixed(0)}%` } : { status: 'differs', note: `measured ${r}, ${(rel * 100).toFixed(0)}% off (band ${APPROX_BAND * 100}%)` };
    }
    case 'timing': {
      const f = measured / stated;
      return f <= TIMING_FACTOR && f >= 1 / TIMING_FACTOR
        ? { status: 'match', note: `x${f.toFixed(2)}` }
        : { status: 'differs', note: `measured ${r}, x${f.toFixed(2)} (band x${TIMING_FACTOR})` };
    }
  }
}

const rowMatches = (cells: string[], row: string | string[]): boolean => (typeof row === 'string' ? [row] : row).every((p, i) => (cells[i] ?? '').startsWith(p));
const rowName = (row: StatedFigure['row']): string => (typeof row === 'number' ? `row ${row + 1}` : typeof row === 'string' ? row : row.join(' / '));

/** Checks README text against the section files in `dir`; `changedSince(commit, section)` says why a file is stale, or null. */
export function checkFigures(
  readme: string,
  map: Record<string, StatedFigure[]>,
  readSection: (section: string) => SectionFile | null,
  changedSince: (file: SectionFile) => string | null = () => null,
): CheckResult {
  const tables = figureTables(readme);
  const out: CheckedFigure[] = [];
  const problems: string[] = [];
  const stale: CheckResult['stale'] = [];
  const marked = new Set(tables.flatMap((t) => t.sections));
  for (const s of marked) if (!(s in map)) problems.push(`a README marker names section ${s}, which the figures map does not have`);
  for (const s of Object.keys(map)) if (!marked.has(s) && map[s]!.length > 0) problems.push(`section ${s} has figures but no README table is marked \`<!-- figures: ${s} -->\``);
  const files = new Map<string, SectionFile | null>();
  for (const [ti, table] of tables.entries()) {
    for (const section of table.sections) {
      if (!files.has(section)) {
        const f = readSection(section);
        files.set(section, f);
        const why = f ? changedSince(f) : null;
        if (why) stale.push({ section, note: why });
      }
      const file = files.get(section)!;
      for (const fig of map[section] ?? []) out.push(checkOne(section, ti, table, fig, file));
    }
  }
  return { figures: out, stale, problems, ok: !out.some((f) => f.status === 'MISMATCH') };
}

function checkOne(section: string, ti: number, table: FigureTable, fig: StatedFigure, file: SectionFile | null): CheckedFigure {
  const base = { section, table: ti, row: rowName(fig.row), col: fig.col, key: fig.key, kind: fig.kind };
  const col = table.header.findIndex((h) => h.startsWith(fig.col));
  const wanted = fig.row;
  const row = typeof wanted === 'number' ? table.rows[wanted] : table.rows.find((r) => rowMatches(r, wanted));
  const written = col >= 0 && row ? statedNumber(row[col] ?? '', fig.text, fig.nth) : null;
  if (written === null) return { ...base, status: 'not in README', note: `no ${JSON.stringify(fig.text)} in row ${JSON.stringify(base.row)}, column ${JSON.stringify(fig.col)} (table at line ${table.line})` };
  if (!file) return { ...base, stated: written, status: 'missing', note: `figures/${section}.json not written yet: npm run figures -- --only ${section}` };
  const v = file.figures[fig.key];
  if (typeof v !== 'number' || !Number.isFinite(v)) return { ...base, stated: written, measured: v, status: 'missing', note: `figures/${section}.json has no number under ${fig.key}` };
  return { ...base, stated: written, measured: v, ...compare(fig.kind, written, v * (fig.scale ?? 1)) };
}

/** Reads figures/<section>.json under `dir`, or null. */
export const sectionReader = (dir: string) => (section: string): SectionFile | null => {
  const file = path.join(dir, `${section}.json`);
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as SectionFile) : null;
};

/** The check as printed: one line per figure, grouped by table. */
export function formatCheck(r: CheckResult): string {
  const lines: string[] = [];
  let table = -1;
  const unmeasured = new Set<string>();
  for (const f of r.figures) {
    if (f.table !== table) lines.push(`table ${f.table + 1}: ${[...new Set(r.figures.filter((x) => x.table === f.table).map((x) => x.section))].join(', ')}`);
    table = f.table;
    // A section never run: one line for all its figures in this table.
    if (f.status === 'missing' && f.measured === undefined && f.note.includes('not written yet')) {
      const key = `${f.table}/${f.section}`;
      if (!unmeasured.has(key)) lines.push(`  ${'missing'.padEnd(13)} ${f.section}: ${r.figures.filter((x) => x.table === f.table && x.section === f.section).length} figures, ${f.note}`);
      unmeasured.add(key);
      continue;
    }
    lines.push(`  ${f.status.padEnd(13)} ${f.row} | ${f.col}: README ${f.stated ?? '?'} vs ${f.key} = ${f.measured === undefined ? '-' : JSON.stringify(f.measured)} [${f.kind}] ${f.note}`);
  }
  for (const s of r.stale) lines.push(`stale: ${s.section}: ${s.note}`);
  for (const p of r.problems) lines.push(`problem: ${p}`);
  const n = (s: Status) => r.figures.filter((f) => f.status === s).length;
  lines.push(`${r.figures.length} stated figures: ${n('match')} match, ${n('MISMATCH')} exact mismatches, ${n('differs')} outside their band, ${n('missing')} not measured, ${n('not in README')} not found in the README; ${r.stale.length} stale sections`);
  return lines.join('\n');
}
