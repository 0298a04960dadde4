// Byte-level tokenization: token = UTF-8 byte, for models with a 256-entry vocabulary (no BOS/EOS).

import { FhecError } from '../../ir/errors.js';

export class ByteTokenizer {
  constructor(vocab: number) {
    if (vocab !== 256) {
      throw new FhecError(`fhec generate tokenizes text as UTF-8 bytes, which needs a vocabulary of 256; this model has ${vocab} (other tokenizers are not supported yet)`);
    }
  }

  encode(text: string | Uint8Array): number[] {
    return Array.from(typeof text === 'string' ? new TextEncoder().encode(text) : text);
  }

  /** Bytes to text; bytes that are not valid UTF-8 (e.g. a sequence cut short) become U+FFFD. */
  decode(ids: readonly number[]): string {
    return new TextDecoder('utf-8').decode(Uint8Array.from(ids));
  }
}
