// Turns a calibration file into input sets for the calibration pass:
//  - `.txt`: text, tokenized with the model's Hugging Face tokenizer (`tokenizer`, a folder) or else as
//    UTF-8 bytes (the vocabulary of the shared byte models; other vocabularies are refused without a
//    tokenizer), cut into windows of `window` tokens every `stride` tokens; each window fills the model's
//    inputs by name: input_ids, attention_mask (ones), position_ids (0..n-1), and empty KV caches
//    (past_key_values.*, past_key, past_value with past length 0);
//  - `.json`: tensor JSON, one set `{"inputs": {...}}` or several `{"sets": [{"inputs": {...}}, ...]}`.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { isFloat, isInteger } from '../ir/dtype.js';
import { FhecError } from '../ir/errors.js';
import type { Graph, Value } from '../ir/graph/types.js';
import { Tensor } from '../ir/tensor.js';
import { parseJsonText, tensorsFromJson } from '../ir/tensor-json.js';
import { bindingsFromInputs } from './model-inputs.js';
import { tokenizerFor } from '../runtime/generate/tokenizer.js';

export interface CalibrationSet {
  /** `window 3 (bytes 128..191)` or `sets[2]`: for messages. */
  name: string;
  inputs: Record<string, Tensor>;
  /** Symbolic dims the inputs bind (sequence_length, past_sequence_length, ...). */
  bindings: Record<string, number>;
}

export interface WindowOptions {
  /** Tokens per window (default 64, model A's training context). */
  window?: number;
  /** Tokens between window starts (default: the window, so windows do not overlap). */
  stride?: number;
  /** Use at most this many windows (default: all). */
  maxWindows?: number;
  /** The model's Hugging Face tokenizer folder (default: UTF-8 bytes). */
  tokenizer?: string;
}

const DEFAULT_WINDOW = 64;
/** The byte tokenizer's vocabulary: one token per byte value. */
const BYTE_VOCAB = 256;

/**
 * Start offsets of the windows over `length` tokens: full windows only (a shorter tail would be a
 * different sequence length), except that a text shorter than one window is one window.
 */
