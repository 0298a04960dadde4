// What the lowering records about every approximated nonlinearity: the FHE values of its input and
// output (in the unmanaged program), the slots that carry real data, and the calibrated interval. The
// compile report measures the observed approximation error from them; the run-time monitor (sim)
// checks that inputs stay inside the interval.

import type { ApproxProbeRecord } from '../../../ir/fhe/probe.js';
import type { FheValue } from '../../../ir/fhe/types.js';
import type { Approximation } from '../../approx/approximation.js';
import { approximationOutputBound } from '../refresh/refresh-bounds.js';

/**
 * Constants the lowering folded into an approximation's neighbours (each saves a level): the output
 * holds outputScale times the approximation, the input holds inputMap's alpha x + beta.
 */
export interface ProbeFolds {
  outputScale?: number;
  inputMap?: { alpha: number; beta: number };
}

/** The plan's probe record plus a human-readable description of the approximation. */
export interface ApproxProbe extends ApproxProbeRecord {
  describe: string;
}

export function slotRuns(keep: (slot: number) => boolean, slots: number): number[] {
  const runs: number[] = [];
  let s = 0;
  while (s < slots) {
    if (!keep(s)) {
      s++;
      continue;
    }
    let n = 0;
    while (s + n < slots && keep(s + n)) n++;
    runs.push(s, n);
    s += n;
  }
  return runs;
}

export function eachRunSlot(runs: readonly number[], f: (slot: number) => void): void {
  for (let i = 0; i < runs.length; i += 2) for (let j = 0; j < runs[i + 1]!; j++) f(runs[i]! + j);
}

export function makeProbe(
  op: string,
  role: string,
  approx: Approximation,
  input: FheValue,
  output: FheValue,
  observed: [number, number],
  margin: number,
  slots: number[],
  { outputScale = 1, inputMap }: ProbeFolds = {},
): ApproxProbe {
  const outputBound = approximationOutputBound(approx) * Math.abs(outputScale);
  return {
    op,
    role,
    fn: approx.fn,
    input: input.name,
    output: output.name,
    interval: approx.interval,
    observed,
    margin,
    slots,
    predictedMaxError: approx.maxError,
    predictedMaxRelError: approx.maxRelError,
    depth: approx.depth,
    ...(outputScale !== 1 ? { outputScale } : {}),
    ...(inputMap ? { inputMap: [inputMap.alpha, inputMap.beta] as [number, number] } : {}),
    describe: approx.describe(),
    ...(Number.isFinite(outputBound) ? { outputBound } : {}),
  };
}
