// The calibration pass: runs the reference interpreter over calibration inputs and records, for every
// value that matters (roles.ts: inputs of nonlinear ops, secret activations) and for the quantities
// inside softmax, attention and normalizations (probes.ts), streaming statistics (accumulator.ts).
// The result goes on the IR as `Value.range` (ir/graph/range.ts), with a stated safety margin.
//
// Several graphs may feed one Calibrator (the same model specialized to different sequence lengths):
// statistics are kept by value name, which specialization does not change.

import { isFloat } from '../../ir/dtype.js';
import { FhecError } from '../../ir/errors.js';
import type { ValueRange } from '../../ir/graph/range.js';
import type { Graph, Node, Value } from '../../ir/graph/types.js';
import { opKey } from '../../ir/graph/types.js';
import type { Tensor } from '../../ir/tensor.js';
import { runGraph } from '../../runtime/reference/interpreter.js';
import type { Pass, PassResult } from '../pass.js';
import { RangeAccumulator } from './accumulator.js';
import { probeFor, type Probe } from './probes.js';
import { defaultPlaintextInputs, nonlinearInputs, secretValues } from './roles.js';
import { DEFAULT_ACCURACY } from './sketch.js';

/** Default safety margin: each end of the observed interval moves 10% of its magnitude away from zero. */
export const DEFAULT_MARGIN = 0.1;

export interface CalibrateOptions {
  /** Relative safety margin (see ValueRange.lo); default DEFAULT_MARGIN. */
  margin?: number;
  /** Graph inputs that are plaintext (default: names containing "mask" or "position"). */
  plaintextInputs?: readonly string[];
  /** Relative accuracy of the percentiles (default 1%). */
  accuracy?: number;
}

/** One calibrated value, with why it was calibrated. */
export interface CalibratedValue {
  name: string;
  /** The producing op (`Softmax`, `fhec::attention`), or `input` for a graph input. */
  producer: string;
  /** The producing node's name ('' for graph inputs). */
  node: string;
  /** Depends on a secret input, so it is (part of) a ciphertext. */
  secret: boolean;
  /** Nonlinear ops reading it, by op (e.g. ['Softmax']): each needs an approximation on its interval. */
  nonlinearUses: string[];
  range: ValueRange;
}

/** What a graph tells the calibrator: which values to record and which nodes to probe. */
interface Plan {
  tracked: Set<Value>;
  secret: Set<Value>;
  nonlinearUses: Map<Value, string[]>;
  probes: Map<Node, Probe>;
  /** Values probes read, with how many probe nodes still need them. */
  probeReads: Map<Value, number>;
}

interface Entry {
  acc: RangeAccumulator;
  inner: Map<string, RangeAccumulator>;
  info: Omit<CalibratedValue, 'range'>;
}

export class Calibrator {
  readonly margin: number;
  readonly accuracy: number;
  private readonly entries = new Map<string, Entry>();
  private readonly plans = new WeakMap<Graph, Plan>();
  private order: string[] = [];
  private setCount = 0;
  private ms = 0;

  constructor(private readonly opts: CalibrateOptions = {}) {
    this.margin = opts.margin ?? DEFAULT_MARGIN;
    this.accuracy = opts.accuracy ?? DEFAULT_ACCURACY;
    if (!(this.margin >= 0) || !Number.isFinite(this.margin)) throw new FhecError(`margin must be a number >= 0, got ${this.margin}`, { field: '--margin' });
  }

  /** Input sets observed so far. */
  get sets(): number {
    return this.setCount;
  }

  /** Time spent in observe() (interpreter and statistics), in ms. */
  get elapsedMs(): number {
    return this.ms;
  }

  private plan(graph: Graph): Plan {
    let p = this.plans.get(graph);
    if (p) return p;
    const plain = this.opts.plaintextInputs ?? defaultPlaintextInputs(graph);
    const known = new Set(graph.inputs.map((v) => v.name));
    for (const n of plain) if (!known.has(n)) throw new FhecError(`'${n}' is not an input of the model (inputs: ${[...known].join(', ')})`, { field: 'plaintext inputs' });
    const secret = secretValues(graph, plain);
    const nonlinearUses = new Map<Value, string[]>();
    for (const node of graph.nodes) {
      for (const i of nonlinearInputs(node)) {
        const v = node.inputs[i]!;
        const uses = nonlinearUses.get(v) ?? [];
        if (!uses.includes(opKey(node))) uses.push(opKey(node));
        nonlinearUses.set(v, uses);
      }
    }
    const tracked = new Set<Value>();
    for (const v of [...graph.inputs, ...graph.nodes.flatMap((n) => n.outputs)]) {
      if (isFloat(v.dtype) && !v.constant && (secret.has(v) || nonlinearUses.has(v))) tracked.add(v);
    }
    const probes = new Map<Node, Probe>();
    const probeReads = new Map<Value, number>();
    for (const node of graph.nodes) {
      const probe = probeFor(node);
      const out = node.outputs[0];
      if (!probe || !out || !tracked.has(out)) continue;
      probes.set(node, probe);
      for (const i of probe.needs) {
        const v = node.inputs[i];
        if (v && !v.constant) probeReads.set(v, (probeReads.get(v) ?? 0) + 1);
      }
    }
    p = { tracked, secret, nonlinearUses, probes, probeReads };
    this.plans.set(graph, p);
    return p;
  }