export function windowStarts(length: number, opts: WindowOptions = {}): { start: number; length: number }[] {
  const window = opts.window ?? DEFAULT_WINDOW;
  const stride = opts.stride ?? window;
  const max = opts.maxWindows ?? Infinity;
  for (const [name, v] of [['--window', window], ['--stride', stride]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new FhecError(`${name} must be an integer >= 1, got ${v}`, { field: name });
  }
  if (!(max >= 1)) throw new FhecError(`--max-windows must be >= 1, got ${max}`, { field: '--max-windows' });
  if (length === 0) return [];
  if (length < window) return [{ start: 0, length }];
  const out: { start: number; length: number }[] = [];
  for (let s = 0; s + window <= length && out.length < max; s += stride) out.push({ start: s, length: window });
  return out;
}

/** The vocabulary size the model's token input indexes, or undefined if it cannot be told. */
function modelVocabSize(graph: Graph, ids: Value): number | undefined {
  // The embedding lookup: Gather(table [V, D], ids) or fhec::embedding(ids, table), maybe behind casts.
  const seen = new Set<Value>([ids]);
  const queue = [ids];
  while (queue.length) {
    const v = queue.shift()!;
    for (const n of graph.nodes) {
      if (!n.inputs.includes(v)) continue;
      const onnx = n.domain === '' || n.domain === 'ai.onnx';
      const table = onnx && n.op === 'Gather' && n.inputs[1] === v ? n.inputs[0] : n.domain === 'fhec' && n.op === 'embedding' ? n.inputs[1] : undefined;
      if (table?.constant && table.constant.dims.length === 2) return table.constant.dims[0];
      if (onnx && ['Cast', 'Identity', 'Reshape', 'Unsqueeze', 'Squeeze', 'Flatten'].includes(n.op) && n.inputs[0] === v) {
        for (const o of n.outputs) if (!seen.has(o)) (seen.add(o), queue.push(o));
      }
    }
  }
  // Else the last dim of the logits.
  const logits = graph.outputs.find((v) => v.name === 'logits') ?? graph.outputs[0];
  const last = logits?.shape?.[logits.shape.length - 1];
  return typeof last === 'number' ? last : undefined;
}

function isPast(name: string): boolean {
  return /^past_key_values[.]|^past_(key|value)s?\b|past/i.test(name);
}

/** Concrete dims for an input: batch-like symbolic dims 1, other symbolic dims `other`. */
function concreteDims(v: Value, other: number, file: string): number[] {
  if (!v.shape) throw new FhecError(`input '${v.name}' has an unknown rank, so it cannot be filled from text; use a tensor-JSON calibration file`, { file });
  return v.shape.map((d, i) => {
    if (typeof d === 'number') return d;
    if (typeof d === 'string' && /batch/i.test(d)) return 1;
    if (d === null && i === 0) return 1;
    return other;
  });
}

/** The model inputs for one window of tokens (batch 1, empty past), by the usual input names. */
export function inputsForTokens(graph: Graph, tokens: readonly number[], file: string): Record<string, Tensor> {
  const n = tokens.length;
  const out: Record<string, Tensor> = {};
  for (const v of graph.inputs) {
    const rank = v.shape?.length ?? 2;
    const seqDims = rank === 1 ? [n] : [1, n];
    if (v.name === 'input_ids') out[v.name] = Tensor.from(v.dtype, seqDims, tokens);
    else if (v.name === 'attention_mask') out[v.name] = Tensor.from(v.dtype, seqDims, new Array<number>(n).fill(1));
    else if (v.name === 'position_ids') out[v.name] = Tensor.from(v.dtype, seqDims, tokens.map((_, i) => i));
    else if (isPast(v.name) && isFloat(v.dtype)) out[v.name] = Tensor.zeros(v.dtype, concreteDims(v, 0, file));
    else {
      throw new FhecError(
        `cannot fill model input '${v.name}' from a text file (known: input_ids, attention_mask, position_ids, past_key_values.*); use a tensor-JSON calibration file`,
        { file },
      );
    }
  }
  return out;
}

/**
 * A text file's tokens for `graph`: with the model's tokenizer folder, its Hugging Face tokenizer;
 * else UTF-8 bytes, which only a 256-token vocabulary reads.
 */
export function tokenizeText(graph: Graph, text: Uint8Array, file: string, tokenizer?: string): number[] {
  const ids = graph.inputs.find((v) => v.name === 'input_ids');
  if (!ids || !isInteger(ids.dtype)) {
    throw new FhecError(`the model has no integer 'input_ids' input, so text cannot be fed to it; use a tensor-JSON calibration file`, { file });
  }
  const vocab = modelVocabSize(graph, ids);
  if (tokenizer === undefined) {
    if (vocab !== BYTE_VOCAB) {
      throw new FhecError(
        `without --tokenizer a text file is tokenized as UTF-8 bytes (vocabulary ${BYTE_VOCAB}), but this model's vocabulary is ` +
          `${vocab ?? 'unknown'}: pass the model's Hugging Face tokenizer folder with --tokenizer DIR, or a tensor-JSON calibration file ({"sets": [{"inputs": {...}}]})`,
        { file },
      );
    }
    return Array.from(text);
  }
  if (vocab === undefined) throw new FhecError('cannot tell the model\'s vocabulary size (no embedding table or logits dim) to check the tokenizer against', { file });
  let s: string;
  try {
    s = new TextDecoder('utf-8', { fatal: true }).decode(text);
  } catch {
    throw new FhecError('the text is not valid UTF-8, which a Hugging Face tokenizer needs', { file });
  }
  return tokenizerFor(vocab, tokenizer).encode(s);
}

/** Windows of a text file as input sets. */
export function textCalibrationSets(graph: Graph, text: Uint8Array, file: string, opts: WindowOptions = {}): CalibrationSet[] {
  const tokens = tokenizeText(graph, text, file, opts.tokenizer);
  const unit = opts.tokenizer === undefined ? 'bytes' : 'tokens';
  const windows = windowStarts(tokens.length, opts);
  if (windows.length === 0) throw new FhecError('the calibration text is empty', { file });
  return windows.map(({ start, length }, i) => {
    const inputs = inputsForTokens(graph, tokens.slice(start, start + length), file);
    return { name: `window ${i} (${unit} ${start}..${start + length - 1})`, inputs, bindings: bindingsFromInputs(graph, inputs, file) };
  });
}

/** Tensor-JSON input sets: `{"inputs": {...}}` or `{"sets": [{"inputs": {...}}, ...]}`. */
function jsonCalibrationSets(graph: Graph, doc: unknown, file: string): CalibrationSet[] {
  const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
  if (!isObj(doc)) throw new FhecError('expected a JSON object with "inputs" or "sets"', { file });
  const docs: { name: string; doc: unknown }[] = [];
  if ('sets' in doc) {
    if (!Array.isArray(doc.sets) || doc.sets.length === 0) throw new FhecError('"sets" must be a non-empty list of {"inputs": {...}}', { file, field: 'sets' });
    doc.sets.forEach((d, i) => docs.push({ name: `sets[${i}]`, doc: d }));
  } else if ('inputs' in doc) {
    docs.push({ name: 'inputs', doc });
  } else {
    throw new FhecError('expected "inputs" (one set) or "sets" (a list of {"inputs": {...}})', { file });
  }
  return docs.map(({ name, doc: d }) => {
    const prefix = name === 'inputs' ? '' : `${name}.`;
    try {
      const inputs = tensorsFromJson(d, 'inputs', file);
      return { name, inputs, bindings: bindingsFromInputs(graph, inputs, file) };
    } catch (e) {
      if (e instanceof FhecError && prefix) throw new FhecError(e.message, { ...e.where, field: `${prefix}${e.where.field ?? 'inputs'}` });
      throw e;
    }
  });
}

/** Reads a calibration file (.txt or .json) into input sets for `graph` (the imported model). */
export function loadCalibrationSets(graph: Graph, file: string, opts: WindowOptions = {}): CalibrationSet[] {
  const ext = path.extname(file).toLowerCase();
  if (ext !== '.txt' && ext !== '.json') {
    throw new FhecError('a calibration file must be text (.txt) or tensor JSON (.json)', { file });
  }
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FhecError(code === 'ENOENT' ? 'file not found' : `cannot read file (${code})`, { file });
  }
  if (ext === '.txt') return textCalibrationSets(graph, bytes, file, opts);
  return jsonCalibrationSets(graph, parseJsonText(bytes.toString('utf8'), file), file);
}
