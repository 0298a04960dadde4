// The sections `fhec compile` adds to an arithmetic plan (compiler/fhe-compile.ts): the tensor
// interface (for each graph input and output, its dtype, dims and the slot runs of the ciphertexts
// that carry it, see passes/fhe/lower/interface.ts) and the rotation-key plan. Checked against the
// program: every listed ciphertext is a program input/output and the other way round, no input
// ciphertext is packed by two tensors, every run stays within the slots and the tensor's elements,
// and every output element is read from some slot (else it would only fail after the whole run).

import { z } from 'zod';
import { FhecError } from '../../ir/errors.js';
import type { FheProgram } from '../../ir/fhe/types.js';
import { numel } from '../../ir/tensor.js';
import { int, interval, malformed, name, nonNegInt, nonNegNumber, parseWith, posNumber, type JsonPath } from './validate.js';

const WHAT = 'plan';

const packingSchema = z.strictObject({
  name: name(),
  dtype: z.literal('float32'),
  dims: z.array(nonNegInt()),
  ciphertexts: z.array(
    z.strictObject({
      /** The program's input/output name of this ciphertext. */
      fhe: name(),
      /** Flattened runs [slot, element, count, step, ...]. */
      runs: z.array(int()).refine((r) => r.length % 4 === 0, { error: 'expected runs [slot, element, count, step, ...] (a multiple of 4 integers)' }),
    }),
  ),
});

const planInterfaceSchema = z.strictObject({
  inputs: z.array(packingSchema),
  outputs: z.array(packingSchema),
});

/** What `fhec compile` planned the Galois keys for (the run replans from the budget; the rest is a record). */
const rotationKeysSchema = z.strictObject({
  budgetBytes: posNumber(),
  keySteps: z.array(int()),
  composed: z.boolean(),
  bytes: nonNegNumber(),
});

export type PlanInterfaceJson = z.infer<typeof planInterfaceSchema>;
export type TensorPackingJson = z.infer<typeof packingSchema>;

/** Per encrypted input, the interval the plan was compiled for (compiler/input-ranges.ts). */
const inputRangesSchema = z.record(z.string(), interval());

export interface ArithmeticSections {
  interface: PlanInterfaceJson;
  inputRanges: Record<string, [number, number]>;
  /** The key-memory budget the plan's Galois keys were planned for. */
  keyBudgetBytes?: number;
}

/** Every program input/output is in the interface and the other way round. */
function checkNames(program: FheProgram, iface: PlanInterfaceJson, file: string): void {
  for (const kind of ['input', 'output'] as const) {
    const inProgram = new Set(program.ops.filter((op) => op.kind === kind).map((op) => op.tensor!));
    const listed = (kind === 'input' ? iface.inputs : iface.outputs).flatMap((p) => p.ciphertexts.map((c) => c.fhe));
    const missing = [...inProgram].filter((n) => !listed.includes(n));
    const extra = listed.filter((n) => !inProgram.has(n));
    if (missing.length || extra.length) {
      throw new FhecError(
        `plan interface does not match the program's ${kind}s (${[...missing.map((n) => `'${n}' unlisted`), ...extra.map((n) => `'${n}' not in the program`)].join(', ')})`,
        { file, field: 'interface' },
      );
    }
  }
}

/** Runs within the slots and the tensor; for outputs, every element read from some slot. */
function checkRuns(iface: PlanInterfaceJson, slots: number, file: string): void {
  const packedBy = new Map<string, string>();
  for (const kind of ['inputs', 'outputs'] as const) {
    iface[kind].forEach((p, i) => {
      const at: JsonPath = ['interface', kind, i];
      if (iface[kind].findIndex((q) => q.name === p.name) !== i) throw malformed(file, WHAT, [...at, 'name'], `'${p.name}' is listed twice`);
      const n = numel(p.dims);
      const covered = new Uint8Array(n);
      p.ciphertexts.forEach((c, j) => {
        if (kind === 'inputs') {
          const prev = packedBy.get(c.fhe);
          if (prev !== undefined) throw malformed(file, WHAT, [...at, 'ciphertexts', j, 'fhe'], `input ciphertext '${c.fhe}' is already packed by '${prev}'`);
          packedBy.set(c.fhe, p.name);
        }
        for (let r = 0; r < c.runs.length; r += 4) {
          const [slot, elem, count, step] = [c.runs[r]!, c.runs[r + 1]!, c.runs[r + 2]!, c.runs[r + 3]!];
          const last = elem + (count - 1) * step;
          if (slot < 0 || count < 1 || slot + count > slots || elem < 0 || elem >= n || last < 0 || last >= n) {
            throw malformed(
              file,
              WHAT,
              [...at, 'ciphertexts', j, 'runs', r],
              `run [slot ${slot}, element ${elem}, count ${count}, step ${step}] is not within the ${slots} slots and the ${n} elements of [${p.dims.join(', ')}]`,
            );
          }
          for (let k = 0; k < count; k++) covered[elem + k * step] = 1;
        }
      });
      const missing = covered.indexOf(0);
      if (kind === 'outputs' && missing >= 0) throw malformed(file, WHAT, [...at, 'ciphertexts'], `element ${missing} of '${p.name}' is in no ciphertext`);
    });
  }
}

/** The interface and rotation-key sections of a parsed arithmetic plan, checked against its program. */
export function readArithmeticSections(doc: unknown, program: FheProgram, file: string): ArithmeticSections {
  const d = (doc ?? {}) as Record<string, unknown>;
  if (d.interface === undefined) {
    throw new FhecError('plan has no tensor interface (it was not written by `fhec compile`)', { file, field: 'interface' });
  }
  const iface = parseWith(planInterfaceSchema, d.interface, file, WHAT, ['interface']);
  checkNames(program, iface, file);
  checkRuns(iface, program.slots, file);
  const keys = parseWith(rotationKeysSchema.optional(), d.rotationKeys, file, WHAT, ['rotationKeys']);
  keys?.keySteps.forEach((s, i) => {
    if (Math.abs(s) >= program.slots) throw malformed(file, WHAT, ['rotationKeys', 'keySteps', i], `step ${s} is not below the slot count ${program.slots}`);
  });
  if (d.inputRanges === undefined) throw malformed(file, WHAT, ['inputRanges'], 'missing (the input ranges the plan was compiled for; recompile it with this fhec)');
  const inputRanges = parseWith(inputRangesSchema, d.inputRanges, file, WHAT, ['inputRanges']);
  for (const p of iface.inputs) if (!(p.name in inputRanges)) throw malformed(file, WHAT, ['inputRanges', p.name], 'missing (every encrypted input needs its range)');
  for (const n of Object.keys(inputRanges)) if (!iface.inputs.some((p) => p.name === n)) throw malformed(file, WHAT, ['inputRanges', n], 'not an input of the plan');
  const out: ArithmeticSections = { interface: iface, inputRanges };
  if (keys) out.keyBudgetBytes = keys.budgetBytes;
  return out;
}
