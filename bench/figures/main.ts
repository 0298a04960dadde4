// `npm run figures [-- --only A,B | --quick | --list | --check]`: reruns the README's figures, one
// section per README table (bench/figures/sections.ts), each writing figures/<section>.json; `--check`
// compares the README's marked tables with those files (bench/figures/check.ts, bench/figures/stated.ts).
// Sections run one after another, each in its own vitest process (figures/vitest.config.ts).

import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkFigures, formatCheck, sectionReader, type SectionFile } from './check.js';
import { SECTIONS, sectionNamed, type Section } from './sections.js';
import { STATED } from './stated.js';

const USAGE = `usage: npm run figures -- [--only SECTION[,SECTION]] [--quick] [--list] [--check] [--readme FILE]
  (no flag)   run every section (${SECTIONS.reduce((s, x) => s + x.minutes, 0)} min on 2 shared cores), then check
  --only      run these sections, then check
  --quick     run the simulator and compile-only sections (${SECTIONS.filter((s) => s.quick).reduce((s, x) => s + x.minutes, 0)} min), then check
  --list      list the sections with their expected duration
  --check     only compare README.md's marked tables with figures/*.json (exit 1 on an exact mismatch)`;

function args(argv: string[]): { only?: string[]; quick: boolean; list: boolean; check: boolean; readme: string } {
  const out = { quick: false, list: false, check: false, readme: 'README.md' } as ReturnType<typeof args>;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--only') out.only = (argv[++i] ?? '').split(',').filter(Boolean);
    else if (a.startsWith('--only=')) out.only = a.slice(7).split(',').filter(Boolean);
    else if (a === '--quick') out.quick = true;
    else if (a === '--list') out.list = true;
    else if (a === '--check') out.check = true;
    else if (a === '--readme') out.readme = argv[++i] ?? '';
    else {
      console.error(`fhec figures: unknown argument ${a}\n${USAGE}`);
      process.exit(2);
    }
  }
  for (const s of out.only ?? []) {
    if (!sectionNamed(s)) {
      console.error(`fhec figures: no section ${s}; sections: ${SECTIONS.map((x) => x.name).join(', ')}`);
      process.exit(2);
    }
  }
  return out;
}

/** Why a section file is stale: measured at another commit, with changes since in the product code (compiler, passes, runtime, ir, models). */
function staleness(f: SectionFile): string | null {
  const commit = f.commit.replace(/\+changes$/, '');
  const dirty = f.commit.endsWith('+changes') ? ' (with uncommitted changes)' : '';
  const paths = ['compiler', 'passes', 'runtime', 'ir', 'models'];
  try {
    const changed = execFileSync('git', ['diff', '--name-only', commit, 'HEAD', '--', ...paths], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split('\n')
      .filter(Boolean);
    return changed.length ? `measured at ${commit.slice(0, 10)}${dirty}; ${changed.length} files it may depend on changed since (${changed.slice(0, 3).join(', ')}${changed.length > 3 ? ', ...' : ''})` : null;
  } catch {
    return `measured at ${commit.slice(0, 10)}${dirty}, which this clone does not have`;
  }
}

function runSection(s: Section): boolean {
  console.log(`\n== ${s.name}: ${s.table} (~${s.minutes} min)`);
  const t0 = performance.now();
  const r = spawnSync('npx', ['vitest', 'run', '--config', 'figures/vitest.config.ts', `figures/${s.file}.figures.ts`], { stdio: 'inherit' });
  console.log(`== ${s.name}: ${r.status === 0 ? 'done' : 'FAILED'} in ${((performance.now() - t0) / 60000).toFixed(1)} min`);
  return r.status === 0;
}

const opts = args(process.argv.slice(2));
if (opts.list) {
  for (const s of SECTIONS) console.log(`${s.name.padEnd(18)} ${`~${s.minutes} min`.padStart(9)}  ${s.quick ? 'quick' : '     '}  ${s.table}`);
  process.exit(0);
}
const failed: string[] = [];
if (!opts.check) {
  const chosen = opts.only ? SECTIONS.filter((s) => opts.only!.includes(s.name)) : opts.quick ? SECTIONS.filter((s) => s.quick) : SECTIONS;
  for (const s of chosen) if (!runSection(s)) failed.push(s.name);
}
const result = checkFigures(fs.readFileSync(opts.readme, 'utf8'), STATED, sectionReader(path.resolve('figures')), staleness);
console.log(`\n${formatCheck(result)}`);
if (failed.length) console.log(`sections that failed to run: ${failed.join(', ')}`);
process.exit(result.ok && failed.length === 0 ? 0 : 1);
