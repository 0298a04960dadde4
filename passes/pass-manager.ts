// Runs a pipeline of passes over one IR: verifies between passes (when asked), times each pass,
// prints the IR after chosen passes, and collects every pass's result into a report.

import { FhecError } from '../ir/errors.js';
import type { Pass, PassResult } from './pass.js';
import { parsePipeline, type PipelineStep } from './pipeline.js';

export interface PassRun {
  pass: string;
  options: Record<string, unknown>;
  ms: number;
  result: PassResult;
}

export interface PassManagerOptions<IR> {
  /** Checks the IR's invariants; run before the first pass and after every pass when verifyEach. */
  verify?: (ir: IR) => void;
  verifyEach?: boolean;
  /** Prints the IR (textual syntax) for --print-after. */
  print?: (ir: IR) => string;
  /** Pass names after which to print, or 'all'. */
  printAfter?: ReadonlySet<string> | 'all';
  /** Where printed IR goes (default: stderr). */
  emit?: (header: string, text: string) => void;
}

export class PassManager<IR> {
  private readonly steps: { pass: Pass<IR, any>; options: Record<string, unknown> }[] = [];

  constructor(
    private readonly registry: ReadonlyMap<string, Pass<IR, any>>,
    private readonly opts: PassManagerOptions<IR> = {},
  ) {}

  add(pass: string | Pass<IR, any>, options: Record<string, unknown> = {}): this {
    const p = typeof pass === 'string' ? this.registry.get(pass) : pass;
    if (!p) {
      throw new FhecError(`unknown pass '${String(pass)}' (known: ${[...this.registry.keys()].join(', ')})`);
    }
    this.steps.push({ pass: p, options: withDefaults(p, options) });
    return this;
  }

  /** Add the steps of a pipeline string such as `specialize{sequence_length=16},infer-shapes,dce`. */
  addPipeline(text: string | PipelineStep[]): this {
    for (const step of typeof text === 'string' ? parsePipeline(text) : text) this.add(step.pass, step.options);
    return this;
  }

  get pipeline(): string {
    return this.steps.map((s) => s.pass.name).join(',');
  }

  run(ir: IR): PassRun[] {
    const runs: PassRun[] = [];
    if (this.opts.verify) this.opts.verify(ir);
    for (const { pass, options } of this.steps) {
      const t0 = performance.now();
      const result = pass.run(ir, options);
      const ms = performance.now() - t0;
      runs.push({ pass: pass.name, options, ms, result });
      if (this.opts.verifyEach && this.opts.verify) {
        try {
          this.opts.verify(ir);
        } catch (e) {
          if (e instanceof FhecError) throw new FhecError(`IR invalid after pass '${pass.name}': ${e.format()}`);
          throw e;
        }
      }
      const pa = this.opts.printAfter;
      if (this.opts.print && pa && (pa === 'all' || pa.has(pass.name))) {
        const emit = this.opts.emit ?? ((h: string, t: string) => process.stderr.write(`${h}\n${t}\n`));
        emit(`// -----// IR after ${pass.name} //----- //`, this.opts.print(ir));
      }
    }
    return runs;
  }
}

function withDefaults(pass: Pass<unknown, unknown>, options: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const spec of pass.options) if (spec.default !== undefined) out[spec.name] = spec.default;
  const bindingsSpec = pass.options.find((s) => s.type === 'bindings');
  for (const [k, v] of Object.entries(options)) {
    const spec = pass.options.find((s) => s.name === k);
    if (!spec && bindingsSpec) {
      // Free-form `name=value` pairs go to the pass's bindings option (e.g. specialize{seq=16}).
      const bag = { ...((out[bindingsSpec.name] as Record<string, number>) ?? {}) };
      bag[k] = coerce(pass.name, k, 'int', v) as number;
      out[bindingsSpec.name] = bag;
      continue;
    }
    if (!spec) {
      throw new FhecError(`pass '${pass.name}' has no option '${k}' (options: ${pass.options.map((s) => s.name).join(', ') || 'none'})`);
    }
    out[k] = coerce(pass.name, spec.name, spec.type, v);
  }
  return out;
}

function coerce(pass: string, name: string, type: string, v: unknown): unknown {
  if (typeof v !== 'string') return v;
  switch (type) {
    case 'int': case 'float': {
      const n = Number(v);
      if (!Number.isFinite(n) || (type === 'int' && !Number.isInteger(n))) {
        throw new FhecError(`option '${name}' of pass '${pass}' must be ${type === 'int' ? 'an integer' : 'a number'}, got '${v}'`);
      }
      return n;
    }
    case 'bool':
      return v === '' || v === 'true' || v === '1';
    default:
      return v;
  }
}

/** One line per pass: name, time, counters. */
export function formatPassRuns(runs: PassRun[]): string {
  return runs
    .map((r) => {
      const stats = Object.entries(r.result.stats).map(([k, v]) => `${k}=${v}`).join(' ');
      return `${r.pass.padEnd(28)} ${r.ms.toFixed(1).padStart(8)} ms  ${stats}`;
    })
    .join('\n');
}
