// The README's figure tables: a table preceded by `<!-- figures: SECTION[, SECTION] -->` (blank lines
// or one caption paragraph between them allowed) holds figures those sections of `npm run figures`
// reproduce. Parsed as markdown tables: header cells, then rows of cells.

export interface FigureTable {
  /** The sections the marker names. */
  sections: string[];
  /** 1-based line of the marker. */
  line: number;
  header: string[];
  rows: string[][];
}

const MARKER = /^<!--\s*figures:\s*([^>]*?)\s*-->\s*$/;

/** Splits a markdown table row into trimmed cells (`\|` stays inside a cell). */
export function tableCells(line: string): string[] {
  const body = line.trim().replace(/^\|/, '').replace(/\|$/, '');
  const cells: string[] = [];
  let cell = '';
  for (let i = 0; i < body.length; i++) {
    if (body[i] === '\\' && body[i + 1] === '|') {
      cell += '|';
      i++;
    } else if (body[i] === '|') {
      cells.push(cell.trim());
      cell = '';
    } else cell += body[i];
  }
  cells.push(cell.trim());
  return cells;
}

const isTableLine = (l: string): boolean => l.trim().startsWith('|');
const isDivider = (l: string): boolean => /^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$/.test(l.trim());

/** Every marked table of a README's text, in order. A marker with no table before the next marker or heading is an error. */
export function figureTables(readme: string): FigureTable[] {
  const lines = readme.split('\n');
  const tables: FigureTable[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = MARKER.exec(lines[i]!.trim());
    if (!m) continue;
    const sections = m[1]!.split(',').map((s) => s.trim()).filter(Boolean);
    let j = i + 1;
    while (j < lines.length && !isTableLine(lines[j]!) && !MARKER.test(lines[j]!.trim()) && !lines[j]!.startsWith('#')) j++;
    if (j >= lines.length || !isTableLine(lines[j]!) || !isDivider(lines[j + 1] ?? '')) {
      throw new Error(`README line ${i + 1}: the figures marker for ${sections.join(', ')} is not followed by a table`);
    }
    const header = tableCells(lines[j]!);
    const rows: string[][] = [];
    for (let k = j + 2; k < lines.length && isTableLine(lines[k]!); k++) rows.push(tableCells(lines[k]!));
    tables.push({ sections, line: i + 1, header, rows });
  }
  return tables;
}