  private entry(v: Value, plan: Plan): Entry {
    let e = this.entries.get(v.name);
    if (!e) {
      const node = v.producer;
      e = {
        acc: new RangeAccumulator(this.accuracy),
        inner: new Map(),
        info: {
          name: v.name,
          producer: node ? opKey(node) : 'input',
          node: node?.name ?? '',
          secret: plan.secret.has(v),
          nonlinearUses: plan.nonlinearUses.get(v) ?? [],
        },
      };
      this.entries.set(v.name, e);
      this.order.push(v.name);
    }
    return e;
  }

  /** Runs `graph` on one input set, adds what its values held to the statistics, returns the outputs. */
  observe(graph: Graph, inputs: Record<string, Tensor>, alsoOnNode?: (node: Node, outs: Tensor[]) => void): Record<string, Tensor> {
    const t0 = performance.now();
    const plan = this.plan(graph);
    // Register every tracked value up front so the table follows graph order whatever runs first.
    for (const v of plan.tracked) this.entry(v, plan);
    const held = new Map<Value, Tensor>();
    const remaining = new Map(plan.probeReads);
    const produced = (v: Value, t: Tensor) => {
      if (plan.tracked.has(v)) this.entry(v, plan).acc.addAll(t.data, t.dtype);
      if (remaining.has(v)) held.set(v, t);
    };
    for (const v of graph.inputs) if (inputs[v.name]) produced(v, inputs[v.name]!);
    const outputs = runGraph(graph, inputs, {
      onNode: (node, outs) => {
        alsoOnNode?.(node, outs);
        node.outputs.forEach((v, i) => produced(v, outs[i]!));
        const probe = plan.probes.get(node);
        if (!probe) return;
        const args = node.inputs.map((v) => (v ? (held.get(v) ?? (v.constant ? v.constant.load() : null)) : null));
        const e = this.entry(node.outputs[0]!, plan);
        probe.run(node, args, opsetOf(graph, node), (name, data, dtype) => {
          let acc = e.inner.get(name);
          if (!acc) e.inner.set(name, (acc = new RangeAccumulator(this.accuracy)));
          acc.addAll(data, dtype);
        });
        for (const i of probe.needs) {
          const v = node.inputs[i];
          if (!v || !remaining.has(v)) continue;
          const left = remaining.get(v)! - 1;
          if (left > 0) remaining.set(v, left);
          else {
            remaining.delete(v);
            held.delete(v);
          }
        }
      },
    });
    this.setCount++;
    this.ms += performance.now() - t0;
    return outputs;
  }

  /**
   * Every calibrated value, in the order of the first graph observed, with its range. Values that
   * never held an element (an empty KV cache in prefill) have no range and are left out.
   */
  results(): CalibratedValue[] {
    return this.order.flatMap((name) => {
      const e = this.entries.get(name)!;
      return observed(e) ? [{ ...e.info, range: this.rangeOf(e) }] : [];
    });
  }

  private rangeOf(e: Entry): ValueRange {
    const r = e.acc.toRange(this.margin);
    if (e.inner.size) r.inner = Object.fromEntries([...e.inner].map(([k, acc]) => [k, acc.toRange(this.margin)]));
    return r;
  }

  /** Sets `range` on every value of `graph` that was calibrated (by name); returns how many. */
  annotate(graph: Graph): number {
    let n = 0;
    for (const v of [...graph.inputs, ...graph.constants, ...graph.nodes.flatMap((node) => node.outputs)]) {
      const e = this.entries.get(v.name);
      if (!e || !observed(e)) continue;
      v.range = this.rangeOf(e);
      n++;
    }
    return n;
  }
}

function observed(e: Entry): boolean {
  return e.acc.count + e.acc.masked + e.acc.nan > 0;
}

function opsetOf(graph: Graph, node: Node): number | undefined {
  const d = node.domain === 'ai.onnx' ? '' : node.domain;
  return graph.opsets[d];
}

/** Calibrates `graph` on `sets` and annotates it; returns the calibrated values. */
export function calibrate(graph: Graph, sets: Iterable<Record<string, Tensor>>, opts: CalibrateOptions = {}): CalibratedValue[] {
  const c = new Calibrator(opts);
  for (const s of sets) c.observe(graph, s);
  c.annotate(graph);
  return c.results();
}

export interface CalibratePassOptions {
  /** Input sets by graph input name (programmatic only: a pipeline string cannot carry tensors). */
  sets: Record<string, Tensor>[];
  margin: number;
  accuracy: number;
}

export const calibratePass: Pass<Graph, CalibratePassOptions> = {
  name: 'calibrate',
  summary: 'record value ranges over calibration inputs (reference interpreter) and annotate the IR',
  reads: 'graph',
  writes: 'graph',
  options: [
    { name: 'sets', type: 'string', help: 'calibration input sets: an array of {input name: Tensor} (programmatic only)', default: [] },
    { name: 'margin', type: 'float', help: 'relative safety margin of each interval', default: DEFAULT_MARGIN },
    { name: 'accuracy', type: 'float', help: 'relative accuracy of the percentiles', default: DEFAULT_ACCURACY },
  ],
  run(graph, { sets, margin, accuracy }): PassResult {
    if (!Array.isArray(sets) || sets.length === 0) throw new FhecError('the calibrate pass needs at least one input set (option sets)');
    const c = new Calibrator({ margin, accuracy });
    for (const s of sets) c.observe(graph, s);
    const annotated = c.annotate(graph);
    const inner = c.results().reduce((n, r) => n + Object.keys(r.range.inner ?? {}).length, 0);
    return {
      changed: annotated > 0,
      stats: { sets: c.sets, values: annotated, inner },
      notes: [`ranges widened by a margin of ${margin}; percentiles within ${accuracy * 100}% relative error`],
      error: { maxAbs: 0, how: 'annotates ranges only' },
    };
  },
};
