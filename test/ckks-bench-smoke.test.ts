// The bench runs, and the executor adds little over the ops themselves.
import { expect, it } from 'vitest';
import { runCkksOpsBench } from '../bench/ckks-ops.js';

it('ckks ops bench: per-op medians and executor overhead', async () => {
  const r = await runCkksOpsBench();
  expect(r.ops.rotate![2]).toBeGreaterThan(0);
  expect(r.ops.mul![2]).toBeGreaterThan(0);
  expect(r.plan.overhead).toBeGreaterThanOrEqual(1);
  expect(r.plan.overhead).toBeLessThan(1.15);
});
