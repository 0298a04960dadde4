// Writes test/durations.json (seconds per test file) from vitest's results cache of the last full run
// (node_modules/.vite/vitest/*/results.json): vitest.config.ts starts the slowest files first, so the two
// cores are not left with one long file at the end of a fresh clone's run (which has no cache).
// Run after a full `npm test`: `node tools/test-durations.mjs [CACHE_DIR]`.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const base = process.argv[2] ?? 'node_modules/.vite/vitest';
const dirs = existsSync(base) ? readdirSync(base).map((d) => join(base, d, 'results.json')).filter((f) => existsSync(f)) : [];
if (dirs.length === 0) throw new Error(`no vitest results cache under ${base}: run npm test first`);
const out = {};
for (const f of dirs) {
  for (const [key, r] of JSON.parse(readFileSync(f, 'utf8')).results) {
    const file = key.replace(/^[^:]*:/, '');
    if (/^test\/.*\.test\.ts$/.test(file) && r.duration > 0) out[file] = Math.max(out[file] ?? 0, Math.round(r.duration / 100) / 10);
  }
}
const sorted = Object.fromEntries(Object.entries(out).sort((a, b) => b[1] - a[1]));
writeFileSync('test/durations.json', `${JSON.stringify(sorted, null, 1)}\n`);
console.log(`test/durations.json: ${Object.keys(sorted).length} files`);
