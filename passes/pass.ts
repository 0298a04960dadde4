// What a pass is. In the style of MLIR/Binaryen pass managers: a pass declares its name, the IR it
// reads and writes and its options, and returns a result the manager can verify, time and print.

/** The IR levels of the pipeline: imported ONNX graph, canonical transformer graph, CKKS FHE IR. */
export type IRKind = 'graph' | 'canonical' | 'fhe';

export type OptionType = 'int' | 'float' | 'string' | 'bool' | 'bindings';

export interface PassOptionSpec {
  name: string;
  type: OptionType;
  help: string;
  default?: unknown;
}

/** What a pass reports back: whether it changed the IR, counters, notes, and the error it introduces. */
export interface PassResult {
  changed: boolean;
  /** Counters such as `folded: 12`, `removed: 40`. */
  stats: Record<string, number>;
  /** Human-readable remarks (e.g. patterns left alone and why). */
  notes: string[];
  /**
   * Numerical error the pass introduces (exact rewrites report 0). Max absolute error bound
   * and how it was obtained, so precision can be accounted end to end.
   */
  error?: { maxAbs: number; how: string };
}

export interface Pass<IR, O = Record<string, unknown>> {
  readonly name: string;
  readonly summary: string;
  readonly reads: IRKind;
  readonly writes: IRKind;
  readonly options: readonly PassOptionSpec[];
  run(ir: IR, options: O): PassResult;
}

export function result(changed: boolean, stats: Record<string, number> = {}, notes: string[] = []): PassResult {
  return { changed, stats, notes, error: { maxAbs: 0, how: 'exact rewrite' } };
}
