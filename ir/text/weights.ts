// Weight references in IR text. Large tensors are printed as `weight<"location">`, not inlined;
// the parser hands each reference to a resolver to get the bytes back, or leaves a placeholder
// whose load() explains that the text carries no weights.

import { FhecError } from '../errors.js';
import { byteSize } from '../dtype.js';
import type { DType } from '../dtype.js';
import type { Tensor } from '../tensor.js';
import { numel } from '../tensor.js';
import type { Graph, LazyTensor } from '../graph/types.js';
import { formatName, quote } from './literals.js';

/** What holds a referenced tensor: a constant value, or a tensor attribute of a node. */
export type WeightOwner =
  | { kind: 'constant'; value: string }
  | { kind: 'attribute'; node: string; attr: string; /** Position of the node in the graph's node list. */ nodeIndex: number };

/** A `weight<"location">` reference as read from IR text. */
export interface WeightRef {
  owner: WeightOwner;
  dtype: DType;
  dims: number[];
  /** The LazyTensor location string that was printed (e.g. `external:model.onnx.data@1024+4096`). */
  location: string;
}

export function describeOwner(owner: WeightOwner): string {
  return owner.kind === 'constant'
    ? formatName('%', owner.value)
    : `attribute ${quote(owner.attr)} of node ${quote(owner.node)}`;
}

/** Stands in for a tensor whose bytes the IR text did not carry. */
export class UnavailableTensor implements LazyTensor {
  readonly dtype: DType;
  readonly dims: readonly number[];
  readonly location: string;
  readonly byteLength: number;
  constructor(
    readonly ref: WeightRef,
    private readonly file?: string,
  ) {
    this.dtype = ref.dtype;
    this.dims = ref.dims;
    this.location = ref.location;
    this.byteLength = numel(ref.dims) * byteSize(ref.dtype);
  }
  load(): Tensor {
    throw new FhecError(
      `weights of ${describeOwner(this.ref.owner)} are not available in this IR text ` +
        `(location ${quote(this.location)}); parse it with a resolveWeight callback to attach them`,
      { file: this.file },
    );
  }
}

/**
 * A resolver that takes weights from `graph` (typically the graph the text was printed from):
 * constants by value name, tensor attributes by node name and attribute name.
 */
export function weightsFrom(graph: Graph): (ref: WeightRef) => LazyTensor {
  const constants = new Map(graph.constants.map((v) => [v.name, v.constant!]));
  const attrTensor = (owner: Extract<WeightOwner, { kind: 'attribute' }>): LazyTensor | undefined => {
    // The node at the same position, if it is the same node; else the first node of that name.
    const same = graph.nodes[owner.nodeIndex];
    const node = same?.name === owner.node ? same : graph.nodes.find((n) => n.name === owner.node);
    const a = node && Object.hasOwn(node.attrs, owner.attr) ? node.attrs[owner.attr] : undefined;
    return a?.kind === 'tensor' ? a.value : undefined;
  };
  return (ref) => {
    const t = ref.owner.kind === 'constant' ? constants.get(ref.owner.value) : attrTensor(ref.owner);
    if (!t) throw new FhecError(`no weights for ${describeOwner(ref.owner)} in the source graph`);
    return t;
  };
}
