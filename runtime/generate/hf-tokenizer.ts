// A model folder's Hugging Face tokenizer (tokenizer.json, tokenizer_config.json, and
// generation_config.json when present), run by @huggingface/tokenizers. Encoding applies the
// tokenizer's own post-processor (Llama 3's adds <|begin_of_text|>); decoding drops special tokens.
// Generation stops at BOS, EOS (tokenizer_config's eos_token and generation_config's eos_token_id)
// and the end-of-turn token the chat template writes after each message's content.
// Every malformed file is an FhecError naming the file and the field.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { Tokenizer } from '@huggingface/tokenizers';
import { FhecError } from '../../ir/errors.js';
import type { TextTokenizer } from './tokenizer.js';

export const TOKENIZER_FILE = 'tokenizer.json';
export const TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';
export const GENERATION_CONFIG_FILE = 'generation_config.json';

type Json = Record<string, unknown>;
const isObj = (x: unknown): x is Json => typeof x === 'object' && x !== null && !Array.isArray(x);

function readJson(file: string, required: boolean): { doc: Json; bytes: Buffer } | undefined {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !required) return undefined;
    throw new FhecError(code === 'ENOENT' ? 'file not found (a Hugging Face tokenizer folder holds tokenizer.json and tokenizer_config.json)' : `cannot read file (${code})`, { file });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new FhecError(`not valid JSON: ${(e as Error).message}`, { file });
  }
  if (!isObj(doc)) throw new FhecError('expected a JSON object', { file });
  return { doc, bytes };
}

