// Tokenizers the client and the calibration use. A model either reads UTF-8 bytes (token = byte, the
// shipped byte-level models, 256-entry vocabulary, no special tokens) or ships a Hugging Face tokenizer
// folder (hf-tokenizer.ts). Generation stops at any of `stopIds` (BOS, EOS, end-of-turn).

import { FhecError } from '../../ir/errors.js';
import { HfTokenizer } from './hf-tokenizer.js';

export interface TextTokenizer {
  /** 'bytes' or 'huggingface': for messages and the generation manifest. */
  readonly kind: 'bytes' | 'huggingface';
  /** Largest token id + 1. */
  readonly vocab: number;
  /** Tokens that end generation (none for bytes). */
  readonly stopIds: ReadonlySet<number>;
  encode(text: string | Uint8Array): number[];
  /** Ids to text (special tokens dropped); bytes that are not valid UTF-8 become U+FFFD. */
  decode(ids: readonly number[]): string;
}

export class ByteTokenizer implements TextTokenizer {
  readonly kind = 'bytes' as const;
  readonly vocab = 256;
  readonly stopIds: ReadonlySet<number> = new Set();

  constructor(modelVocab: number) {
    if (modelVocab !== 256) {
      throw new FhecError(
        `tokenizing text as UTF-8 bytes needs a vocabulary of 256; this model has ${modelVocab}: pass its Hugging Face tokenizer folder with --tokenizer DIR`,
        { field: '--tokenizer' },
      );
    }
  }

  encode(text: string | Uint8Array): number[] {
    return Array.from(typeof text === 'string' ? new TextEncoder().encode(text) : text);
  }

  decode(ids: readonly number[]): string {
    return new TextDecoder('utf-8').decode(Uint8Array.from(ids));
  }
}

/** A tokenizer's ids must index the model's embedding rows (a model may pad its vocabulary past them). */
export function checkTokenizerFits(t: TextTokenizer, modelVocab: number, where: { file?: string } = {}): void {
  if (t.vocab > modelVocab) {
    throw new FhecError(`the tokenizer has ${t.vocab} token ids, more than the model's vocabulary of ${modelVocab}`, { ...where, field: '--tokenizer' });
  }
}

/** The model folder's Hugging Face tokenizer when `dir` is given, else bytes; checked against the model's vocabulary. */
export function tokenizerFor(modelVocab: number, dir?: string): TextTokenizer {
  if (dir === undefined) return new ByteTokenizer(modelVocab);
  const t = HfTokenizer.loadCached(dir);
  checkTokenizerFits(t, modelVocab, { file: dir });
  return t;
}
