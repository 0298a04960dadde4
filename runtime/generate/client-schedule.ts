// The refresh schedule of a generation plan, as one public document: what a remote key holder needs
// to check every refresh request without trusting the evaluator. For every step a generation with
// this plan can run (each prefill length, and each decode step after each step that can precede it),
// the ordered refresh points of stepRefreshPoints (its cache carries, then its refresh ops, with
// levels, scales, layouts and bounds), plus the facts the client checks the server's plan against:
// CKKS parameters, vocabulary, embedding table digest, tokenizer, context, prefill lengths.
// The client derives it from its own copy of the plan (`fhec client generate --plan PLAN.json`), or
// takes it as a file whose sha256 it got from its own copy (`fhec client schedule PLAN.json`, the
// browser page); the server announces the sha256 of the one it derives from the plan it serves, and
// the two must agree. The bytes are JSON.stringify of the document the same code builds from the same
// plan files, so equal plans give equal bytes and equal digests.

import { z } from 'zod';
import { FhecError } from '../../ir/errors.js';
import { nonNegInt, parseWith, posInt, posNumber, ringDegree, sha256, slotLayoutSchema } from '../plan/validate.js';
import type { RefreshPoint } from '../refresh/schedule.js';
import type { ClientPlans } from './client.js';
import type { GenerationManifest } from './manifest.js';
import { shapeName, type GenerationPlanSource, type StepShape } from './plan-source.js';
import { stepRefreshPoints } from './step-schedule.js';

export const CLIENT_SCHEDULE_KIND = 'fhec-refresh-schedule';
export const CLIENT_SCHEDULE_VERSION = 3;
const WHAT = 'refresh schedule';

const pointSchema = z.strictObject({
  id: z.string().min(1),
  kind: z.enum(['refresh', 'carry']),
  level: nonNegInt(),
  scale: posNumber(),
  toLevel: nonNegInt(),
  toScale: posNumber(),
  slots: posInt(),
  bound: posNumber(),
  from: slotLayoutSchema.optional(),
  to: slotLayoutSchema.optional(),
  piece: z.strictObject({ fromStart: nonNegInt(), toStart: nonNegInt() }).optional(),
  /** 3: an unrelinearized product (absent: 2). */
  size: z.literal(3).optional(),
  /** Rotation steps the key holder may return with the refresh (all or none; runtime/refresh/rounds.ts refreshRotations). */
  rotations: z.array(z.number().int()).optional(),
});

const scheduleSchema = z.strictObject({
  kind: z.literal(CLIENT_SCHEDULE_KIND),
  version: z.literal(CLIENT_SCHEDULE_VERSION),
  params: z.strictObject({ ringDegree: ringDegree(), bitSizes: z.array(posInt()).min(2), scale: posNumber() }),
  vocab: posInt(),
  dim: posInt(),
  embeddingSha256: sha256(),
  /** UTF-8 bytes, or the digest of the Hugging Face tokenizer.json the plan was compiled with. */
  tokenizer: z.union([z.literal('bytes'), z.strictObject({ sha256: sha256() })]),
  maxContext: posInt(),
  prefill: z.array(posInt()).min(1),
  /** By step key (stepKey): the step's refresh points, in the order the evaluator must request them. */
  steps: z.record(z.string().min(1), z.array(pointSchema)),
});

export type ClientSchedule = z.infer<typeof scheduleSchema>;

/** A schedule with its bytes' sha256 (what the server announces and the user checks). */
export interface LoadedSchedule {
  schedule: ClientSchedule;
  sha256: string;
}

/** A step's key: its shape, after the step before it (a decode step's cache carries depend on it). */
export function stepKey(prev: StepShape | undefined, cur: StepShape): string {
  return prev ? `${shapeName(prev)} -> ${shapeName(cur)}` : shapeName(cur);
}