/** A special-token field: "text" or {"content": "text"} (absent or null: none). */
function tokenText(cfg: Json, field: string, file: string): string | undefined {
  const v = cfg[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (isObj(v) && typeof v['content'] === 'string') return v['content'];
  throw new FhecError('expected a token string or {"content": string}', { file, field });
}

/** Token ids: a number or a list of numbers (absent or null: none). */
function tokenIds(cfg: Json, field: string, file: string): number[] {
  const v = cfg[field];
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  list.forEach((x, i) => {
    if (!Number.isInteger(x) || (x as number) < 0) throw new FhecError(`expected a token id (integer >= 0), got ${JSON.stringify(x)}`, { file, field: Array.isArray(v) ? `${field}[${i}]` : field });
  });
  return list as number[];
}

/**
 * Special tokens the chat template appends right after a message's content (`message['content'] + '<|eot_id|>'`
 * in Jinja, or `{{ message['content'] }}<|im_end|>`): the model ends its turn with them.
 */
export function endOfTurnTokens(template: string, special: readonly string[]): string[] {
  const out = new Set<string>();
  const after = /content['"]?\]?\s*(?:\|\s*\w+\s*)*(?:\+\s*['"]|\}\}\s*)([^'"{]+)/g;
  for (const m of template.matchAll(after)) {
    const text = m[1]!;
    const hit = special.filter((s) => text.startsWith(s)).sort((a, b) => b.length - a.length)[0];
    if (hit) out.add(hit);
  }
  return [...out];
}

export class HfTokenizer implements TextTokenizer {
  readonly kind = 'huggingface' as const;
  readonly vocab: number;
  readonly stopIds: ReadonlySet<number>;
  /** sha256 of tokenizer.json: a generation plan records it, so the client uses the same tokenizer. */
  readonly sha256: string;
  readonly bos?: number;
  readonly eos?: number;

  private constructor(
    private readonly tk: Tokenizer,
    info: { vocab: number; stopIds: Set<number>; sha256: string; bos?: number; eos?: number },
  ) {
    this.vocab = info.vocab;
    this.stopIds = info.stopIds;
    this.sha256 = info.sha256;
    if (info.bos !== undefined) this.bos = info.bos;
    if (info.eos !== undefined) this.eos = info.eos;
  }

  private static readonly cache = new Map<string, { stamp: string; t: HfTokenizer }>();

  /** load(), reusing a tokenizer already read from the same unchanged files (reading Llama 3's takes ~0.5 s). */
  static loadCached(dir: string): HfTokenizer {
    const key = path.resolve(dir);
    const stamp = [TOKENIZER_FILE, TOKENIZER_CONFIG_FILE, GENERATION_CONFIG_FILE]
      .map((f) => {
        try {
          return String(fs.statSync(path.join(key, f)).mtimeMs);
        } catch {
          return '-';
        }
      })
      .join();
    const hit = HfTokenizer.cache.get(key);
    if (hit && hit.stamp === stamp) return hit.t;
    const t = HfTokenizer.load(dir);
    HfTokenizer.cache.set(key, { stamp, t });
    return t;
  }

  /** Reads DIR/tokenizer.json (required), DIR/tokenizer_config.json and DIR/generation_config.json (optional). */
  static load(dir: string): HfTokenizer {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(dir);
    } catch {
      throw new FhecError('tokenizer folder not found', { file: dir, field: '--tokenizer' });
    }
    if (!stat.isDirectory()) throw new FhecError('--tokenizer expects the model folder holding tokenizer.json, not a file', { file: dir, field: '--tokenizer' });
    const tjFile = path.join(dir, TOKENIZER_FILE);
    const cfgFile = path.join(dir, TOKENIZER_CONFIG_FILE);
    const genFile = path.join(dir, GENERATION_CONFIG_FILE);
    const tj = readJson(tjFile, true)!;
    const cfg = readJson(cfgFile, false)?.doc ?? {};
    const gen = readJson(genFile, false)?.doc;

    const model = tj.doc['model'];
    if (!isObj(model)) throw new FhecError('expected an object describing the tokenization model', { file: tjFile, field: 'model' });
    if (typeof model['type'] !== 'string') throw new FhecError('expected the model type (BPE, WordPiece, Unigram, ...)', { file: tjFile, field: 'model.type' });
    if (!isObj(model['vocab']) && !Array.isArray(model['vocab'])) throw new FhecError('expected the vocabulary', { file: tjFile, field: 'model.vocab' });
    const added = tj.doc['added_tokens'] ?? [];
    if (!Array.isArray(added)) throw new FhecError('expected a list of added tokens', { file: tjFile, field: 'added_tokens' });
    const special: string[] = [];
    added.forEach((a, i) => {
      if (!isObj(a) || !Number.isInteger(a['id']) || typeof a['content'] !== 'string') {
        throw new FhecError('expected {"id": integer, "content": string, ...}', { file: tjFile, field: `added_tokens[${i}]` });
      }
      if (a['special'] === true) special.push(a['content']);
    });
    if (cfg['chat_template'] !== undefined && typeof cfg['chat_template'] !== 'string' && !Array.isArray(cfg['chat_template'])) {
      throw new FhecError('expected a template string (or a list of named templates)', { file: cfgFile, field: 'chat_template' });
    }

    let tk: Tokenizer;
    try {
      tk = new Tokenizer(tj.doc, cfg);
    } catch (e) {
      throw new FhecError(`@huggingface/tokenizers cannot build this tokenizer: ${(e as Error).message}`, { file: tjFile });
    }
    let vocab = 0;
    for (const id of tk.get_vocab(true).values()) vocab = Math.max(vocab, id + 1);
    if (vocab === 0) throw new FhecError('the vocabulary is empty', { file: tjFile, field: 'model.vocab' });

    const idOf = (text: string, file: string, field: string): number => {
      const id = tk.token_to_id(text);
      if (id === undefined) throw new FhecError(`'${text}' is not a token of ${TOKENIZER_FILE}`, { file, field });
      return id;
    };
    const bosText = tokenText(cfg, 'bos_token', cfgFile);
    const eosText = tokenText(cfg, 'eos_token', cfgFile);
    const bos = bosText !== undefined ? idOf(bosText, cfgFile, 'bos_token') : undefined;
    const eos = eosText !== undefined ? idOf(eosText, cfgFile, 'eos_token') : undefined;
    const stop = new Set<number>([...(bos !== undefined ? [bos] : []), ...(eos !== undefined ? [eos] : [])]);
    if (gen) {
      for (const field of ['eos_token_id', 'bos_token_id']) {
        for (const id of tokenIds(gen, field, genFile)) {
          if (id >= vocab) throw new FhecError(`token id ${id} is past the vocabulary (${vocab})`, { file: genFile, field });
          stop.add(id);
        }
      }
    }
    const templates = cfg['chat_template'];
    const templateText = typeof templates === 'string' ? templates : Array.isArray(templates) ? templates.map((t) => (isObj(t) && typeof t['template'] === 'string' ? t['template'] : '')).join('\n') : '';
    for (const t of endOfTurnTokens(templateText, special)) stop.add(idOf(t, cfgFile, 'chat_template'));

    const sha256 = createHash('sha256').update(tj.bytes).digest('hex');
    return new HfTokenizer(tk, { vocab, stopIds: stop, sha256, ...(bos !== undefined ? { bos } : {}), ...(eos !== undefined ? { eos } : {}) });
  }

  encode(text: string | Uint8Array): number[] {
    let s: string;
    try {
      s = typeof text === 'string' ? text : new TextDecoder('utf-8', { fatal: true }).decode(text);
    } catch {
      throw new FhecError('a Hugging Face tokenizer reads text: these bytes are not valid UTF-8');
    }
    return this.tk.encode(s).ids;
  }

  decode(ids: readonly number[]): string {
    return ids.length === 0 ? '' : this.tk.decode([...ids], { skip_special_tokens: true });
  }

  /** A token's text (special tokens included), for messages. */
  tokenText(id: number): string | undefined {
    return this.tk.id_to_token(id);
  }
}
