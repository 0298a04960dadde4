// `npm run figures -- --check` (bench/figures/check.ts): a small README with a marked table and section
// JSON in memory. A matching figure passes, a changed exact figure fails the check, bands hold for
// errors and timings, and figures that moved or were never measured are reported, not passed.
import { describe, expect, it } from 'vitest';
import { checkFigures, compare, statedNumber, type SectionFile, type StatedFigure } from '../bench/figures/check.js';
import { figureTables } from '../bench/figures/readme-tables.js';
import { STATED } from '../bench/figures/stated.js';
import { SECTIONS } from '../bench/figures/sections.js';

const README = `# fixture

Some prose with 123 in it that no figure reads.

<!-- figures: demo -->
| run | result | time |
|---|---|---:|
| model X on \`sim\` (N=16384, 1,319 refreshes) | **99.61%** agreement (255/256), max error 0.094, logits within 2.6e-4 \\| fp16 | 3,649 s |
| model Y | 100% (64/64) | 12.5 s |

Produced by \`npm run figures -- --only demo\`.
`;

const MAP: Record<string, StatedFigure[]> = {
  demo: [
    { row: 'model X', col: 'run', text: '(N={},', key: 'ringDegree', kind: 'exact' },
    { row: 'model X', col: 'run', text: ', {} refreshes)', key: 'refreshes', kind: 'exact' },
    { row: 'model X', col: 'result', text: '**{}%**', key: 'agreement', kind: 'exact', scale: 100 },
    { row: 'model X', col: 'result', text: '({}/', key: 'agree', kind: 'exact' },
    { row: 'model X', col: 'result', text: 'max error {},', key: 'maxError', kind: 'approx' },
    { row: 'model X', col: 'result', text: 'logits within {} |', key: 'logits', kind: 'atMost' },
    { row: 'model X', col: 'time', text: '{} s', key: 'seconds', kind: 'timing' },
    { row: 'model Y', col: 'result', text: '({}/', key: 'y.agree', kind: 'exact' },
  ],
};

const measured = { ringDegree: 16384, refreshes: 1319, agreement: 255 / 256, agree: 255, maxError: 0.1, logits: 2.44e-4, seconds: 5000, 'y.agree': 64 };
const file = (figures: SectionFile['figures']): SectionFile => ({
  section: 'demo', command: 'npm run figures -- --only demo', ran: [], date: '2026-12-05T00:00:00Z', commit: 'abc', seconds: 1,
  machine: { cpus: 2, cpuModel: 'test', node: 'v24', memoryGiB: 1, loadAverage: [0, 0, 0] }, figures,
});
const run = (figures: SectionFile['figures'] | null, readme = README) => checkFigures(readme, MAP, () => (figures ? file(figures) : null));
const status = (r: ReturnType<typeof run>, key: string) => r.figures.find((f) => f.key === key)!.status;

describe('figures --check on a fixture README', () => {
  it('the measurements the table states match, each by its kind', () => {
    const r = run(measured);
    expect(r.figures.map((f) => [f.key, f.stated, f.status])).toEqual([
      ['ringDegree', '16384', 'match'],
      ['refreshes', '1,319', 'match'],
      ['agreement', '99.61', 'match'],
      ['agree', '255', 'match'],
      ['maxError', '0.094', 'match'],
      ['logits', '2.6e-4', 'match'],
      ['seconds', '3,649', 'match'],
      ['y.agree', '64', 'match'],
    ]);
    expect(r.ok).toBe(true);
    expect(r.problems).toEqual([]);
  });

  it('a changed exact figure fails the check; a count off by one is a mismatch', () => {
    const r = run({ ...measured, refreshes: 1320 });
    expect(status(r, 'refreshes')).toBe('MISMATCH');
    expect(r.ok).toBe(false);
    const agreement = run({ ...measured, agree: 254, agreement: 254 / 256 });
    expect(status(agreement, 'agreement')).toBe('MISMATCH');
    expect(status(agreement, 'agree')).toBe('MISMATCH');
    expect(agreement.ok).toBe(false);
  });

  it('the README edited to a new figure fails against the old measurement', () => {
    const r = run(measured, README.replace('1,319 refreshes', '1,318 refreshes'));
    expect(r.figures.find((f) => f.key === 'refreshes')).toMatchObject({ stated: '1,318', status: 'MISMATCH' });
    expect(r.ok).toBe(false);
  });

  it('"within" figures fail when exceeded at the README precision; errors and timings move within their bands without failing', () => {
    expect(status(run({ ...measured, logits: 2.64e-4 }), 'logits')).toBe('match'); // 2.6e-4 as printed
    expect(status(run({ ...measured, logits: 2.7e-4 }), 'logits')).toBe('MISMATCH');
    const far = run({ ...measured, maxError: 0.2, seconds: 20000 });
    expect(status(far, 'maxError')).toBe('differs');
    expect(status(far, 'seconds')).toBe('differs');
    expect(far.ok).toBe(true);
  });

  it('a section never run, a key it lacks and a figure the README no longer has are reported', () => {
    const none = run(null);
    expect(none.figures.every((f) => f.status === 'missing')).toBe(true);
    expect(none.ok).toBe(true);
    const { refreshes: _dropped, ...rest } = measured;
    expect(status(run(rest), 'refreshes')).toBe('missing');
    const moved = run(measured, README.replace('model Y', 'model Z'));
    expect(status(moved, 'y.agree')).toBe('not in README');
  });

  it('markers name known sections and are followed by a table', () => {
    expect(run(measured, README.replace('figures: demo', 'figures: demo, other')).problems).toEqual([
      'a README marker names section other, which the figures map does not have',
    ]);
    expect(() => figureTables('<!-- figures: demo -->\n\n## heading\n| a |\n|---|\n')).toThrow(/not followed by a table/);
    expect(figureTables(README)[0]!.rows[0]![1]).toContain('2.6e-4 | fp16'); // an escaped pipe stays in its cell
  });

  it('numbers are read as written and rounded as written', () => {
    expect(statedNumber('**536 passed, 3 expected failures** of 539', 'failures** of {}')).toBe('539');
    expect(statedNumber('mean 0.0085) and 100% on 64 (max 0.050, mean 0.0094)', 'mean {})', 1)).toBe('0.0094');
    expect(compare('exact', '0.050', 0.0504).status).toBe('match');
    expect(compare('exact', '9.2e-3', 0.00921).status).toBe('match');
    expect(compare('exact', '9.2e-3', 0.0096).status).toBe('MISMATCH');
  });
});

describe('the project figures map', () => {
  it('every section with stated figures is a section the driver runs', () => {
    const names = new Set(SECTIONS.map((s) => s.name));
    expect(Object.keys(STATED).filter((s) => !names.has(s))).toEqual([]);
    expect(SECTIONS.filter((s) => s.quick).length).toBeGreaterThan(0);
  });
});
