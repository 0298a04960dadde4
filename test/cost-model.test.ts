// The cost model: the cost table's schema and lookups, the latency predicted from a freshly measured
// quick table against the measured seal time of a program, and the parameter search (smaller N when the
// depth allows, 128-bit security always, precision and refresh planners taken into account).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCalibrateCosts } from '../compiler/commands/calibrate-costs.js';
import { FhecError } from '../ir/errors.js';
import { FheBuilder, type FheProgram, type FheValue } from '../ir/fhe/index.js';
import { manageScales } from '../passes/fhe/manage/manage-scales.js';
import { lowerMatVec } from '../passes/fhe/layout/matvec.js';
import { replicatedLayout } from '../passes/fhe/layout/packing.js';
import { formatCandidates, programKeys, searchParameters, type RefreshPlanner } from '../passes/fhe/parameters/parameter-search.js';
import { predictProgramLatency } from '../passes/fhe/parameters/program-latency.js';
import { analyzePrecision, magnitudeBoundsFromPlain } from '../passes/fhe/analysis/precision.js';
import { formatLatency, predictLatency } from '../passes/fhe/analysis/predict-latency.js';
import {
  ciphertextBytes,
  defaultCostTable,
  loadCostTable,
  opCost,
  parseCostTable,
  refreshRoundTrip,
  valueAtLevel,
  type CostTable,
} from '../ir/ckks/cost-table.js';
import { encryptInputs, executeProgram, keyRequestFor } from '../runtime/ckks/execute.js';
import { clockMs } from '../runtime/ckks/measure-costs.js';
import { checkSecurity, fheChain, selectParameters } from '../ir/ckks/params.js';
import { maxModulusBits } from '../ir/ckks/security.js';
import { sealBackend } from '../runtime/seal/backend.js';
import { fhec } from './helpers/cli.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-costs-'));

function expectFhecError(f: () => unknown, ...mentions: (string | RegExp)[]): FhecError {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(FhecError);
  const text = (err as FhecError).format();
  for (const m of mentions) expect(text).toMatch(m);
  return err as FhecError;
}

