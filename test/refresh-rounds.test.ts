// Refresh rounds (ir/fhe/refresh-rounds.ts): each refresh's dependency level among the refreshes, recorded
// in the plan as `round` and checked on load; the latency model pays the link's round-trip time once per
// round and the bytes per refresh (--link, ir/ckks/cost-table.ts parseLink), and the parameter search's
// candidates show rounds and refresh bytes.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FheBuilder, refreshRounds, type FheValue } from '../ir/fhe/index.js';
import { defaultCostTable, IN_PROCESS_LINK, parseLink, refreshRoundTrip, withLink } from '../ir/ckks/cost-table.js';
import { fheChain, makeParameters } from '../ir/ckks/params.js';
import { FhecError } from '../ir/errors.js';
import { manageScales } from '../passes/fhe/manage/manage-scales.js';
import { formatCandidates, searchParameters } from '../passes/fhe/parameters/parameter-search.js';
import { predictLatency } from '../passes/fhe/analysis/predict-latency.js';
import { placeRefreshes } from '../passes/fhe/refresh/refresh-placement.js';
import { loadPlan, writePlan } from '../runtime/plan/plan.js';

const SLOTS = 4096;
const layout = { length: SLOTS, tokens: 1, stride: SLOTS, period: SLOTS, copies: 1 };

/** `width` independent branches, each squared `depth` times, summed. */
function branches(width: number, depth: number) {
  const b = new FheBuilder('branches', SLOTS);
  const x = b.input('x', layout);
  let sum: FheValue | undefined;
  for (let i = 0; i < width; i++) {
    let y: FheValue = b.mulConst(x, { kind: 'splat', value: (i + 1) / 8 });
    for (let k = 0; k < depth; k++) y = b.mul(y, y);
    sum = sum ? b.add(sum, y) : y;
  }
  b.output('y', sum!, layout);
  return b.build();
}

