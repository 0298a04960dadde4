// Client-aided refresh: the evaluator masks, the key holder re-encrypts at the top level, the evaluator
// unmasks. Explicit byte messages between the two, so traffic is counted.
export * from './messages.js';
export * from './mask.js';
export * from './key-holder.js';
export * from './refresher.js';
export * from './traffic.js';
export * from './schedule.js';
export * from './audit.js';
