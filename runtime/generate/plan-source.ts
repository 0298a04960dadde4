// What the evaluator needs from a generation plan: the compiled program for each step shape (a
// prefill of S tokens, or a decode of one token after P cached ones), and the calibrated bounds of
// the cached keys/values (for the mask of the cache refresh). The compiler side implements it
// (compiler/generation-plan.ts: compiled eagerly or on first use, and cached on disk).

import type { SlotLayout } from '../../ir/fhe/types.js';
import type { KeyRequest } from '../backend.js';
import type { CkksParameters } from '../../ir/ckks/params.js';
import type { ModelPlan } from '../model-session.js';

export type StepShape = { kind: 'prefill'; tokens: number } | { kind: 'decode'; past: number };

export interface StepPlan {
  shape: StepShape;
  plan: ModelPlan;
  /** Calibrated bound on |value| of each present key/value output, by the model's output name. */
  cacheBounds: Record<string, number>;
}

/** What the client must encrypt for a step. */
export interface StepInputSpec {
  layout: SlotLayout;
  level: number;
  scale: number;
}

/** A step plan's interface: the keys it needs and its embedding input, without its weights. */
export interface StepInterface {
  keys: KeyRequest;
  input: StepInputSpec;
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
