// The canonical transformer op set (domain `fhec`): definitions, inference rules (registered on import),
// and the canonical-graph verifier.
export * from './ops.js';
export * from './verify.js';
