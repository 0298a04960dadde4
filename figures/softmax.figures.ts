// Section `softmax` (README "Encrypted transformer kernels", the table of softmax methods on model A's
// layer 1 on sim): runs the test that measures it, `npx vitest run test/fhe-lower-attention.test.ts -t
// 'softmax methods compared'`, and reads the markdown table it prints (one row per step and method).
import { execFileSync } from 'node:child_process';
import { it } from 'vitest';
import { tableCells } from '../bench/figures/readme-tables.js';
import { ROOT } from '../test/helpers/shared.js';
import { writeSection } from './record.js';

const COMMAND = ['vitest', 'run', 'test/fhe-lower-attention.test.ts', '-t', 'softmax methods compared'];

it('softmax: normalize-and-square vs shifted on model A layer 1 (sim)', () => {
  const t0 = performance.now();
  const out = execFileSync('npx', COMMAND, { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20, env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1' } });
  const lines = out.split('\n').map((l) => l.trim());
  const head = lines.findIndex((l) => l.startsWith('| step | method |'));
  if (head < 0) throw new Error(`the test printed no softmax table:\n${out.slice(-2000)}`);
  const header = tableCells(lines[head]!);
  const figures: Record<string, number> = {};
  const col = (name: string) => header.indexOf(name);
  for (const l of lines.slice(head + 2)) {
    if (!l.startsWith('|')) break;
    const c = tableCells(l);
    const step = c[0]!.startsWith('decode') ? 'decode' : 'prefill';
    const method = c[1]!.split(' ')[0]!;
    const key = `${step}.${method}`;
    figures[`${key}.depth`] = Number(c[col('circuit depth')]);
    figures[`${key}.ctMuls`] = Number(c[col('ct x ct')]);
    figures[`${key}.ptMuls`] = Number(c[col('pt muls')]);
    figures[`${key}.rotations`] = Number(c[col('rotations')]);
    figures[`${key}.maxError`] = Number(c[col('max error')]);
    figures[`${key}.bound`] = Number(c[col('bound')]);
    const k = /k=(\d+)/.exec(c[1]!);
    if (k) figures[`${key}.squarings`] = Number(k[1]);
  }
  writeSection('softmax', t0, [`npx ${COMMAND.map((a) => (a.includes(' ') ? `'${a}'` : a)).join(' ')}`], figures);
});