describe('refresh rounds', () => {
  it('counts dependency levels among refreshes: parallel branches share rounds, a chain of refreshes does not', () => {
    // 3 branches of depth 1 + 6 squares on 2 levels: every branch is refreshed 3 times in sequence.
    const placed = placeRefreshes(branches(3, 6), { levels: 2 }).program;
    const r = refreshRounds(placed);
    expect(r.rounds.length).toBe(9);
    expect(r.count).toBe(3);
    expect([...r.rounds].sort()).toEqual([0, 0, 0, 1, 1, 1, 2, 2, 2]);
    // A refresh whose input depends on none: round 0; none at all: 0 rounds.
    expect(refreshRounds(branches(2, 1)).count).toBe(0);
  });

  it('writes each refresh point with its round, and refuses a plan whose rounds disagree with its program', () => {
    const params = makeParameters({ ringDegree: 8192, bitSizes: [60, 40, 40, 60], scale: 2 ** 40 });
    const managed = manageScales(placeRefreshes(branches(2, 4), { levels: 2 }).program, { chain: fheChain(params), topScale: params.scale, inputLevel: 2 });
    const refreshed = managed.ops.filter((op) => op.kind === 'refresh').map((op) => op.args[0]!.name);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-rounds-'));
    const file = path.join(dir, 'plan.json');
    writePlan(file, managed, params, refreshed.map((value) => ({ value, bound: 1, source: 'declared' as const })));
    const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
    const rounds = refreshRounds(managed).rounds;
    expect(doc.refreshPoints.map((p: { round: number }) => p.round)).toEqual(rounds);
    expect(Math.max(...rounds)).toBeGreaterThan(0);
    expect(loadPlan(file).refreshRounds).toEqual(refreshRounds(managed));
    const last = rounds.length - 1;
    doc.refreshPoints[last].round = rounds[last]! + 1;
    fs.writeFileSync(file, JSON.stringify(doc));
    expect(() => loadPlan(file)).toThrow(FhecError);
    expect(() => loadPlan(file)).toThrow(/refreshPoints\.?\[?\d+\]?\.?round|round/);
  });

  it('parses --link, and refuses what it cannot read with an error naming the flag', () => {
    expect(parseLink('rtt=50ms,bandwidth=100Mbit')).toMatchObject({ rttMs: 50, bytesPerMs: 12500 });
    expect(parseLink('bandwidth=1Gbit, rtt=0.2s')).toMatchObject({ rttMs: 200, bytesPerMs: 125000 });
    expect(parseLink('in-process')).toBe(IN_PROCESS_LINK);
    for (const bad of ['rtt=50', 'rtt=50ms', 'rtt=50ms,bandwidth=fast', 'latency=1ms,bandwidth=1Gbit', 'rtt=-1ms,bandwidth=1Gbit', 'rtt=1ms,bandwidth=0Mbit']) {
      try {
        parseLink(bad);
        throw new Error(`accepted ${bad}`);
      } catch (e) {
        expect(e).toBeInstanceOf(FhecError);
        expect((e as FhecError).message).toMatch(/rtt|bandwidth|link|key=value/);
        expect(JSON.stringify(e)).toContain('--link');
      }
    }
  });

  it('prices one round-trip time per round and the bytes per refresh; the search shows rounds and bytes per candidate', () => {
    const params = makeParameters({ ringDegree: 8192, bitSizes: [60, 40, 40, 60], scale: 2 ** 40 });
    const managed = manageScales(placeRefreshes(branches(4, 6), { levels: 2 }).program, { chain: fheChain(params), topScale: params.scale, inputLevel: 2 });
    const refreshes = managed.ops.filter((op) => op.kind === 'refresh').length;
    const rounds = refreshRounds(managed).count;
    expect(refreshes).toBe(4 * rounds);
    const local = predictLatency(managed, withLink(defaultCostTable(), IN_PROCESS_LINK));
    const wan = predictLatency(managed, withLink(defaultCostTable(), parseLink('rtt=50ms,bandwidth=100Mbit')));
    expect(wan.refreshRounds).toBe(rounds);
    expect(wan.byKind.get('round trip')).toEqual({ count: rounds, ms: 50 * rounds });
    // The difference: rounds x 50 ms plus the bytes at 100 Mbit/s instead of 10 GB/s.
    const bytesMs = wan.refreshBytes / 12500 - local.refreshBytes / 1e7;
    expect(wan.totalMs - local.totalMs).toBeCloseTo(50 * rounds + bytesMs, 6);
    expect(local.byKind.has('round trip')).toBe(false);
    const rt = refreshRoundTrip(defaultCostTable(), 8192, 1, 2);
    expect(wan.refreshBytes).toBeGreaterThanOrEqual(refreshes * Math.min(rt.bytes, refreshRoundTrip(defaultCostTable(), 8192, 0, 2).bytes));

    const s = searchParameters({
      build: () => branches(4, 6),
      costs: withLink(defaultCostTable(), parseLink('rtt=50ms,bandwidth=100Mbit')),
      ringDegrees: [8192],
      scaleBits: [40],
      integerBits: 20,
      precision: () => ({}),
      refresh: (program, levels) => {
        const p = placeRefreshes(program, { levels });
        return { refreshes: p.count, program: p.program, inputLevel: levels };
      },
    });
    const ok = s.candidates.filter((c) => c.feasible);
    expect(ok.length).toBeGreaterThan(1);
    for (const c of ok) {
      expect(c.rounds).toBe(c.refreshes! / 4);
      expect(c.refreshBytes).toBeGreaterThan(0);
    }
    const table = formatCandidates(s);
    expect(table).toContain('| rounds | refresh MiB |');
    const row = table.split('\n').find((l) => l.startsWith('| * |'))!;
    expect(row.split('|')[7]!.trim()).toBe(String(s.best!.candidate.rounds));
  });
});