describe('cost table', () => {
  it('the shipped default table loads, covers N=8192..32768, and says where it was measured', () => {
    const t = defaultCostTable();
    expect(t.ringDegrees.map((r) => r.ringDegree)).toEqual([8192, 16384, 32768]);
    expect(t.provenance.nodeSeal).toBe('7.0.0');
    expect(t.provenance.machine.length).toBeGreaterThan(5);
    expect(Date.parse(t.provenance.date)).toBeGreaterThan(Date.parse('2025-01-01'));
    // Physical sanity: a rotation costs more at higher N and higher levels, an add far less than a rotation.
    for (const n of [8192, 16384, 32768]) {
      expect(opCost(t, 'rotate', n, 3)).toBeGreaterThan(opCost(t, 'rotate', n, 0));
      expect(opCost(t, 'add', n, 1)).toBeLessThan(opCost(t, 'rotate', n, 1) / 10);
      // Serialized size: two polynomials of (level + 1) primes of N 8-byte words, plus a small header.
      expect(ciphertextBytes(t, n, 2) - 2 * 3 * n * 8).toBeGreaterThan(0);
      expect(ciphertextBytes(t, n, 2) - 2 * 3 * n * 8).toBeLessThan(200);
    }
    expect(opCost(t, 'rotate', 16384, 2)).toBeGreaterThan(2 * opCost(t, 'rotate', 8192, 2));
    expect(opCost(t, 'rotate', 32768, 2)).toBeGreaterThan(2 * opCost(t, 'rotate', 16384, 2));
  });

  it('rejects malformed tables with the field that is wrong', () => {
    const good = JSON.parse(JSON.stringify(defaultCostTable())) as CostTable;
    expect(parseCostTable(good)).toEqual(good);
    expectFhecError(() => parseCostTable({ ...good, format: 'other' }), /format/, /not a valid cost table/);
    expectFhecError(() => parseCostTable({ ...good, link: { rttMs: -1, bytesPerMs: 1 } }), /link\.rttMs/);
    const badLevel = structuredClone(good);
    (badLevel.ringDegrees[0]!.ops.rotate as Record<string, number>)['top'] = 3;
    expectFhecError(() => parseCostTable(badLevel), /ringDegrees\.0\.ops\.rotate\.top/, /bad key 'top': level keys must be non-negative integers/);
    const negative = structuredClone(good);
    negative.ringDegrees[0]!.ops.add!['0'] = -0.5;
    expectFhecError(() => parseCostTable(negative), /ringDegrees\.0\.ops\.add\.0/);
    const noRotate = structuredClone(good);
    delete noRotate.ringDegrees[1]!.ops.rotate;
    expectFhecError(() => parseCostTable(noRotate), /no timings for rotate at N=16384/);
    const twice = structuredClone(good);
    twice.ringDegrees.push(structuredClone(twice.ringDegrees[0]!));
    expectFhecError(() => parseCostTable(twice), /ring degree 8192 appears twice/);
    expectFhecError(() => parseCostTable({ ...good, ringDegrees: [{ ...good.ringDegrees[0], ringDegree: 1000 }] }), /power of two/);
    // Files: missing, not JSON, malformed -- each names the file.
    expectFhecError(() => loadCostTable(path.join(tmp, 'missing.json')), /missing\.json/, /not found/);
    fs.writeFileSync(path.join(tmp, 'broken.json'), '{"format": ');
    expectFhecError(() => loadCostTable(path.join(tmp, 'broken.json')), /broken\.json/, /not JSON/);
    fs.writeFileSync(path.join(tmp, 'wrong.json'), JSON.stringify({ ...good, version: 2 }));
    expectFhecError(() => loadCostTable(path.join(tmp, 'wrong.json')), /wrong\.json: version/);
    // Asking for a ring degree it does not have says so.
    expectFhecError(() => opCost(good, 'rotate', 4096, 0), /no timings for N=4096/, /calibrate-costs/);
  });

  it('interpolates between measured levels and extrapolates key switching quadratically', () => {
    const ks = (k: number) => 0.5 + 0.1 * k * (k + 1);
    const byLevel = Object.fromEntries([0, 2, 4, 6].map((l) => [String(l), ks(l + 1)]));
    expect(valueAtLevel(byLevel, 4, true)).toBe(ks(5));
    expect(valueAtLevel(byLevel, 3, true)).toBeCloseTo((ks(3) + ks(5)) / 2, 12);
    expect(valueAtLevel(byLevel, 12, true)).toBeCloseTo(ks(13), 9);
    const lin = Object.fromEntries([0, 3].map((l) => [String(l), 0.2 * (l + 1)]));
    expect(valueAtLevel(lin, 9)).toBeCloseTo(2, 12);
  });

  it('prices a refresh round trip from its parts', () => {
    const t = defaultCostTable();
    const rt = refreshRoundTrip(t, 16384, 0, 7);
    expect(rt.bytes).toBe(ciphertextBytes(t, 16384, 0) + ciphertextBytes(t, 16384, 7));
    // The round-trip time is paid per refresh round (predictLatency), not per refresh.
    expect(rt.linkMs).toBeCloseTo(rt.bytes / t.link.bytesPerMs, 9);
    // Every step of the protocol: the mask into NTT form and added, the re-randomizing encryption of
    // zero made at the refresh's level (a chain whose top is that level), serialized; the key holder's
    // load, decrypt, inverse transform, encryption at the new level, serialization; the unmask.
    const c = (op: Parameters<typeof opCost>[1], l: number, top = 7) => opCost(t, op, 16384, l, top);
    expect(rt.evaluatorMs).toBeCloseTo(c('encode', 0, 0) + c('add_plain', 0) + c('encrypt', 0, 0) + c('add', 0) + c('save', 0), 9);
    expect(rt.clientMs).toBeCloseTo(c('load', 0) + c('decrypt', 0) + c('encode', 0, 0) + c('encrypt', 7) + c('save', 7), 9);
    expect(rt.unmaskMs).toBeCloseTo(c('load', 7) + c('encode', 7, 7) + c('add_plain', 7), 9);
    expect(rt.totalMs).toBeCloseTo(rt.evaluatorMs + rt.clientMs + rt.linkMs + rt.unmaskMs, 9);
    // The re-randomizing encryption is priced at the refresh's level: cheaper lower down.
    expect(refreshRoundTrip(t, 16384, 1, 7).evaluatorMs).toBeGreaterThan(rt.evaluatorMs);
  });
});

