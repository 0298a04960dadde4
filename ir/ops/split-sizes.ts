// How ONNX Split cuts its axis: one rule shared by shape inference and the reference kernel, so the
// shapes the compiler plans with are the shapes the interpreter produces.

/**
 * The part sizes of a Split node along an axis of length `dim`, or a message saying why the node is
 * malformed. `given` are the explicit sizes (input `split` since opset 13, attribute `split` before);
 * without them the axis is cut into `parts` equal chunks: evenly before opset 18, and from opset 18
 * (`num_outputs`) in chunks of ceil(dim / parts) with a smaller, non-empty last chunk.
 */
export function splitSizes(dim: number, outputs: number, given: readonly number[] | undefined, parts: number, opset: number): number[] | string {
  if (given) {
    const sizes = [...given];
    if (sizes.length !== outputs) return `split has ${sizes.length} sizes [${sizes.join(', ')}] for ${outputs} outputs`;
    if (sizes.some((s) => !Number.isInteger(s) || s < 0)) return `split sizes [${sizes.join(', ')}] must be non-negative integers`;
    const total = sizes.reduce((a, b) => a + b, 0);
    if (total !== dim) return `split sizes [${sizes.join(', ')}] add up to ${total}, not to the axis length ${dim}`;
    return sizes;
  }
  if (parts !== outputs) return `num_outputs ${parts} differs from the node's ${outputs} outputs`;
  if (parts <= 0) return 'Split needs at least one output';
  if (opset < 18) {
    if (dim % parts !== 0) return `axis length ${dim} does not split into ${parts} equal parts (give split sizes)`;
    return new Array<number>(parts).fill(dim / parts);
  }
  const chunk = Math.ceil(dim / parts);
  const last = dim - chunk * (parts - 1);
  if (last < 0 || (last === 0 && dim > 0)) return `axis length ${dim} leaves no last chunk for num_outputs ${parts} (chunks of ${chunk})`;
  return [...new Array<number>(parts - 1).fill(chunk), last];
}