/** Every step a generation can run with these prefill lengths and context, with the step before it. */
function reachableSteps(prefill: readonly number[], maxContext: number): [StepShape | undefined, StepShape][] {
  const sorted = [...prefill].sort((a, b) => a - b);
  const out: [StepShape | undefined, StepShape][] = sorted.map((S) => [undefined, { kind: 'prefill', tokens: S }]);
  // generationSteps: a prefill of S, then decode P for P = S .. maxContext - 1 (the last position fed back).
  for (let P = sorted[0]!; P < maxContext; P++) {
    if (sorted.includes(P)) out.push([{ kind: 'prefill', tokens: P }, { kind: 'decode', past: P }]);
    if (P > sorted[0]!) out.push([{ kind: 'decode', past: P - 1 }, { kind: 'decode', past: P }]);
  }
  return out;
}

/** The schedule of a generation plan, from its step plans (compiled by the source if it compiles on demand). */
export function buildClientSchedule(m: GenerationManifest, source: Pick<GenerationPlanSource, 'load'>): ClientSchedule {
  const steps: Record<string, RefreshPoint[]> = {};
  for (const [prev, cur] of reachableSteps(m.prefill, m.maxContext)) {
    steps[stepKey(prev, cur)] = stepRefreshPoints(prev ? source.load(prev) : undefined, source.load(cur));
  }
  return {
    kind: CLIENT_SCHEDULE_KIND,
    version: CLIENT_SCHEDULE_VERSION,
    params: { ringDegree: m.params.ringDegree, bitSizes: [...m.params.bitSizes], scale: m.params.scale },
    vocab: m.vocab,
    dim: m.dim,
    embeddingSha256: m.embeddingSha256,
    tokenizer: m.tokenizer === 'bytes' ? 'bytes' : { sha256: m.tokenizer.sha256 },
    maxContext: m.maxContext,
    prefill: [...m.prefill].sort((a, b) => a - b),
    steps,
  };
}

export function encodeClientSchedule(s: ClientSchedule): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(s));
}

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** A schedule document from its bytes, checked (`where` names the file or the source in errors). */
export async function readClientSchedule(bytes: Uint8Array, where: string): Promise<LoadedSchedule> {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw new FhecError(`refresh schedule is not valid JSON: ${(e as Error).message}`, { file: where });
  }
  if (!doc || typeof doc !== 'object' || (doc as { kind?: unknown }).kind !== CLIENT_SCHEDULE_KIND) {
    throw new FhecError(`not a refresh schedule (make one from your copy of the plan with \`fhec client schedule PLAN.json -o FILE\`)`, { file: where });
  }
  const schedule = parseWith(scheduleSchema, doc, where, WHAT);
  return { schedule, sha256: await sha256Hex(bytes) };
}

/** The schedule and its digest, from a document built here. */
export async function loadedSchedule(schedule: ClientSchedule): Promise<LoadedSchedule> {
  return { schedule, sha256: await sha256Hex(encodeClientSchedule(schedule)) };
}

/** Refuses a generation whose steps the schedule does not cover (before any key is made or sent). */
export function checkScheduleCovers(s: ClientSchedule, steps: readonly StepShape[]): void {
  steps.forEach((cur, i) => {
    const key = stepKey(i > 0 ? steps[i - 1] : undefined, cur);
    if (!s.steps[key]) {
      const why = cur.kind === 'prefill' ? ` (a prompt shorter than the shortest prefill, ${s.prefill[0]} tokens, needs a plan compiled with --prefill ${cur.tokens})` : '';
      throw new FhecError(`the plan's refresh schedule has no step ${key}${why}`);
    }
  });
}

/** What the client's generation needs of the plan, from the schedule alone (runtime/generate/client.ts). */
export function schedulePlans(s: ClientSchedule): ClientPlans {
  return {
    prefillLengths: () => [...s.prefill],
    refreshPoints: (steps, i) => {
      checkScheduleCovers(s, steps.slice(0, i + 1));
      return s.steps[stepKey(i > 0 ? steps[i - 1] : undefined, steps[i]!)]!;
    },
  };
}
