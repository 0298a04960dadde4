// `fhec opt FILE.fhe --pipeline '...' [-o OUT.fhe]`: runs FHE passes on textual IR; its output (and
// what --print-after prints) is valid input again; bad IR exits 2 naming the file and line.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseFhe } from '../ir/fhe/parse.js';
import { fhecInProcess } from './helpers/in-process.js';
import { ROOT } from './helpers/shared.js';

const CASE = path.join(ROOT, 'test', 'golden', 'fhe-passes', 'place-refresh', 'optimal-fanout.fhe');

describe('fhec opt', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-opt-'));

  it('runs a pipeline, writes the result with -o, and the result reads back', async () => {
    const out = path.join(dir, 'out.fhe');
    const r = await fhecInProcess('opt', CASE, '--pipeline', 'place-refresh{strategy=optimal,levels=2},analyze-depth', '-o', out, '--timing');
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^place-refresh\s+[\d.]+ ms\s+refreshes=1 greedy=2 levels=2/m);
    const text = fs.readFileSync(out, 'utf8');
    expect(text).toContain('attr mgmt.refreshes = 1');
    expect(text).toContain('attr mgmt.depth = 2');
    // The output is input: a second run reads the annotation (no levels option) and places nothing new.
    const again = await fhecInProcess('opt', out, '--pipeline', 'place-refresh');
    expect(again.status).toBe(0);
    expect(parseFhe(again.stdout).ops.filter((op) => op.kind === 'refresh')).toHaveLength(1);
  });

  it('--print-after prints IR that parses', async () => {
    const r = await fhecInProcess('opt', CASE, '--pipeline', 'place-refresh{levels=2},verify', '--print-after', 'place-refresh');
    expect(r.status).toBe(0);
    const [header, ...rest] = r.stderr.split('\n');
    expect(header).toBe('// -----// IR after place-refresh //----- //');
    expect(parseFhe(rest.join('\n')).ops.filter((op) => op.kind === 'refresh')).toHaveLength(1);
  });

  it('bad IR exits 2 naming the file and line; so do an unknown pass and a failing pass', async () => {
    const bad = path.join(dir, 'bad.fhe');
    fs.writeFileSync(bad, 'fhe.program @p slots=8 {\n  %x = input "x" layout(4, 1, 8, 4, 2) : ct<?>\n  %y = mul %x, %z : ct<?>\n}\n');
    const r = await fhecInProcess('opt', bad, '--pipeline', 'verify');
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(`fhec: error: ${bad}: line 3: %z is used before it is defined\n`);
    const unknown = await fhecInProcess('opt', CASE, '--pipeline', 'no-such-pass');
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain("unknown pass 'no-such-pass'");
    const missing = await fhecInProcess('opt', path.join(dir, 'missing.fhe'), '--pipeline', 'verify', '-o', CASE);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('missing.fhe: file not found');
    const onto = await fhecInProcess('opt', CASE, '--pipeline', 'verify', '-o', CASE);
    expect(onto.status).toBe(2);
    expect(onto.stderr).toContain('the output would overwrite the input');
    const failing = await fhecInProcess('opt', CASE, '--pipeline', 'manage-scales');
    expect(failing.status).toBe(2);
    expect(failing.stderr).toContain(`${CASE}: manage-scales needs CKKS parameters`);
  });

  it('--list names every FHE pass', async () => {
    const r = await fhecInProcess('opt', '--list');
    for (const p of ['lower-canonical', 'approximate', 'select-parameters', 'place-refresh', 'manage-scales', 'verify', 'budget-precision']) expect(r.stdout).toContain(`${p}: `);
  });
});
