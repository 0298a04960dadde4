// The key holder accepts only the refresh schedule the plan contains (runtime/refresh/schedule.ts): a
// dishonest evaluator that asks for another scale, level or layout, an extra, missing or reordered
// refresh, a request for another step, or replays a request, is refused each time and the session
// ends. Plans carry a bound per refresh point and are refused without; the audit records every
// refreshed ciphertext with its bound, the observed |x| (sim) and the hiding bits.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fheChain, makeParameters, topLevel } from '../ir/ckks/params.js';
import type { SlotLayout } from '../ir/fhe/types.js';
import { manageScales } from '../passes/fhe/manage/manage-scales.js';
import { placeRefreshes } from '../passes/fhe/refresh/refresh-placement.js';
import { calibratedMaxima, chooseBounds, provedMagnitudes, refreshedValues } from '../passes/fhe/refresh/refresh-bounds.js';
import { runProgram } from '../runtime/ckks/execute.js';
import { CacheRefresher, handleCacheRefresh } from '../runtime/generate/cache-refresh.js';
import { RefreshAudit } from '../runtime/refresh/audit.js';
import { RefreshKeyHolder } from '../runtime/refresh/key-holder.js';
import { MaskedRefresher } from '../runtime/refresh/refresher.js';
import { refreshPointsOf, RefreshScheduleGuard, type RefreshPoint } from '../runtime/refresh/schedule.js';
import { loadPlan, writePlan } from '../runtime/plan/plan.js';
import { makeSimBackend } from '../runtime/sim/backend.js';
import { signComposition } from './helpers/sign-composition.js';

const params = makeParameters({ ringDegree: 8192, bitSizes: [60, 40, 40, 60], scale: 2 ** 40 });
const slots = params.ringDegree / 2;
const top = topLevel(params);
const xs = Float64Array.from({ length: slots }, (_, i) => 0.9 * Math.sin(0.37 * i));
const sim = makeSimBackend(11);


// Refreshes at level 1: level 0 (one 60-bit prime) has no room for a 40-bit mask.
const managed = manageScales(placeRefreshes(signComposition(5, slots), { levels: top - 1 }).program, { chain: fheChain(params), topScale: params.scale, inputLevel: top });
const bounds = new Map(refreshedValues(managed).map((v) => [v, 1]));
const points = refreshPointsOf(managed, bounds);

async function session() {
  const client = await sim.createClient(params, { galoisSteps: [], relin: true });
  const ev = await sim.createEvaluator(params, client.evaluationKeys());
  const guard = new RefreshScheduleGuard((step) => (step === 0 ? points : []));
  guard.beginStep(0);
  const holder = new RefreshKeyHolder(client, guard);
  const sent: Uint8Array[] = [];
  const refresher = new MaskedRefresher(ev, (req) => {
    sent.push(req);
    return holder.handle(req);
    // A declared fallback bound, so that even requests for points the plan lacks get sent (the key holder must refuse them).
  }, { mask: { bounds, valueBound: 1 } });
  const ctAt = (level: number, scale: number) => ev.loadCiphertext(client.encrypt(xs, level, scale));
  const ask = (p: RefreshPoint, change: { level?: number; scale?: number; toScale?: number; id?: string } = {}) =>
    refresher.refresh(ctAt(change.level ?? p.level, change.scale ?? p.scale), change.toScale ?? p.toScale, change.id ?? p.id);
  return { client, ev, guard, holder, refresher, sent, ask };
}

