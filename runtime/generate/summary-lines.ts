// Summary lines shared by `fhec generate`'s summary (session.ts) and the remote client's (`fhec client
// generate` and the browser page, service/client/remote-generation.ts): browser-safe, types only.

import type { StepStats } from './evaluator.js';

/** The weight plaintexts the evaluator encoded ahead while it waited on the key holder (none: no line). */
export function formatPrefetched(steps: readonly Pick<StepStats, 'prefetched'>[]): string[] {
  const n = steps.map((s) => s.prefetched ?? 0);
  return n.some((k) => k > 0) ? [`encoded ahead while waiting on the key holder: ${n.reduce((a, b) => a + b, 0)} weight plaintexts (per step: ${n.join(', ')})`] : [];
}

/** The refresh masks made ahead (by the mask thread, or while waiting on the key holder), and how many refreshes used one (none: no line). */
export function formatMasksAhead(steps: readonly Pick<StepStats, 'masksAhead'>[]): string[] {
  const sum = (f: (m: NonNullable<StepStats['masksAhead']>) => number) => steps.reduce((a, s) => a + (s.masksAhead ? f(s.masksAhead) : 0), 0);
  const made = sum((m) => m.made);
  const supplied = sum((m) => m.supplied ?? 0);
  const used = sum((m) => m.used);
  if (made + supplied === 0) return [];
  const per = steps.map((s) => (s.masksAhead?.made ?? 0) + (s.masksAhead?.supplied ?? 0)).join(', ');
  return [
    supplied > 0
      ? `refresh masks made ahead: ${supplied} by the mask thread, ${made} while waiting on the key holder; used ${used} (per step: ${per})`
      : `refresh masks made while waiting on the key holder: ${made}, used ${used} (per step: ${per})`,
  ];
}
