// Decode plans by buckets of past length (compiler/generation-plan.ts): a bucket's plan is compiled for
// its longest past and serves each shorter past P with P's instance beside it (NAME.past-P.json.gz):
// the past-dependent constants' values at P and the cache inputs/outputs' layouts at P
// (ir/fhe/past-instance.ts). Instantiating gives a model plan that is, to the evaluator and the key
// holder, a decode plan for P: the same checks (checkModelSection) hold, and the refresh schedule, cache
// carries and masks follow from it as from any step plan.

import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { z } from 'zod';
import { FhecError } from '../../ir/errors.js';
import { programAtPast, type PastInstance } from '../../ir/fhe/past-instance.js';
import type { FheConstantData, SlotLayout } from '../../ir/fhe/types.js';
import type { ModelPlan } from '../model-session.js';
import { checkModelSection } from '../plan/model-schema.js';
import { name, parseWith, posInt, slotLayoutSchema } from '../plan/validate.js';
import { writeFileAtomic } from '../plan/files.js';

const WHAT = 'past instance';

const instanceSchema = z.strictObject({
  past: posInt(),
  /** Float64 little-endian values, base64, by constant name. */
  constants: z.record(name(), z.string()),
  layouts: z.record(name(), slotLayoutSchema),
});

/** Writes an instance (gzipped JSON: masks and RoPE tables repeat every block, so they compress well). */
export function writePastInstance(file: string, inst: PastInstance): void {
  const constants: Record<string, string> = {};
  for (const [n, d] of inst.constants) {
    if (d.kind !== 'dense') throw new Error(`internal: past-dependent constant @${n} is not dense`);
    constants[n] = Buffer.from(d.values.buffer, d.values.byteOffset, d.values.byteLength).toString('base64');
  }
  const doc = { past: inst.past, constants, layouts: Object.fromEntries(inst.layouts) };
  writeFileAtomic(file, zlib.gzipSync(JSON.stringify(doc)));
}

export function readPastInstance(file: string, slots: number): PastInstance {
  let doc: unknown;
  try {
    doc = JSON.parse(zlib.gunzipSync(fs.readFileSync(file)).toString('utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FhecError(code === 'ENOENT' ? 'the decode plan for this past is missing its instance file (recompile the generation plan)' : `cannot read ${WHAT}: ${(e as Error).message}`, { file });
  }
  const d = parseWith(instanceSchema, doc, file, WHAT);
  const constants = new Map<string, FheConstantData>();
  for (const [n, b64] of Object.entries(d.constants)) {
    const bytes = Buffer.from(b64, 'base64');
    if (bytes.length !== slots * 8) throw new FhecError(`${WHAT}: constant @${n} has ${bytes.length / 8} values, the plan has ${slots} slots`, { file, field: `constants.${n}` });
    const values = new Float64Array(slots);
    new Uint8Array(values.buffer).set(bytes);
    constants.set(n, { kind: 'dense', values });
  }
  return { past: d.past, constants, layouts: new Map<string, SlotLayout>(Object.entries(d.layouts)) };
}

/** The bucket plan `mp` as a decode plan for the instance's past; checked like any loaded model plan. */
export function modelPlanAtPast(mp: ModelPlan, inst: PastInstance, file: string): ModelPlan {
  if (!('decode' in mp.meta.mode)) throw new FhecError('a past instance applies to a decode plan only', { file });
  if (inst.past > mp.meta.mode.decode) throw new FhecError(`past ${inst.past} is beyond the plan's bucket (it decodes after at most ${mp.meta.mode.decode})`, { file });
  const program = programAtPast(mp.plan.program, inst);
  const layout = (fhe: string, l: SlotLayout) => inst.layouts.get(fhe) ?? l;
  const P = inst.past;
  const cacheNames = new Set(mp.meta.cacheInputs.map((c) => c.name));
  const meta = {
    ...mp.meta,
    mode: { decode: P },
    inputs: mp.meta.inputs.map((i) => (cacheNames.has(i.name) && i.dims.length === 4 ? { ...i, dims: [i.dims[0]!, i.dims[1]!, P, i.dims[3]!] } : i)),
    cacheInputs: mp.meta.cacheInputs.map((c) => ({ ...c, layout: layout(c.fhe, c.layout) })),
    outputs: mp.meta.outputs.map((o) => {
      if (!o.kv) return o;
      const tokens = P + mp.meta.tokens;
      return { ...o, tokens, dims: [o.dims[0]!, o.dims[1]!, tokens, o.dims[3]!], blocks: o.blocks.map((b) => ({ ...b, layout: layout(b.fhe, b.layout) })) };
    }),
  };
  checkModelSection(meta, program, file);
  return { ...mp, meta, plan: { ...mp.plan, program } };
}
