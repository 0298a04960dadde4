// `fhec compile --report` for canonical models: parameters and refreshes, per op the depth, rotations
// and approximations with their predicted error (from the fit on the interval) next to the error
// observed on calibration windows (the approximated values evaluated without CKKS noise, i.e. the
// simulator's noise-free twin, against the exact function at the same inputs), per layer the
// multiplicative depth and rotation count, and optionally logit errors of full sim runs.


import type { Tensor } from '../ir/tensor.js';
import { targetFunction } from '../passes/approx/functions.js';
import { evaluatePlain } from '../ir/fhe/plain-eval.js';
import { describeParameters } from '../ir/ckks/params.js';
import { embedTokens, modelProgramInputs } from '../runtime/model-session.js';
import type { CompiledModel } from './model-plan.js';

export interface ProbeReport {
  op: string;
  role: string;
  interval: [number, number];
  depth: number;
  predictedMaxError: number;
  /** Max |approx(x) - f(x)| over the probe's slots on the calibration windows (no CKKS noise). */
  observedMaxError: number;
  /** Observed input range on those windows. */
  observedInput: [number, number];
  /** Instances merged into this row (e.g. one exp per key offset). */
  instances: number;
}

export interface LayerReport {
  layer: string;
  depth: number;
  rotations: number;
}

export interface ModelReport {
  parameters: string;
  levels: number;
  refreshes: number;
  greedyRefreshes: number;
  opsUnmanaged: number;
  opsManaged: number;
  ops: { name: string; op: string; depth: number; rotations: number }[];
  layers: LayerReport[];
  probes: ProbeReport[];
  windows: number;
}

function tableOf(c: CompiledModel, ids: ArrayLike<number>): Float64Array {
  const e = c.lowered.embedding;
  return embedTokens(new Float32Array(e.table.load().data), e.table.dims[0]!, e.table.dims[1]!, ids);
}

/** Observed approximation errors on up to `windows` calibration sets. */
export function modelReport(c: CompiledModel, windows = 4): ModelReport {
  const rows = new Map<string, ProbeReport>();
  for (const p of c.lowered.probes) {
    const key = `${p.op}|${p.role}`;
    const r = rows.get(key);
    if (r) r.instances++;
    else rows.set(key, { op: p.op, role: p.role, interval: p.interval, depth: p.depth, predictedMaxError: p.predictedMaxError, observedMaxError: 0, observedInput: [Infinity, -Infinity], instances: 1 });
  }
  const sets = c.calibrationSets.slice(0, windows);
  const ids = c.lowered.embedding.ids;
  for (const s of sets) {
    const t: Tensor | undefined = s[ids];
    if (!t) continue;
    const inputs = modelProgramInputs(c.lowered.embedding, tableOf(c, t.data), c.lowered.cacheInputs, (n) => s[n]?.data, 'a calibration set', c.lowered.past);
    const ev = evaluatePlain(c.lowered.program, inputs);
    for (const p of c.lowered.probes) {
      const x = ev.values.get(p.input)!;
      const y = ev.values.get(p.output)!;
      const scale = p.outputScale ?? 1;
      const [alpha, beta] = p.inputMap ?? [1, 0];
      const f = targetFunction(p.fn).f;
      const r = rows.get(`${p.op}|${p.role}`)!;
      for (let i = 0; i < p.slots.length; i += 2) {
        for (let j = 0; j < p.slots[i + 1]!; j++) {
          const u = p.slots[i]! + j;
          const xu = (x[u]! - beta) / alpha;
          const e = Math.abs(y[u]! / scale - f(xu));
          if (e > r.observedMaxError) r.observedMaxError = e;
          if (xu < r.observedInput[0]) r.observedInput[0] = xu;
          if (xu > r.observedInput[1]) r.observedInput[1] = xu;
        }
      }
    }
  }
  // Per decoder layer: depth from the layer's input to its output, and its rotations.
  const layers = new Map<string, { first: number; last: number; rotations: number }>();
  let prevDepth = 0;
  for (const o of c.lowered.ops) {
    const m = /layers\.(\d+)\//.exec(o.name);
    if (m) {
      const l = layers.get(m[1]!) ?? { first: prevDepth, last: 0, rotations: 0 };
      l.last = Math.max(l.last, o.depth);
      l.rotations += o.rotations;
      layers.set(m[1]!, l);
    } else prevDepth = Math.max(prevDepth, o.depth);
    if (m && o.op === 'add') prevDepth = o.depth;
  }

  return {
    parameters: describeParameters(c.params),
    levels: c.params.bitSizes.length - 2,
    refreshes: c.refreshes,
    greedyRefreshes: c.greedyRefreshes,
    opsUnmanaged: c.lowered.program.ops.length,
    opsManaged: c.managed.ops.length,
    ops: c.lowered.ops.map((o) => ({ name: o.name, op: o.op, depth: o.depth, rotations: o.rotations })),
    layers: [...layers.entries()].map(([k, l]) => ({ layer: `layers.${k}`, depth: l.last - l.first, rotations: l.rotations })),
    probes: [...rows.values()],
    windows: sets.length,
  };
}

const e3 = (x: number) => x.toExponential(2);

export function formatModelReport(r: ModelReport): string[] {
  const lines: string[] = [];
  lines.push(`parameters   ${r.parameters}`);
  lines.push(`refreshes    ${r.refreshes} (greedy baseline ${r.greedyRefreshes}), refreshes at level >= 1`);
  lines.push(`ops          ${r.opsUnmanaged} lowered, ${r.opsManaged} after scale management`);
  for (const l of r.layers) lines.push(`decoder ${l.layer}: multiplicative depth ${l.depth}, rotations ${l.rotations}`);
  lines.push('');
  lines.push(`${'op'.padEnd(66)}kind        depth  rotations`);
  for (const o of r.ops) lines.push(`${o.name.padEnd(65)} ${o.op.padEnd(12)}${String(o.depth).padStart(5)}${String(o.rotations).padStart(11)}`);
  lines.push('');
  lines.push(`approximations: predicted max error on the interval vs observed on ${r.windows} calibration window(s) (noise-free twin of sim)`);
  lines.push(`${'op'.padEnd(66)}approximation              interval               depth  predicted   observed   input seen`);
  for (const p of r.probes) {
    lines.push(
      `${p.op.padEnd(65)} ${`${p.role}${p.instances > 1 ? ` x${p.instances}` : ''}`.padEnd(27)}${`[${p.interval[0].toPrecision(4)}, ${p.interval[1].toPrecision(4)}]`.padEnd(23)}` +
        `${String(p.depth).padStart(5)}  ${e3(p.predictedMaxError).padStart(9)}  ${e3(p.observedMaxError).padStart(9)}   [${p.observedInput[0].toPrecision(4)}, ${p.observedInput[1].toPrecision(4)}]`,
    );
  }
  return lines;
}
