// The graph IR: a typed SSA dataflow graph imported from ONNX (and later raised to canonical ops).
// Values are defined once (graph input, constant, or node output); nodes are kept in topological order.

import type { WeightRecipe } from '../weights/recipe.js';
import type { DType } from '../dtype.js';
import type { Tensor } from '../tensor.js';
import type { ValueRange } from './range.js';

/** A dimension: a concrete size, a symbolic name (e.g. "sequence_length"), or unknown (null). */
export type Dim = number | string | null;
/** A shape; undefined when even the rank is unknown. */
export type Shape = Dim[] | undefined;

/**
 * A constant whose bytes may live elsewhere (an ONNX initializer, an external data file).
 * Structure (dtype, dims, size) is known without reading anything; load() reads the bytes.
 */
export interface LazyTensor {
  readonly dtype: DType;
  readonly dims: readonly number[];
  /** Where the bytes live, for printing and reports: e.g. `inline`, `external:model.onnx.data@1024+4096`. */
  readonly location: string;
  /** Bytes the values occupy in their storage form. */
  readonly byteLength: number;
  load(): Tensor;
  /**
   * How the values are computed from ONNX external data, as data (ir/weights/recipe.ts), when they are:
   * a plan can then reference the weight instead of holding it (`fhec compile --stream-weights`).
   */
  recipe?(): WeightRecipe | undefined;
}

/** A lazy tensor that is already in memory. */
export class MaterializedTensor implements LazyTensor {
  /** `location` says where the values came from: `inline` (in the model file) or `folded` (computed by a pass). */
  constructor(
    readonly tensor: Tensor,
    readonly location: string = 'inline',
  ) {}
  get dtype(): DType {
    return this.tensor.dtype;
  }
  get dims(): readonly number[] {
    return this.tensor.dims;
  }
  get byteLength(): number {
    return this.tensor.size * 8;
  }
  load(): Tensor {
    return this.tensor;
  }
}

export type AttrValue =
  | { kind: 'int'; value: number }
  | { kind: 'float'; value: number }
  | { kind: 'string'; value: string }
  | { kind: 'ints'; value: number[] }
  | { kind: 'floats'; value: number[] }
  | { kind: 'strings'; value: string[] }
  | { kind: 'tensor'; value: LazyTensor };

export interface Value {
  /** Unique name within the graph (the ONNX value name where there is one). */
  name: string;
  dtype: DType;
  shape: Shape;
  /** Set for constants (initializers, folded values). */
  constant?: LazyTensor;
  /** The node defining this value; undefined for graph inputs and constants. */
  producer?: Node;
  /** What the value held over a calibration set and the interval it is assumed to stay in (passes/calibrate). */
  range?: ValueRange;
}

export interface Node {
  /** Node name (ONNX node name, or a generated one). */
  name: string;
  op: string;
  /** Operator domain: '' for ai.onnx, 'com.microsoft', 'fhec' for canonical ops, ... */
  domain: string;
  /** Inputs; null for an omitted optional input. */
  inputs: (Value | null)[];
  outputs: Value[];
  attrs: Record<string, AttrValue>;
}

export interface Graph {
  name: string;
  /** Opset version per domain ('' = ai.onnx). */
  opsets: Record<string, number>;
  inputs: Value[];
  outputs: Value[];
  /** Constants: initializers and folded values, in definition order. */
  constants: Value[];
  nodes: Node[];
  /** Free-form facts about provenance (producer, ir_version, model path). */
  metadata: Record<string, string>;
}

export function opKey(node: Pick<Node, 'op' | 'domain'>): string {
  return node.domain === '' || node.domain === 'ai.onnx' ? node.op : `${node.domain}::${node.op}`;
}