/** A layer-shaped program: a 64 x 64 linear map, then y * y plus a rotation of y (depth 2). */
function layer(slots: number): FheProgram {
  const b = new FheBuilder('layer', slots);
  const layout = replicatedLayout(64, slots);
  const x = b.input('x', layout);
  const mat = { rows: 64, cols: 64, at: (r: number, c: number) => Math.sin(r * 64 + c) / 8 };
  const y = lowerMatVec(b, mat, [{ value: x, layout, colStart: 0 }]).outputs[0]!.value;
  b.output('y', b.add(b.mul(y, y), b.rotate(y, 1)), layout);
  return b.build();
}

/** x^(2^depth) by repeated squaring, with a rotation after every step; x has 1024 values at any N. */
function squarings(depth: number) {
  return (slots: number): FheProgram => {
    const b = new FheBuilder(`square${depth}`, slots);
    const layout = replicatedLayout(1024, slots);
    let v: FheValue = b.input('x', layout);
    for (let i = 0; i < depth; i++) v = b.rotate(b.mul(v, v), 1 << i);
    b.output('y', v, layout);
    return b.build();
  };
}

describe('fhec calibrate-costs', () => {
  it('is a CLI verb; bad ring degrees are one clear error line', () => {
    expect(fhec('--help').stdout).toMatch(/^\s+calibrate-costs\b/m);
    const r = fhec('calibrate-costs', '--ring-degrees', '8192,1000', '-o', path.join(tmp, 'never.json'));
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/--ring-degrees: cannot calibrate N=1000/);
    expect(fs.existsSync(path.join(tmp, 'never.json'))).toBe(false);
  });
});

describe('latency prediction', () => {
  // How close predictions come to measured time is a benchmark figure (`npm run bench`), not a test:
  // here only that a freshly measured table drives the prediction of every op of a program.
  it('a freshly measured quick table prices every op of a program at N=8192', async () => {
    const file = path.join(tmp, 'quick.json');
    await runCalibrateCosts({ quick: true, output: file });
    const table = loadCostTable(file);
    expect(table.provenance.quick).toBe(true);
    expect(table.ringDegrees.map((r) => r.ringDegree)).toEqual([8192]);
    const params = selectParameters({ depth: 2 });
    const program = manageScales(layer(params.ringDegree / 2), { chain: fheChain(params), topScale: params.scale });
    const predicted = predictLatency(program, table);
    expect(predicted.byKind.get('rotate')!.count).toBe(program.ops.filter((o) => o.kind === 'rotate').length);
    expect(predicted.totalMs).toBeGreaterThan(0);
    const summed = [...predicted.byKind.values()].reduce((t, k) => t + k.ms, 0);
    expect(predicted.totalMs).toBeCloseTo(summed, 6);
  });

  it('counts composed rotations once per key switch and refreshes as round trips', () => {
    const t = defaultCostTable();
    const params = selectParameters({ depth: 2 });
    const program = manageScales(layer(params.ringDegree / 2), { chain: fheChain(params), topScale: params.scale });
    const plain = predictLatency(program, t);
    const composed = predictLatency(program, t, { rotationKeySteps: (s) => [s, s] });
    expect(composed.byKind.get('rotate')!.ms).toBeCloseTo(2 * plain.byKind.get('rotate')!.ms, 9);
    const refreshed = predictLatency(program, t, { extraRefreshes: 3 });
    expect(refreshed.refreshes).toBe(3);
    expect(refreshed.totalMs - plain.totalMs).toBeCloseTo(3 * refreshRoundTrip(t, 8192, 0, 2).totalMs, 6);
  });
});

