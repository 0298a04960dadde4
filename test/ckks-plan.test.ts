import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FhecError } from '../ir/errors.js';
import { FheBuilder, printFhe } from '../ir/fhe/index.js';
import { manageScales } from '../passes/fhe/manage/manage-scales.js';
import { lowerMatVec } from '../passes/fhe/layout/matvec.js';
import { replicatedLayout } from '../passes/fhe/layout/packing.js';
import { runProgram } from '../runtime/ckks/execute.js';
import { fheChain, makeParameters, selectParameters } from '../ir/ckks/params.js';
import { loadPlan, planFromJson, writePlan } from '../runtime/plan/plan.js';
import { simBackend } from '../runtime/sim/backend.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-plan-'));
const params = selectParameters({ depth: 1 });
const slots = params.ringDegree / 2;

function linearPlan(file: string) {
  const b = new FheBuilder('lin', slots);
  const layout = replicatedLayout(8, slots);
  const x = b.input('x', layout);
  const w = Array.from({ length: 64 }, (_, i) => ((i * 7) % 11) / 10 - 0.5);
  const res = lowerMatVec(b, { rows: 8, cols: 8, at: (r, c) => w[r * 8 + c]! }, [{ value: x, layout, colStart: 0 }]);
  b.output('y', res.outputs[0]!.value, res.outputs[0]!.layout);
  const program = manageScales(b.build(), { chain: fheChain(params), topScale: params.scale });
  writePlan(file, program, params);
  return { program, w };
}

function rewrite(file: string, edit: (j: Record<string, any>) => void): string {
  const j = JSON.parse(fs.readFileSync(file, 'utf8'));
  edit(j);
  const out = path.join(dir, `edited-${Math.random().toString(36).slice(2)}.json`);
  fs.writeFileSync(out, JSON.stringify(j));
  fs.copyFileSync(file.replace(/\.json$/, '.weights.bin'), path.join(dir, j.weights?.file ?? 'none.bin'));
  return out;
}

describe('plan files', () => {
  const file = path.join(dir, 'lin.json');
  const { program, w } = linearPlan(file);

  it('round-trips: same program, weights from the sidecar, same results', async () => {
    const plan = loadPlan(file);
    expect(printFhe(plan.program)).toBe(printFhe(program));
    expect(fs.statSync(file.replace(/\.json$/, '.weights.bin')).size).toBeGreaterThan(0);
    expect(plan.warning).toBeUndefined();
    const x = [1, -1, 0.5, 0.25, 0, 2, -0.5, 1];
    const r = await runProgram(plan.program, plan.params, simBackend, { x });
    const y = r.outputs.get('y')!.values;
    for (let i = 0; i < 8; i++) {
      let s = 0;
      for (let j = 0; j < 8; j++) s += w[i * 8 + j]! * x[j]!;
      expect(y[i]).toBeCloseTo(s, 6);
    }
  });

  const bad: [string, (j: Record<string, any>) => void, RegExp][] = [
    ['a wrong schema', (j) => delete j.keys, /malformed plan: keys/],
    ['a wrong field type', (j) => (j.params.ringDegree = '8192'), /malformed plan: params.ringDegree/],
    ['an unknown version', (j) => (j.version = 99), /unknown plan version 99/],
    ['insecure parameters without the flag', (j) => {
      j.params.ringDegree = 4096;
    }, /128-bit security/],
    ['edited primes', (j) => (j.params.primes[1] = '1099511627791'), /primes do not match/],
    ['a truncated weights file', (j) => (j.weights.byteLength += 8), /weights file \S+ has \d+ bytes, expected \d+/],
    ['a program for another chain', (j) => (j.program = j.program.replace(/primes=\[(\d+), /, 'primes=[$1, 1099511922689, ')), /another modulus chain|declared type|level/],
    ['a broken program', (j) => (j.program = j.program.replace('rescale', 'rescale_please')), /unknown FHE op/],
  ];
  for (const [what, edit, msg] of bad) {
    it(`rejects ${what} with a clear FhecError`, () => {
      const f = rewrite(file, edit);
      let err: unknown;
      try {
        loadPlan(f);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(FhecError);
      expect((err as FhecError).message).toMatch(msg);
      expect((err as FhecError).where.file).toBe(f);
    });
  }

  it('rejects files that are not JSON or do not exist', () => {
    const f = path.join(dir, 'junk.json');
    fs.writeFileSync(f, '{ nope');
    expect(() => loadPlan(f)).toThrow(/not valid JSON/);
    expect(() => loadPlan(path.join(dir, 'missing.json'))).toThrow(/cannot read plan/);
  });

  it('accepts insecure parameters with the flag, with a loud warning', () => {
    const p = makeParameters({ ringDegree: 4096, bitSizes: [60, 40, 60], insecure: true });
    const b = new FheBuilder('neg', 2048);
    const layout = replicatedLayout(4, 2048);
    b.output('y', b.negate(b.input('x', layout)), layout);
    const prog = manageScales(b.build(), { chain: fheChain(p), topScale: p.scale });
    const f = path.join(dir, 'insecure.json');
    writePlan(f, prog, p);
    const plan = loadPlan(f);
    expect(plan.params.insecure).toBe(true);
    expect(plan.warning).toMatch(/INSECURE/);
    expect(() => planFromJson({ ...JSON.parse(fs.readFileSync(f, 'utf8')), params: { ...JSON.parse(fs.readFileSync(f, 'utf8')).params, insecure: false } }, f, () => new Uint8Array())).toThrow(/128-bit/);
  });
});
