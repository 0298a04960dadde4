// CKKS parameters of canonical model plans: `fhec compile --calibration` searches ring degree and chain
// length with the cost table (compiler/model-parameters.ts), prints the candidates and writes the
// cheapest; --costs prices with another table, --ring-degree skips the search. The plan the search
// picks is 128-bit secure and still runs on sim with small logit errors. And the choice moves the way
// the refresh price says: dearer refreshes, longer chains and fewer refreshes.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { referenceLogits } from '../compiler/accuracy.js';
import { searchModelParameters } from '../compiler/model-parameters.js';
import { defaultCostTable, type CostTable } from '../ir/ckks/cost-table.js';
import { checkSecurity, topLevel, totalModulusBits } from '../ir/ckks/params.js';
import { isSecure128 } from '../ir/ckks/security.js';
import { FheBuilder, type FheProgram, type FheValue } from '../ir/fhe/index.js';
import { Tensor } from '../ir/tensor.js';
import { replicatedLayout } from '../passes/fhe/layout/packing.js';
import { loadModelPlan, ModelSession } from '../runtime/model-session.js';
import { simBackend } from '../runtime/sim/backend.js';
import { fhecInProcess as fhec } from './helpers/in-process.js';
import { MODELS } from './helpers/shared.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-model-params-'));
const MODEL = path.join(MODELS, 'A_nocache_opset14.onnx');
const CAL = path.join(MODELS, 'calibration.txt');

interface Row {
  chosen: boolean;
  ringDegree: number;
  levels: number;
  bitSizes: number[];
  refreshes?: number;
  rounds?: number;
  ms?: number;
  status: string;
}

