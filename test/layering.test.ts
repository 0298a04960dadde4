// The design card's import direction: compiler/ uses passes/, runtime/, service/ and ir/; passes/ use
// ir/ (and the reference interpreter, for calibration and folding); runtime/ uses ir/; service/ (the
// network server, client library and browser page) uses runtime/ and ir/, and only compiler/ (the CLI
// commands) imports it; ir/ imports none of them; nothing imports compiler/. Checked on the sources,
// import by import.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers/shared.js';

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(rel));
    else if (/\.ts$/.test(e.name) && !/\.d\.ts$/.test(e.name)) out.push(rel);
  }
  return out;
}

/** Project-relative targets of a file's relative imports (static and dynamic). */
function importsOf(file: string): string[] {
  const src = fs.readFileSync(path.join(ROOT, file), 'utf8');
  const out: string[] = [];
  for (const m of src.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)) out.push(path.normalize(path.join(path.dirname(file), m[1]!)));
  return out;
}

const layer = (p: string) => p.split(path.sep)[0]!;

const allowed: Record<string, (target: string) => boolean> = {
  ir: (t) => layer(t) === 'ir',
  passes: (t) => ['ir', 'passes'].includes(layer(t)) || t.startsWith(path.join('runtime', 'reference') + path.sep),
  runtime: (t) => ['ir', 'runtime'].includes(layer(t)),
  service: (t) => ['ir', 'runtime', 'service'].includes(layer(t)),
  compiler: (t) => ['ir', 'passes', 'runtime', 'service', 'compiler'].includes(layer(t)),
};

describe('import direction between layers', () => {
  for (const dir of Object.keys(allowed)) {
    it(`${dir}/ imports only what it may`, () => {
      const files = sources(dir);
      expect(files.length).toBeGreaterThan(3);
      const bad: string[] = [];
      for (const f of files) for (const t of importsOf(f)) if (!allowed[dir]!(t)) bad.push(`${f} -> ${t}`);
      expect(bad).toEqual([]);
    });
  }
});