describe('critical path', () => {
  const t = defaultCostTable();
  const params = selectParameters({ depth: 2 });
  const slots = params.ringDegree / 2;
  const layout = replicatedLayout(64, slots);
  const managed = (build: (b: FheBuilder, x: FheValue) => FheValue) => {
    const b = new FheBuilder('p', slots);
    b.output('y', build(b, b.input('x', layout)), layout);
    return manageScales(b.build(), { chain: fheChain(params), topScale: params.scale, inputLevel: fheChain(params).primes.length - 1 });
  };
  const rotation = (program: FheProgram) => opCost(t, 'rotate', params.ringDegree, program.ops.find((o) => o.kind === 'rotate')!.args[0]!.type.level!);

  it('is the whole latency for a chain of ops, and leaves out all but one of k independent rotations', () => {
    const chain = managed((b, x) => b.rotate(b.rotate(b.rotate(x, 1), 2), 3));
    const c = predictLatency(chain, t);
    expect(c.criticalPathMs).toBeCloseTo(c.totalMs, 9);
    const k = 5;
    const fan = managed((b, x) => Array.from({ length: k }, (_, i) => b.rotate(x, i + 1)).reduce((s, r) => b.add(s, r)));
    const f = predictLatency(fan, t);
    expect(f.totalMs - f.criticalPathMs).toBeCloseTo((k - 1) * rotation(fan), 9);
    expect(formatLatency(f)).toMatch(new RegExp(`critical path ${f.criticalPathMs.toFixed(1)} ms: threads can make it at most ${(f.totalMs / f.criticalPathMs).toFixed(2)}x as fast`));
  });

  it("counts the link's round-trip time once for each refresh on the path", () => {
    const twice = managed((b, x) => {
      const r = b.refresh(b.mul(x, x));
      return b.refresh(b.mul(r, r));
    });
    const slow = { ...t, link: { ...t.link, rttMs: 50 } };
    const fast = { ...t, link: { ...t.link, rttMs: 0 } };
    expect(predictLatency(twice, slow).criticalPathMs - predictLatency(twice, fast).criticalPathMs).toBeCloseTo(2 * 50, 9);
  });

  it('comes with the program latency the search prices (its rotations composed from the planned keys)', () => {
    const fan = managed((b, x) => b.add(b.rotate(x, 1), b.rotate(x, 2)));
    expect(predictProgramLatency(fan, params, t).criticalPathMs).toBeCloseTo(predictLatency(fan, t, { rotationKeySteps: programKeys(fan, params).rotationKeySteps }).criticalPathMs, 9);
  });
});

