// Summary lines shared by `fhec generate`'s summary (session.ts) and the remote client's (`fhec client
// generate` and the browser page, service/client/remote-generation.ts): browser-safe, types only.

import type { StepStats } from './evaluator.js';

/** The weight plaintexts the evaluator encoded ahead while it waited on the key holder (none: no line). */
export function formatPrefetched(steps: readonly Pick<StepStats, 'prefetched'>[]): string[] {
  const n = steps.map((s) => s.prefetched ?? 0);
  return n.some((k) => k > 0) ? [`encoded ahead while waiting on the key holder: ${n.reduce((a, b) => a + b, 0)} weight plaintexts (per step: ${n.join(', ')})`] : [];
}