/** The priced rows of the candidates table formatCandidates prints. */
function candidateRows(stdout: string): Row[] {
  const rows: Row[] = [];
  for (const line of stdout.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (cells.length < 14 || !/^\d+$/.test(cells[2]!) || !cells[5]!.startsWith('[')) continue;
    rows.push({
      chosen: cells[1] === '*',
      ringDegree: Number(cells[2]),
      levels: Number(cells[4]),
      bitSizes: JSON.parse(cells[5]!.replace(/\s*\(.*$/, '')),
      refreshes: cells[6] ? Number(cells[6]) : undefined,
      rounds: cells[7] ? Number(cells[7]) : undefined,
      ms: cells[11] ? Number(cells[11]) : undefined,
      status: cells[12]!,
    });
  }
  return rows;
}

/** The default table with a slower link to the key holder: every refresh round trip costs `rttMs` more. */
function withRefreshLatency(rttMs: number, ringDegrees?: number[]): CostTable {
  const t = structuredClone(defaultCostTable());
  t.link.rttMs = rttMs;
  if (ringDegrees) t.ringDegrees = t.ringDegrees.filter((r) => ringDegrees.includes(r.ringDegree));
  return t;
}

describe('fhec compile --calibration chooses CKKS parameters by predicted latency', () => {
  it('searches N and the chain on model A (prefill 4), prints the candidates, and the chosen plan is secure and runs on sim', async () => {
    const plan = path.join(dir, 'a4.json');
    const r = await fhec('compile', MODEL, '-o', plan, '--calibration', CAL, '--prefill', '4', '--max-windows', '64');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/parameter search \(the shipped cost table; \d+ chains priced in [\d.]+ s\)/);
    const rows = candidateRows(r.stdout);
    const feasible = rows.filter((x) => x.status === 'ok');
    // Every ring degree of the shipped table but N=8192, several chain lengths each: at N=8192 (at most
    // 218 modulus bits at 128-bit security) no chain leaves a level where a 40-bit refresh mask fits
    // (there is no room for the floor prime), and the table says so.
    expect(new Set(feasible.map((x) => x.ringDegree))).toEqual(new Set([16384, 32768]));
    const at8192 = rows.filter((x) => x.ringDegree === 8192);
    expect(at8192.length).toBeGreaterThan(0);
    for (const x of at8192) expect(x.status).toMatch(/40-bit refresh masks/);
    expect(feasible.filter((x) => x.ringDegree === 16384).length).toBeGreaterThanOrEqual(5);
    const chosen = rows.filter((x) => x.chosen);
    expect(chosen).toHaveLength(1);
    const best = chosen[0]!;
    expect(best.status).toBe('ok');
    expect(best.ms).toBe(Math.min(...feasible.map((x) => x.ms!)));
    const m = /chosen: N=(\d+), (\d+) levels, (\d+) refreshes, predicted ([\d.]+) s/.exec(r.stdout);
    expect(m).not.toBeNull();
    // Each chain is priced with the placement it gets (the optimal one): the plan has the priced
    // refreshes and price, and greedy's count, printed beside it, is never fewer.
    expect([Number(m![1]), Number(m![2])]).toEqual([best.ringDegree, best.levels]);
    const refreshes = Number(m![3]);
    expect(refreshes).toBe(best.refreshes!);
    const greedy = /the greedy placement would need (\d+) refreshes here/.exec(r.stdout);
    expect(greedy).not.toBeNull();
    expect(Number(greedy![1])).toBeGreaterThanOrEqual(refreshes);
    expect(Number(m![4])).toBeCloseTo(best.ms! / 1000, 2);

    // The plan holds that candidate's parameters, within 128-bit security, and its refreshes.
    const mp = loadModelPlan(plan);
    const params = mp.plan.params;
    expect(params.ringDegree).toBe(best.ringDegree);
    expect(params.bitSizes).toEqual(best.bitSizes);
    expect(topLevel(params)).toBe(best.levels);
    expect(Math.log2(params.scale)).toBe(40);
    expect(isSecure128(params.ringDegree, totalModulusBits(params))).toBe(true);
    expect(() => checkSecurity(params)).not.toThrow();
    expect(mp.meta.refreshes).toBe(refreshes);
    expect(mp.plan.program.ops.filter((op) => op.kind === 'refresh')).toHaveLength(refreshes);
    // The floor prime (q_1 = 60 bits): nothing, not even the logits, is computed at level 0 (a rescale
    // into it would divide by that prime), and values refresh at level 1 whatever their bound.
    expect(params.bitSizes[1]).toBe(60);
    const levels = mp.plan.program.ops.filter((op) => op.result?.type.kind === 'ct').map((op) => op.result!.type.level!);
    expect(Math.min(...levels)).toBe(1);
    const refreshedAt = mp.plan.program.ops.filter((op) => op.kind === 'refresh').map((op) => op.args[0]!.type.level!);
    expect(new Set(refreshedAt).has(1)).toBe(true);

    // Still the model: logits on sim (CKKS noise, refreshes, approximations) close to the plaintext ones.
    const tokens = Array.from(fs.readFileSync(path.join(MODELS, 'eval-dev.txt')).subarray(100, 104));
    const out = await new ModelSession(mp, simBackend).run({ input_ids: Tensor.from('int64', [1, 4], tokens) });
    const got = out.outputs['logits']!;
    const ref = referenceLogits(MODEL, tokens);
    expect(got.dims).toEqual([1, 4, 256]);
    let err = 0;
    for (let i = 0; i < got.data.length; i++) err = Math.max(err, Math.abs(got.data[i]! - ref.data[i]!));
    expect(err).toBeLessThan(0.25);
    expect(out.warnings).toEqual([]);
  }, 240000);

  it('--costs prices the search with another table: a slow link to the key holder buys longer chains', async () => {
    const costs = path.join(dir, 'slow-link.json');
    fs.writeFileSync(costs, JSON.stringify(withRefreshLatency(200, [16384])));
    const plan = path.join(dir, 'slow.json');
    const r = await fhec('compile', MODEL, '-o', plan, '--calibration', CAL, '--prefill', '4', '--max-windows', '64', '--costs', costs);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`parameter search (${costs};`);
    const rows = candidateRows(r.stdout).filter((x) => x.status === 'ok');
    expect(new Set(rows.map((x) => x.ringDegree))).toEqual(new Set([16384]));
    const best = rows.find((x) => x.chosen)!;
    const shortest = rows.reduce((a, x) => (x.levels < a.levels ? x : a));
    // With the shipped table's 1 ms link the shortest feasible chain is the cheapest at N=16384 (see the
    // first test's table); 200 ms per round trip makes its refreshes dominate.
    expect(best.levels).toBeGreaterThan(shortest.levels);
    expect(best.refreshes!).toBeLessThan(shortest.refreshes!);
    expect(best.ms).toBe(Math.min(...rows.map((x) => x.ms!)));
    expect(loadModelPlan(plan).plan.params.bitSizes).toEqual(best.bitSizes);
  }, 240000);

  it('--ring-degree fixes N (the longest chain it holds) and skips the search; a bad N is one clear error', async () => {
    const plan = path.join(dir, 'fixed.json');
    const costs = path.join(dir, 'slow-link.json');
    const r = await fhec('compile', MODEL, '-o', plan, '--calibration', CAL, '--prefill', '4', '--max-windows', '16', '--ring-degree', '16384', '--costs', costs);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(/parameter search/);
    expect(r.stdout).toMatch(new RegExp(`ring degree fixed at N=16384: the longest chain it holds, \\d+ refreshes, predicted [\\d.]+ s \\(${costs.replace(/[.]/g, '\\.')}\\)`));
    const params = loadModelPlan(plan).plan.params;
    expect(params.ringDegree).toBe(16384);
    // The floor prime (60 bits) in place of the second: still 7 levels within the 438 bits.
    expect(params.bitSizes).toEqual([60, 60, 40, 40, 40, 40, 40, 40, 60]);
    const bad = await fhec('compile', MODEL, '-o', path.join(dir, 'never.json'), '--calibration', CAL, '--prefill', '4', '--ring-degree', '1000');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--ring-degree must be one of .*16384.*got 1000/);
    expect(fs.existsSync(path.join(dir, 'never.json'))).toBe(false);
  }, 240000);
});