describe('the key holder checks every refresh request against the plan', () => {
  it('derives the schedule from the plan: every refresh op with its level, scales and bound', () => {
    expect(points.length).toBe(14);
    for (const p of points) {
      expect(p).toMatchObject({ kind: 'refresh', level: 1, toLevel: top, slots, bound: 1 });
      expect(p.toScale).toBe(params.scale);
    }
    expect(() => refreshPointsOf(managed, new Map())).toThrow(/has no bound on \|x\|/);
  });

  it('accepts the honest sequence', async () => {
    const s = await session();
    for (const p of points) s.ask(p);
    expect(() => s.guard.endStep()).not.toThrow();
    expect(s.holder.stats.ciphertexts).toBe(14);
  });

  const dishonest: [string, (s: Awaited<ReturnType<typeof session>>) => void, RegExp][] = [
    ['another scale back', (s) => s.ask(points[0]!, { toScale: 2 ** 30 }), /asks for '.*' back at scale 1073741824, the plan wants scale 1099511627776/],
    ['another level', (s) => s.ask(points[0]!, { level: 2 }), /sends '.*' at level 2, the plan has it at level 1/],
    ['another input scale', (s) => s.ask(points[0]!, { scale: 2 ** 35 }), /sends '.*' at scale 34359738368, the plan has it at scale/],
    ['a point the plan lacks', (s) => s.ask(points[0]!, { id: 'nope' }), /asks for refresh of 'nope', the plan's next refresh point is the refresh of/],
    ['reordered', (s) => s.ask(points[1]!), /the plan's next refresh point is the refresh of '/],
    [
      'an extra refresh',
      (s) => {
        for (const p of points) s.ask(p);
        s.ask(points[13]!);
      },
      /step 0 has 14 refresh point\(s\), the evaluator asks for one more/,
    ],
    [
      'a missing refresh',
      (s) => {
        for (const p of points.slice(0, -1)) s.ask(p);
        s.guard.endStep();
      },
      /step 0 ended with 1 refresh point\(s\) never requested/,
    ],
    [
      'a replayed request',
      (s) => {
        s.ask(points[0]!);
        s.holder.handle(s.sent[0]!);
      },
      /refresh request id 1, expected 2 \(a replayed or skipped request\)/,
    ],
    [
      'a request for another step',
      (s) => {
        s.refresher.step = 1;
        s.ask(points[0]!);
      },
      /a refresh request \(id 1\) is for step 1, the running step is 0/,
    ],
  ];
  for (const [what, act, message] of dishonest) {
    it(`refuses ${what}, and then ends the session`, async () => {
      const s = await session();
      expect(() => act(s)).toThrow(message);
      // Nothing more is answered, not even the honest next request.
      s.refresher.step = 0;
      expect(() => s.ask(points[0]!)).toThrow(/the key holder ended this session/);
    });
  }

  it('refuses cache carries with another layout or level', async () => {
    // The evaluator moves the slots itself (power-of-two rotation keys, one level): the cache leaves the
    // step at the top level and is masked at the level below.
    const powers = Array.from({ length: Math.log2(slots) }, (_, i) => 2 ** i);
    const client = await sim.createClient(params, { galoisSteps: powers, relin: false });
    const ev = await sim.createEvaluator(params, client.evaluationKeys());
    const layout = (stride: number): SlotLayout => ({ length: 64, tokens: 8, stride, period: 64, copies: 1 });
    const moved = (params.scale * Number(params.primes[top]!)) / Number(params.primes[top]!);
    const carry: RefreshPoint = { id: 'past.0.key', kind: 'carry', level: top - 1, scale: moved, toLevel: top, toScale: params.scale, slots, bound: 4, from: layout(512), to: layout(256) };
    const item = (to: SlotLayout, level = top) => ({ ct: ev.loadCiphertext(client.encrypt(xs, top, params.scale)), from: carry.from!, to, level, scale: params.scale, bound: 4, name: carry.id });
    for (const [bad, message] of [
      [item(layout(128)), /asks to move 'past.0.key' from .* to \{length 64, tokens 8, stride 128/],
      [item(layout(256), 1), /asks for 'past.0.key' back at level 1, the plan wants level 2/],
    ] as const) {
      const guard = new RefreshScheduleGuard(() => [carry]);
      guard.beginStep(0);
      const refresher = new CacheRefresher(ev, (req) => handleCacheRefresh(client, guard, req).reply);
      expect(() => refresher.refresh([bad])).toThrow(message);
    }
    const guard = new RefreshScheduleGuard(() => [carry]);
    guard.beginStep(0);
    const out = new CacheRefresher(ev, (req) => handleCacheRefresh(client, guard, req).reply).refresh([item(layout(256))]);
    expect(out.length).toBe(1);
    guard.endStep();
  });
});

describe('refresh bounds in plans, and the audit', () => {
  it('proves bounds where interval arithmetic stays finite, else calibrates, and records where each came from', () => {
    const names = refreshedValues(managed);
    const proved = provedMagnitudes(managed, { x: 1 });
    const calibrated = calibratedMaxima(managed, [{ x: xs }], names);
    const chosen = chooseBounds(names, proved, calibrated);
    // Interval arithmetic bounds x by 1, one round of p on [-1, 1] by 1.5 + 0.5 = 2, then 2*1.5 + 0.5*8 = 7, ...: the
    // first refresh point has a proof the calibrated bound (16x) covers ('both'), the later ones' proofs
    // exceed the plan's largest calibrated bound and are not taken ('calibrated').
    expect(chosen[0]!.source).toBe('both');
    expect(chosen[0]!.proved).toBeGreaterThanOrEqual(chosen[0]!.calibratedMax);
    expect(chosen[0]!.proved).toBeLessThanOrEqual(chosen[0]!.bound);
    expect(chosen.at(-1)!.source).toBe('calibrated');
    for (const b of chosen) {
      expect(b.calibratedMax).toBeLessThanOrEqual(1);
      expect(b.source).not.toBe('proved');
      expect(b.bound).toBeCloseTo(16 * b.calibratedMax, 12);
    }
    // No input bound: nothing is proved.
    expect(chooseBounds(names, provedMagnitudes(managed, {}), calibrated).every((b) => b.source === 'calibrated')).toBe(true);
  });

  it('refuses a plan whose refreshes have no bounds, or bounds for other values', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-refresh-schedule-'));
    const file = path.join(dir, 'p.json');
    expect(() => writePlan(file, managed, params)).toThrow(/the program has 14 refreshes and the plan gives no bound on \|x\|/);
    const recs = refreshedValues(managed).map((value) => ({ value, bound: 1, source: 'declared' as const }));
    writePlan(file, managed, params, recs);
    expect([...loadPlan(file).refreshBounds.values()]).toEqual(new Array(14).fill(1));
    const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
    fs.writeFileSync(file, JSON.stringify({ ...doc, refreshPoints: undefined }));
    expect(() => loadPlan(file)).toThrow(/gives no bound on \|x\| for them \(no refreshPoints\)/);
    fs.writeFileSync(file, JSON.stringify({ ...doc, refreshPoints: [...doc.refreshPoints.slice(1), doc.refreshPoints[0]] }));
    expect(() => loadPlan(file)).toThrow(/malformed plan: refreshPoints\[0\]\.value: is '.*', the program's refresh 1 refreshes/);
    fs.writeFileSync(file, JSON.stringify({ ...doc, refreshPoints: doc.refreshPoints.map((p: object) => ({ ...p, bound: -1 })) }));
    expect(() => loadPlan(file)).toThrow(/refreshPoints/);
  });

  it('audits every refreshed ciphertext: bound, observed |x| on sim within it, hiding bits', async () => {
    // Calibrated bounds with a margin of 1.5 (a declared bound of exactly 1 is too tight: p has fixed points
    // at +-1, and CKKS noise goes past them; level 1 of this chain leaves no room for 16x and a 40-bit mask).
    const names = refreshedValues(managed);
    const chosen = chooseBounds(names, provedMagnitudes(managed, {}), calibratedMaxima(managed, [{ x: xs }], names), 0.5);
    const audit = new RefreshAudit();
    const res = await runProgram(managed, params, sim, { x: xs }, { refreshBounds: new Map(chosen.map((b) => [b.value, b.bound])), audit });
    expect(res.refresh!.ciphertexts).toBe(14);
    expect(audit.records.map((r) => r.point)).toEqual(points.map((p) => p.id));
    for (const r of audit.records) {
      expect(r).toMatchObject({ run: 0, step: 0, kind: 'refresh', level: 1, hidingBits: 40 });
      // (Refreshed every level, some points hold a half-way polynomial value: |x| from 0.45 up.)
      expect(r.observedMax).toBeGreaterThan(0.4);
      expect(r.observedMax).toBeLessThanOrEqual(r.bound);
    }
    expect(audit.overBound()).toEqual([]);
    expect(audit.summary()).toMatch(/14 masked ciphertexts \(14 refreshes, 0 cache carries\), hiding >= 40\.0 bits per ciphertext; every observed \|x\| within its bound/);
  });
});
