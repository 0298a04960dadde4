// The two shapes a generator runs a decoder model at, from the same model file:
//  - prefill: S prompt tokens, no past (past length 0, total S);
//  - decode: one new token after P cached ones (sequence 1, past P, total P + 1).
// The symbolic dims are found by the role of the inputs and outputs that carry them (input_ids /
// position_ids: [batch, sequence]; attention_mask: [batch, total]; past_key_values.* / past_key* /
// past_value*: [batch, kv heads, past, head]; present*: [batch, kv heads, total, head]), so exporters'
// different dim names all work. Batch is 1.

import { FhecError } from '../../ir/errors.js';
import type { Graph, Value } from '../../ir/graph/types.js';
import { result, type Pass } from '../pass.js';
import { specializePass } from '../graph/specialize.js';

export type GeneratorShape = { kind: 'prefill'; sequence: number } | { kind: 'decode'; past: number };

const isPast = (v: Value) => /past/i.test(v.name) && v.shape?.length === 4;
const isPresent = (v: Value) => /present/i.test(v.name) && v.shape?.length === 4;

/** Whether the model takes a KV cache (past key/value inputs). */
export function hasKvCache(graph: Graph): boolean {
  return graph.inputs.some(isPast);
}

/** Bindings of the model's symbolic dims for a prefill or decode run. */
export function generatorBindings(graph: Graph, shape: GeneratorShape): Record<string, number> {
  const cache = hasKvCache(graph);
  if (shape.kind === 'decode' && !cache) {
    throw new FhecError(`decode needs a KV cache, but the model has no past key/value inputs (inputs: ${graph.inputs.map((v) => v.name).join(', ')})`, { field: '--decode' });
  }
  const n = shape.kind === 'prefill' ? shape.sequence : shape.past;
  if (!Number.isInteger(n) || n < (shape.kind === 'prefill' ? 1 : 0)) {
    throw new FhecError(`${shape.kind === 'prefill' ? 'prefill length must be >= 1' : 'past length must be >= 0'}, got ${n}`, { field: `--${shape.kind}` });
  }
  const seq = shape.kind === 'prefill' ? shape.sequence : 1;
  const past = shape.kind === 'prefill' ? 0 : shape.past;
  const want: Record<string, number> = {};
  const bind = (d: unknown, size: number) => {
    if (typeof d !== 'string') return;
    if (d in want && want[d] !== size) throw new FhecError(`dim '${d}' would be both ${want[d]} and ${size}`);
    want[d] = size;
  };
  for (const v of [...graph.inputs, ...graph.outputs]) {
    const s = v.shape;
    if (!s) continue;
    bind(s[0], 1);
    if (isPast(v)) bind(s[2], past);
    else if (isPresent(v)) bind(s[2], past + seq);
    else if (/attention_mask/i.test(v.name) && s.length === 2) bind(s[1], past + seq);
    else if (s.length >= 2) bind(s[1], seq);
  }
  return want;
}

export interface SpecializeGeneratorOptions {
  /** Prompt length S (prefill); 0 = not this mode. */
  prefill: number;
  /** Past length P (decode of one token); -1 = not this mode. */
  decode: number;
}

export const specializeGeneratorPass: Pass<Graph, SpecializeGeneratorOptions> = {
  name: 'specialize-generator',
  summary: 'bind the dims for prefill (S tokens, no past) or decode (1 token after P)',
  reads: 'graph',
  writes: 'graph',
  options: [
    { name: 'prefill', type: 'int', help: 'prompt length S', default: 0 },
    { name: 'decode', type: 'int', help: 'past length P', default: -1 },
  ],
  run(graph, opts) {
    const modes = (opts.prefill > 0 ? 1 : 0) + (opts.decode >= 0 ? 1 : 0);
    if (modes !== 1) throw new FhecError('specialize-generator needs exactly one of prefill=S or decode=P');
    const shape: GeneratorShape = opts.prefill > 0 ? { kind: 'prefill', sequence: opts.prefill } : { kind: 'decode', past: opts.decode };
    const bindings = generatorBindings(graph, shape);
    const r = specializePass.run(graph, { bindings });
    return result(r.changed, { ...r.stats, ...Object.fromEntries(Object.entries(bindings).map(([k, v]) => [`dim:${k}`, v])) });
  },
};

/** The shape chosen by CLI flags `--prefill S` / `--decode P` (at most one), or undefined. */
export function generatorShapeFromFlags(prefill: string | undefined, decode: string | undefined): GeneratorShape | undefined {
  if (prefill !== undefined && decode !== undefined) throw new FhecError('give either --prefill or --decode, not both');
  const num = (s: string, flag: string) => {
    if (!/^\d+$/.test(s)) throw new FhecError(`${flag} expects a non-negative integer, got '${s}'`, { field: flag });
    return Number(s);
  };
  if (prefill !== undefined) return { kind: 'prefill', sequence: num(prefill, '--prefill') };
  if (decode !== undefined) return { kind: 'decode', past: num(decode, '--decode') };
  return undefined;
}