/** A deep chain (x -> x^2 rotated, plus a residual) with 1024 values at any N. */
function chain(depth: number) {
  return (slots: number): { program: FheProgram } => {
    const b = new FheBuilder(`chain${depth}`, slots);
    const layout = replicatedLayout(1024, slots);
    let v: FheValue = b.input('x', layout);
    for (let i = 0; i < depth; i++) v = b.add(b.rotate(b.mul(v, v), 1 << (i % 8)), v);
    b.output('y', v, layout);
    return { program: b.build() };
  };
}

describe('model parameter search (unit)', () => {
  it('dearer refreshes never buy more of them: the chosen refresh count falls and the chain grows as the round trip slows', () => {
    const choices = [0, 1, 10, 100, 1000].map((rtt) => {
      const s = searchModelParameters(chain(14), { costs: withRefreshLatency(rtt) });
      return { rtt, ringDegree: s.params.ringDegree, levels: s.candidate.levels, refreshes: s.refreshes, ms: s.candidate.latencyMs! };
    });
    console.log(choices);
    for (let i = 1; i < choices.length; i++) {
      // latency = (ops) + rtt x refreshes: the minimiser's refresh count cannot grow with rtt.
      expect(choices[i]!.refreshes).toBeLessThanOrEqual(choices[i - 1]!.refreshes);
    }
    const cheap = choices[0]!;
    const dear = choices[choices.length - 1]!;
    expect(dear.refreshes).toBeLessThan(cheap.refreshes);
    expect(dear.levels).toBeGreaterThan(cheap.levels);
  });

  it('lowers once per slot count, and the chosen program is the managed placement of the chosen chain', () => {
    const calls: number[] = [];
    const build = chain(10);
    const s = searchModelParameters(
      (slots) => {
        calls.push(slots);
        return build(slots);
      },
      { costs: defaultCostTable() },
    );
    expect(calls.sort((a, b) => a - b)).toEqual([4096, 8192, 16384]);
    expect(s.managed.chain!.ringDegree).toBe(s.params.ringDegree);
    expect(s.managed.chain!.primes.length).toBe(s.candidate.levels + 1);
    expect(s.managed.ops.filter((op) => op.kind === 'refresh')).toHaveLength(s.refreshes);
    expect(s.placed.chain).toBeUndefined();
    // Every feasible candidate costs at least the chosen one.
    for (const c of s.search.candidates.filter((x) => x.feasible)) expect(c.latencyMs!).toBeGreaterThanOrEqual(s.candidate.latencyMs!);
  });
});
