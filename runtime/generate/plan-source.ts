// What the evaluator needs from a generation plan: the compiled program for each step shape (a
// prefill of S tokens, or a decode of one token after P cached ones), and the calibrated bounds of
// the cached keys/values (for the mask of the cache refresh). The compiler side implements it
// (compiler/generation-plan.ts: compiled eagerly or on first use, and cached on disk). The step files
// beside each step plan (NAME.iface.json, NAME.bounds.json) are read here, through their schemas.

import * as fs from 'node:fs';
import { z } from 'zod';
import { FhecError } from '../../ir/errors.js';
import { layoutsEqual } from '../../ir/fhe/layout.js';
import type { KeyRequest } from '../backend.js';
import type { CkksParameters } from '../../ir/ckks/params.js';
import type { ModelPlan } from '../model-session.js';
import { int, layoutFits, malformed, nonNegInt, parseWith, posNumber, slotLayoutSchema } from '../plan/validate.js';

export type StepShape = { kind: 'prefill'; tokens: number } | { kind: 'decode'; past: number };

export interface StepPlan {
  shape: StepShape;
  plan: ModelPlan;
  /** Calibrated bound on |value| of each present key/value output, by the model's output name. */
  cacheBounds: Record<string, number>;
}

/** What the client must encrypt for a step. */
const stepInputSchema = z.strictObject({ layout: slotLayoutSchema, level: nonNegInt(), scale: posNumber() });

/** A step plan's interface: the keys it needs and its embedding input, without its weights. */
const stepInterfaceSchema = z.strictObject({
  keys: z.strictObject({ galoisSteps: z.array(int()), relin: z.boolean() }),
  input: stepInputSchema,
});

export type StepInputSpec = z.infer<typeof stepInputSchema>;
export type StepInterface = z.infer<typeof stepInterfaceSchema>;

const _keyTypes: [KeyRequest, StepInterface['keys']] = [{} as StepInterface['keys'], {} as KeyRequest];
void _keyTypes;

/** Calibrated |value| bounds of the cache outputs, by the model's output name. */
const cacheBoundsSchema = z.record(z.string().min(1), posNumber());

const IFACE = 'step interface';

/**
 * A step's interface file (a cache of describeStep, written beside the step plan). Undefined when it
 * is missing or not JSON (a write cut short: rebuild it from the plan); a schema error otherwise.
 */
export function readStepInterface(file: string, slots: number): StepInterface | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
  const d = parseWith(stepInterfaceSchema, doc, file, IFACE);
  layoutFits(d.input.layout, slots, file, IFACE, ['input', 'layout']);
  d.keys.galoisSteps.forEach((s, i) => {
    if (Math.abs(s) >= slots) throw malformed(file, IFACE, ['keys', 'galoisSteps', i], `step ${s} is not below the slot count ${slots}`);
  });
  return d;
}

/** The interface file must say what the step plan itself says (the client encrypted by the file). */
export function checkStepInterface(cached: StepInterface, actual: StepInterface, file: string): void {
  const fail = (at: (string | number)[], message: string) => malformed(file, IFACE, at, `${message} (delete the file to rebuild it from the plan)`);
  const [a, b] = [cached.input, actual.input];
  if (!layoutsEqual(a.layout, b.layout)) throw fail(['input', 'layout'], 'is not the step plan\'s input layout');
  if (a.level !== b.level) throw fail(['input', 'level'], `is ${a.level}, the step plan's input is at level ${b.level}`);
  if (a.scale !== b.scale) throw fail(['input', 'scale'], `is ${a.scale}, the step plan's input has scale ${b.scale}`);
  const have = new Set(cached.keys.galoisSteps);
  const missing = actual.keys.galoisSteps.filter((s) => !have.has(s));
  if (missing.length) throw fail(['keys', 'galoisSteps'], `lacks the step plan's rotation step(s) ${missing.join(', ')}`);
  if (actual.keys.relin && !cached.keys.relin) throw fail(['keys', 'relin'], 'is false, but the step plan relinearizes');
}

/** A step's cache bounds file; every name must be a cache (kv) output of the step plan. */
export function readCacheBounds(file: string, cacheOutputs: readonly string[]): Record<string, number> {
  let doc: unknown;
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FhecError(code ? `cannot read cache bounds (${code})` : `cache bounds are not valid JSON: ${(e as Error).message}`, { file });
  }
  const bounds = parseWith(cacheBoundsSchema, doc, file, 'cache bounds');
  for (const n of Object.keys(bounds)) {
    if (!cacheOutputs.includes(n)) throw malformed(file, 'cache bounds', [n], `is not a cache output of the step plan (its cache outputs: ${cacheOutputs.join(', ')})`);
  }
  return bounds;
}

export interface GenerationPlanSource {
  readonly params: CkksParameters;
  /** Largest number of positions a generation may process (prompt + generated - 1). */
  readonly maxContext: number;
  /** Prefill lengths available without compiling, ascending. */
  prefillLengths(): number[];
  /** The plan for a shape (compiling it first if the source compiles on demand). */
  load(shape: StepShape): StepPlan;
  /** The step's interface, if the source can give it without loading the plan (else the plan is loaded). */
  describe?(shape: StepShape): StepInterface;
}

export function shapeName(s: StepShape): string {
  return s.kind === 'prefill' ? `prefill-${s.tokens}` : `decode-${s.past}`;
}

/** The steps of a generation: a prefill of S <= n prompt tokens, then one decode per later position. */
export function generationSteps(source: Pick<GenerationPlanSource, 'prefillLengths'>, promptTokens: number, maxNewTokens: number): StepShape[] {
  const S = [...source.prefillLengths()].reverse().find((s) => s <= promptTokens) ?? promptTokens;
  const steps: StepShape[] = [{ kind: 'prefill', tokens: S }];
  // The last generated token is never fed back: positions up to n + N - 2.
  for (let P = S; P <= promptTokens + maxNewTokens - 2; P++) steps.push({ kind: 'decode', past: P });
  return steps;
}
