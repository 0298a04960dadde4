// What a plan records about one approximated nonlinearity: which FHE values carry its input and
// output, the slots with real data, and the interval it was fitted on. Written by the lowering
// (passes/fhe/lower-canonical), read by the compile report and the simulator's range monitor.

export interface ApproxProbeRecord {
  /** The canonical node. */
  op: string;
  /** What the approximation stands for, e.g. 'exp(s - s_diag)'. */
  role: string;
  fn: string;
  input: string;
  output: string;
  /** The fitted interval [lo, hi] (calibrated range widened by the margin). */
  interval: [number, number];
  /** The calibrated range before the margin (what the monitor compares against, with the margin). */
  observed: [number, number];
  margin: number;
  /** Valid slots as runs [start, count, ...]. */
  slots: number[];
  predictedMaxError: number;
  predictedMaxRelError: number;
  depth: number;
  /** The output value holds outputScale times the approximation (a constant folded into its coefficients); absent: 1. */
  outputScale?: number;
  /** The input value holds alpha x + beta (the approximation's map onto [-1, 1], folded into its producer); absent: x. */
  inputMap?: [number, number];
  /** Largest |output| for inputs inside the interval (max |p| over it, with a slack): seeds the proved mask bounds. */
  outputBound?: number;
}
