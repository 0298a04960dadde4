// Public API of the textual IR: print a graph, parse it back, re-attach weights.
export { printGraph, formatType, formatAttr, DEFAULT_INLINE_LIMIT } from './print.js';
export type { PrintOptions } from './print.js';
export { parseGraph, IrSyntaxError } from './parse.js';
export type { ParseOptions } from './parse.js';
export { UnavailableTensor, weightsFrom, describeOwner } from './weights.js';
export type { WeightRef, WeightOwner } from './weights.js';
export { formatRange, rangeFromEntries } from './range.js';
