// README stays true: its op table lists exactly what the interpreter supports, and it names every CLI verb.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../compiler/cli.js';
import { supportedOps } from '../runtime/reference/registry.js';
import { ROOT } from './helpers/shared.js';

const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');

describe('README', () => {
  it('lists every supported op in its table, per domain, with the right counts', () => {
    for (const domain of ['ai.onnx', 'com.microsoft']) {
      const ops = supportedOps().filter((o) => (o.domain || 'ai.onnx') === domain);
      const row = readme.split('\n').find((l) => l.startsWith(`| \`${domain}\` (`));
      expect(row, domain).toBeDefined();
      expect(row).toContain(`(${ops.length})`);
      for (const { op } of ops) expect(row, `${domain}::${op}`).toMatch(new RegExp(`[|,] ${op}\\b`));
    }
  });

  it('documents every CLI verb', () => {
    for (const cmd of buildProgram().commands) expect(readme, cmd.name()).toContain(`fhec ${cmd.name()}`);
  });
});