describe('parameter search', () => {
  const costs = defaultCostTable();
  const x = Float64Array.from({ length: 1024 }, (_, i) => Math.sin(i) * 0.9);

  it('prefers the smallest N the depth allows, and every candidate it accepts is 128-bit secure', () => {
    const r = searchParameters({ build: squarings(2), costs, required: { bits: 12 }, inputBounds: { x: 1 } });
    const table = formatCandidates(r);
    console.log(table);
    expect(r.best!.params.ringDegree).toBe(8192);
    expect(table).toMatch(/^\| \* \| 8192 \|/m);
    for (const c of r.candidates.filter((c) => c.feasible)) {
      expect(c.modulusBits).toBeLessThanOrEqual(maxModulusBits(c.ringDegree)!);
      expect(c.latencyMs).toBeGreaterThanOrEqual(r.best!.candidate.latencyMs!);
    }
    checkSecurity(r.best!.params);
    // The best N=16384 candidate is feasible but slower.
    const at16k = r.candidates.filter((c) => c.feasible && c.ringDegree === 16384);
    expect(at16k.length).toBeGreaterThan(0);
    expect(Math.min(...at16k.map((c) => c.latencyMs!))).toBeGreaterThan(r.best!.candidate.latencyMs!);
  });

  it('moves to a larger N when the depth does not fit 128-bit security at N=8192', () => {
    const r = searchParameters({ build: squarings(7), costs, required: { absError: 1e-3 }, calibrationInputs: { x } });
    console.log(formatCandidates(r));
    expect(r.best!.params.ringDegree).toBe(16384);
    expect(r.candidates.some((c) => c.ringDegree === 8192 && c.feasible)).toBe(false);
    expect(r.candidates.some((c) => c.ringDegree === 8192 && /cannot fit depth 7/.test(c.reason ?? ''))).toBe(true);
    expect(r.best!.candidate.levels).toBe(7);
    expect(r.best!.candidate.modulusBits).toBeLessThanOrEqual(438);
  });

  it('a stricter precision requirement moves to a larger N when no chain at N=8192 meets it', () => {
    const loose = searchParameters({ build: squarings(3), costs, required: { absError: 1e-3 }, calibrationInputs: { x } });
    const strict = searchParameters({ build: squarings(3), costs, required: { absError: 1e-6 }, calibrationInputs: { x } });
    console.log(formatCandidates(strict));
    expect(loose.best!.params.ringDegree).toBe(8192);
    expect(strict.best!.params.ringDegree).toBe(16384);
    // The chosen parameters really meet the requirement (same analysis, done again from scratch).
    const { program, params } = strict.best!;
    const check = analyzePrecision(program, { params, valueBounds: magnitudeBoundsFromPlain(program, { x }, 0.25), required: { absError: 1e-6 } });
    expect(check.ok).toBe(true);
    expect(check.outputs[0]!.value.error).toBeLessThanOrEqual(1e-6);
    const at8192 = strict.candidates.filter((c) => c.ringDegree === 8192 && c.bitSizes.length > 0);
    expect(at8192.length).toBeGreaterThan(2);
    expect(at8192.every((c) => !c.feasible && /keeps .* bits|break 128-bit/.test(c.reason ?? ''))).toBe(true);
  });

  it('takes a refresh planner and prices its round trips', () => {
    // A stand-in planner: splits a depth-d squaring chain into pieces of `levels` levels.
    const depth = 6;
    const planner: RefreshPlanner = (_program, levels, ctx) => ({
      refreshes: Math.ceil(depth / levels) - 1,
      program: squarings(Math.min(depth, levels))(ctx.params.ringDegree / 2),
    });
    const r = searchParameters({ build: squarings(depth), costs, required: { absError: 1e-3 }, calibrationInputs: { x }, refresh: planner, ringDegrees: [8192, 16384] });
    console.log(formatCandidates(r));
    const withRefresh = r.candidates.filter((c) => c.feasible && c.refreshes! > 0);
    expect(withRefresh.length).toBeGreaterThan(0);
    expect(withRefresh.every((c) => c.ringDegree === 8192 || c.levels < depth)).toBe(true);
    // With a refresh budget of 0 the planner's pieces are not allowed: only N=16384 at full depth is.
    const none = searchParameters({ build: squarings(depth), costs, required: { absError: 1e-3 }, calibrationInputs: { x }, refresh: planner, maxRefreshes: 0 });
    expect(none.best!.candidate.refreshes).toBe(0);
    expect(none.best!.params.ringDegree).toBe(16384);
    // The chosen candidate is the cheapest feasible one, refresh round trips included.
    const cheapest = Math.min(...r.candidates.filter((c) => c.feasible).map((c) => c.latencyMs!));
    expect(r.best!.candidate.latencyMs).toBe(cheapest);
  });
});
