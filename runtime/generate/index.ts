// Encrypted generation: a client (secret key, tokenizer, embeddings, key holder) and an evaluator
// (public keys, plans, encrypted KV cache) that exchange only byte messages.
export * from './messages.js';
export * from './transport.js';
export * from './relayout.js';
export * from './cache-refresh.js';
export * from './plan-source.js';
export * from './manifest.js';
export * from './tokenizer.js';
export * from './evaluator.js';
export * from './client.js';
export * from './session.js';
export * from './hf-tokenizer.js';
