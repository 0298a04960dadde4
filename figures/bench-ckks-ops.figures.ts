// Section `ckks-ops` (README "Benchmarks", "CKKS ops on node-seal": median ms per op and level at N=8192,
// chain [60, 40, 40, 60], and the 222-op plan's executor overhead): bench/ckks-ops.ts, what
// `node dist/bench/index.js ckks` runs. Timings: the check compares them within a wide band.
import { it } from 'vitest';
import { runCkksOpsBench } from '../bench/ckks-ops.js';
import { writeSection } from './record.js';

it('ckks-ops: node-seal op timings at N=8192', async () => {
  const t0 = performance.now();
  const r = await runCkksOpsBench();
  const figures: Record<string, number> = { planOps: r.plan.ops, planWallMs: r.plan.wallMs, planOverhead: r.plan.overhead };
  for (const [op, byLevel] of Object.entries(r.ops)) for (const [level, ms] of Object.entries(byLevel)) figures[`${op}.${level}`] = ms;
  writeSection('ckks-ops', t0, ['npm run build && node dist/bench/index.js ckks (runCkksOpsBench)'], figures, { parameters: r.parameters });
});
