// `node dist/bench/refresh-mask.js`: what the coefficient-domain refresh mask costs, against the
// slot-domain mask it replaced (emulated here with the same SEAL calls: encode r in slots, add,
// decrypt, encrypt anew, subtract), at N = 8192 and 16384, refreshing from level 1 to the top.
// Precision: error of the refreshed vector against x (|x| <= 1), rms and max, as bits (-log2).
// Time: median of 5 round trips, evaluator and key holder apart (in-process transport); the last row
// sends rounds of three ciphertexts, as the executors batch them.

import { makeParameters, slotsOf, topLevel, type CkksParameters } from '../ir/ckks/params.js';
import type { CkksClient, CkksEvaluator, CkksHandle } from '../runtime/backend.js';
import { RefreshKeyHolder } from '../runtime/refresh/key-holder.js';
import { MaskedRefresher } from '../runtime/refresh/refresher.js';
import { sealBackend } from '../runtime/seal/backend.js';

interface Row {
  n: number;
  method: string;
  rmsBits: number;
  maxBits: number;
  evaluatorMs: number;
  keyHolderMs: number;
}

const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1]!;

function errors(got: Float64Array, want: Float64Array): { rms: number; max: number } {
  let s = 0;
  let m = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i]! - want[i]!);
    s += e * e;
    m = Math.max(m, e);
  }
  return { rms: Math.sqrt(s / want.length), max: m };
}

function atLevel(ev: CkksEvaluator, client: CkksClient, xs: Float64Array, level: number): CkksHandle {
  let ct = ev.loadCiphertext(client.encrypt(xs, topLevel(ev.params), ev.params.scale));
  for (let l = topLevel(ev.params); l > level; l--) {
    const next = ev.modSwitch(ct);
    ev.free(ct);
    ct = next;
  }
  return ct;
}

/** The former protocol: slot mask uniform in [-R, R], R = 2^k (k = 0: no mask). */
function slotMaskRoundTrip(ev: CkksEvaluator, client: CkksClient, ct: CkksHandle, k: number): { out: CkksHandle; ev: number; kh: number } {
  const slots = slotsOf(ev.params);
  const top = topLevel(ev.params);
  const t0 = performance.now();
  const r = Float64Array.from({ length: slots }, () => (k === 0 ? 0 : (2 * Math.random() - 1) * 2 ** k));
  const pt = ev.encode(r, ev.levelOf(ct), ev.scaleOf(ct));
  const masked = ev.addPlain(ct, pt);
  const bytes = ev.saveCiphertext(masked);
  ev.free(pt);
  ev.free(masked);
  const t1 = performance.now();
  const fresh = client.encrypt(client.decrypt(bytes), top, ev.params.scale);
  const t2 = performance.now();
  const f = ev.loadCiphertext(fresh);
  const un = ev.encode(r.map((v) => -v), top, ev.params.scale);
  const out = ev.addPlain(f, un);
  ev.free(f);
  ev.free(un);
  const t3 = performance.now();
  return { out, ev: t1 - t0 + (t3 - t2), kh: t2 - t1 };
}

async function benchOne(params: CkksParameters): Promise<Row[]> {
  const client = await sealBackend.createClient(params, { galoisSteps: [], relin: false });
  const ev = await sealBackend.createEvaluator(params, client.evaluationKeys());
  const slots = slotsOf(params);
  const xs = Float64Array.from({ length: slots }, () => 2 * Math.random() - 1);
  const rows: Row[] = [];
  const record = (method: string, runs: { out: CkksHandle; ev: number; kh: number }[]) => {
    const errs = runs.map((r) => errors(client.decrypt(ev.saveCiphertext(r.out)), xs));
    runs.forEach((r) => ev.free(r.out));
    rows.push({
      n: params.ringDegree,
      method,
      rmsBits: -Math.log2(median(errs.map((e) => e.rms))),
      maxBits: -Math.log2(median(errs.map((e) => e.max))),
      evaluatorMs: median(runs.map((r) => r.ev)),
      keyHolderMs: median(runs.map((r) => r.kh)),
    });
  };
  const ct = atLevel(ev, client, xs, 1);
  const base = errors(client.decrypt(ev.saveCiphertext(ct)), xs);
  rows.push({ n: params.ringDegree, method: 'before the refresh (level 1)', rmsBits: -Math.log2(base.rms), maxBits: -Math.log2(base.max), evaluatorMs: 0, keyHolderMs: 0 });
  for (const k of [0, 16, 40]) {
    record(k === 0 ? 'slot domain, no mask' : `slot domain, mask 2^${k}`, Array.from({ length: 5 }, () => slotMaskRoundTrip(ev, client, ct, k)));
  }
  const holder = new RefreshKeyHolder(client, 'unchecked');
  const refresher = new MaskedRefresher(ev, holder.transport(), { mask: { valueBound: 1 } });
  ev.free(refresher.refresh(ct, params.scale, 'warm-up'));
  const runs = Array.from({ length: 5 }, () => {
    const [t, h] = [refresher.traffic.ms, holder.stats.ms];
    const out = refresher.refresh(ct, params.scale, 'x');
    const kh = holder.stats.ms - h;
    return { out, ev: refresher.traffic.ms - t - kh, kh };
  });
  record('coefficient domain, 40 bits per ciphertext', runs);
  // A round of three (refresh rounds hold ~2.5 ciphertexts in model A's decode): masked, lifted and
  // unmasked together, SEAL's transforms two polynomials at a time. Times per ciphertext.
  const round = Array.from({ length: 5 }, () => {
    const [t, h] = [refresher.traffic.ms, holder.stats.ms];
    const outs = refresher.refreshMany([0, 1, 2].map(() => ({ ct, scale: params.scale, name: 'x' })));
    const kh = (holder.stats.ms - h) / 3;
    outs.slice(1).forEach((o) => ev.free(o));
    return { out: outs[0]!, ev: (refresher.traffic.ms - t) / 3 - kh, kh };
  });
  record('coefficient domain, a round of 3 (per ciphertext)', round);
  ev.free(ct);
  ev.dispose();
  client.dispose();
  return rows;
}

export async function runRefreshMaskBench(): Promise<Row[]> {
  const rows = [
    ...(await benchOne(makeParameters({ ringDegree: 8192, bitSizes: [60, 40, 40, 60], scale: 2 ** 40 }))),
    ...(await benchOne(makeParameters({ ringDegree: 16384, bitSizes: [60, 40, 40, 40, 40, 40, 40, 60], scale: 2 ** 40 }))),
  ];
  console.log('\n## Refresh mask: precision and time per round trip (SEAL, from level 1 to the top, |x| <= 1, scale 2^40)');
  console.log('| N | method | rms error (bits) | max error (bits) | evaluator ms | key holder ms |');
  console.log('|---:|---|---:|---:|---:|---:|');
  for (const r of rows) {
    console.log(`| ${r.n} | ${r.method} | ${r.rmsBits.toFixed(1)} | ${r.maxBits.toFixed(1)} | ${r.evaluatorMs.toFixed(1)} | ${r.keyHolderMs.toFixed(1)} |`);
  }
  return rows;
}

if (process.argv[1]?.endsWith('refresh-mask.js')) await runRefreshMaskBench();
