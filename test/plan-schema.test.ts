// Every part of a plan file goes through a schema: the arithmetic plan (params, keys, weights), its
// tensor interface and rotation keys, the `model` section of canonical model plans (prefill and
// decode), the generation manifest and the step files beside step plans. Real plans are compiled
// (model A at N = 16384, a prefill of 4 and a decode after 1; an ONNX node test), then corrupted one
// field at a time -- missing, wrong type, out of range, inconsistent with the program or with another
// field -- and each error must be a FhecError naming the file and the field's JSON path.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { compileOnnxToFhe, writeFhePlan } from '../compiler/fhe-compile.js';
import { loadFhePlan } from '../compiler/fhe-run.js';
import { compileModel, writeModelPlan } from '../compiler/model-plan.js';
import { FhecError } from '../ir/errors.js';
import type { FheProgram } from '../ir/fhe/types.js';
import { describeStep } from '../runtime/generate/evaluator.js';
import { loadClientModel, readGenerationManifest } from '../runtime/generate/manifest.js';
import { checkStepInterface, readCacheBounds, readStepInterface, type StepInterface } from '../runtime/generate/plan-source.js';
import { loadModelPlan, monitorProgram, type ModelPlan } from '../runtime/model-session.js';
import { checkModelSection, modelSectionSchema } from '../runtime/plan/model-schema.js';
import { loadPlan } from '../runtime/plan/plan.js';
import { jsonPath, parseWith } from '../runtime/plan/validate.js';
import { NODE_TESTS, ROOT } from './helpers/shared.js';

const MODEL = path.join(ROOT, 'models', 'llama-byte-a', 'model.onnx');
const CAL = path.join(ROOT, 'models', 'llama-byte-a', 'calibration.txt');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-plan-schema-'));
const PREFILL = path.join(dir, 'p4.json');
const DECODE = path.join(dir, 'd1.json');

type Doc = Record<string, any>;
type Edit = (doc: Doc) => void;
/** [what, edit, JSON path the error must name, the rest of the message]. */
type Case = [string, Edit, string, RegExp];

let edits = 0;

/** A copy of `file` with one edit, beside it (so the sidecars resolve). */
function edited(file: string, edit: Edit): string {
  const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  edit(doc);
  const out = path.join(path.dirname(file), `edited-${++edits}.json`);
  fs.writeFileSync(out, JSON.stringify(doc));
  return out;
}

function errorOf(f: () => unknown): FhecError {
  try {
    f();
  } catch (e) {
    if (e instanceof FhecError) return e;
    throw e;
  }
  throw new Error('expected a FhecError, nothing was thrown');
}

/** The error is `FILE: malformed WHAT: PATH: MESSAGE` (as the CLI prints it). */
function expectMalformed(e: FhecError, file: string, what: string, at: string, message: RegExp): void {
  expect(e.where.file).toBe(file);
  const head = `malformed ${what}: ${at}: `;
  expect(e.message.startsWith(head), `"${e.message}" should start with "${head}"`).toBe(true);
  expect(e.message.slice(head.length)).toMatch(message);
  expect(e.format()).toBe(`${file}: ${e.message}`);
}

function runCases(load: (file: string) => unknown, base: () => string, what: string, cases: Case[]): void {
  for (const [title, edit, at, message] of cases) {
    it(`${title}: ${at}`, () => {
      const f = edited(base(), edit);
      expectMalformed(errorOf(() => load(f)), f, what, at, message);
    });
  }
}

describe('model plan section (prefill of 4, model A at N = 16384)', () => {
  let mp: ModelPlan;
  let doc: Doc;

  beforeAll(() => {
    writeModelPlan(PREFILL, compileModel(MODEL, { calibration: CAL, prefill: 4, ringDegree: 16384, maxWindows: 4 }));
    mp = loadModelPlan(PREFILL);
    doc = JSON.parse(fs.readFileSync(PREFILL, 'utf8'));
  }, 120000);

  it('loads an intact plan unchanged: the section as written, the program, the table', () => {
    const written = doc.model;
    expect(mp.meta.mode).toEqual({ prefill: 4 });
    expect(mp.meta.tokens).toBe(4);
    expect(mp.meta.outputs).toEqual(written.outputs);
    expect(mp.meta.embedding).toEqual(written.embedding);
    expect(mp.meta.inputs).toEqual(written.inputs);
    expect(mp.meta.cacheInputs).toEqual([]);
    expect(mp.meta.outputs.map((o) => o.name)).toEqual(['logits', 'present.0.key', 'present.0.value', 'present.1.key', 'present.1.value']);
    // JSON writes an unbounded relative error as null; it reads back as Infinity, the rest as written.
    mp.meta.probes.forEach((p, i) => {
      const w = written.probes[i];
      expect({ ...p, predictedMaxRelError: 0 }).toEqual({ ...w, predictedMaxRelError: 0 });
      expect(p.predictedMaxRelError).toBe(w.predictedMaxRelError ?? Infinity);
    });
    expect(mp.plan.program.slots).toBe(8192);
    expect(mp.table.length).toBe(256 * 64);
    const monitor = monitorProgram(mp);
    expect(monitor.ops.filter((op) => op.kind === 'input').map((op) => op.tensor)).toEqual(['embeddings']);
  });

  // Shape errors: caught by the schema before the program is even parsed.
  runCases(loadModelPlan, () => PREFILL, 'plan', [
    ['missing', (d) => delete d.model.embedding.vocab, 'model.embedding.vocab', /^missing \(expected a positive integer\)$/],
    ['wrong type', (d) => (d.model.outputs[0].blocks[0].layout.stride = '2048'), 'model.outputs[0].blocks[0].layout.stride', /^expected a positive integer, got "2048"$/],
    ['out of range', (d) => (d.model.outputs[0].blocks[0].layout.stride = 0), 'model.outputs[0].blocks[0].layout.stride', /^expected a positive integer, got 0$/],
    ['not an integer', (d) => (d.model.tokens = 4.5), 'model.tokens', /^expected a positive integer, got 4\.5$/],
    ['both modes', (d) => (d.model.mode = { prefill: 4, decode: 1 }), 'model.mode', /^expected \{"prefill": S\} or \{"decode": P\}/],
    ['a typo of an optional field', (d) => ((d.model.outputs[1].kvv = d.model.outputs[1].kv), delete d.model.outputs[1].kv), 'model.outputs[1].kvv', /^unknown field$/],
    ['a reversed interval', (d) => (d.model.probes[0].interval = [2, 1]), 'model.probes[0].interval', /lo <= hi/],
    ['odd slot runs', (d) => d.model.probes[2].slots.push(7), 'model.probes[2].slots', /even number/],
    ['an empty output list', (d) => (d.model.outputs = []), 'model.outputs', /at least 1 item/],
    ['a wrong kind of dims', (d) => (d.model.inputs[1].dims = [1, -2]), 'model.inputs[1].dims[1]', /dimension >= -1/],
    ['a path out of the plan directory', (d) => (d.model.embedding.file = '../p4.embedding.bin'), 'model.embedding.file', /plain file name/],
    ['no monitor program', (d) => (d.model.monitorProgram = 7), 'model.monitorProgram', /^expected string, got 7$/],
  ]);

  // Consistency errors, end to end through loadModelPlan.
  runCases(loadModelPlan, () => PREFILL, 'plan', [
    ['a layout the program does not have', (d) => (d.model.outputs[0].blocks[0].layout.stride = 1024), 'model.outputs[0].blocks[0].layout', /is not the layout of the program's output 'logits'/],
    ['a layout that does not fit the slots', (d) => (d.model.embedding.layout.copies = 64), 'model.embedding.layout', /does not fit 8192 slots/],
    ['a probe run past the slots', (d) => (d.model.probes[1].slots = [0, 8192, 8000, 500]), 'model.probes[1].slots[2]', /^run \[8000, 500\] is not within the 8192 slots$/],
  ]);

  // The other consistency checks on the parsed section against the loaded program (what loadModelPlan
  // runs after the schema; without re-parsing the program each time).
  const consistency: Case[] = [
    ['an output block the program lacks', (d) => (d.model.outputs[0].blocks[0].fhe = 'nope'), 'model.outputs[0].blocks[0].fhe', /^'nope' is not an output of the program/],
    ['an embedding input the program lacks', (d) => (d.model.embedding.fhe = 'emb'), 'model.embedding.fhe', /^'emb' is not an input of the program \(its inputs: embeddings\)/],
    ['ids that are not a model input', (d) => (d.model.embedding.ids = 'tokens'), 'model.embedding.ids', /^'tokens' is not one of the model's inputs$/],
    ['a token count the mode disagrees with', (d) => (d.model.tokens = 5), 'model.mode.prefill', /^is 4 but the plan takes 5 tokens$/],
    ['an embedding width that is not the layout', (d) => (d.model.embedding.dim = 32), 'model.embedding.layout', /holds 4 tokens of 64 values, the plan embeds 4 tokens of 32/],
    ['dims that are not tokens x width', (d) => (d.model.outputs[0].dims = [1, 4, 255]), 'model.outputs[0].dims', /has 1020 elements, but tokens \* width is 1024/],
    ['a last-position output that does not end at the last token', (d) => (d.model.outputs[0].fromToken = 2), 'model.outputs[0].fromToken', /^is 2: with 4 token\(s\) held the output ends at token 5, but the plan takes 4$/],
    ['a gap before the first column block', (d) => (d.model.outputs[0].blocks[0].colStart = 1), 'model.outputs[0].blocks[0].colStart', /blocks before it end at column 0/],
    ['a width the dims disagree with', (d) => (d.model.outputs[0].width = 300), 'model.outputs[0].dims', /tokens \* width is 1200/],
    ['a width the blocks do not cover', (d) => ((d.model.outputs[0].width = 300), (d.model.outputs[0].dims = [1, 4, 300])), 'model.outputs[0].blocks', /^cover columns 0\.\.255, but the output is 300 wide$/],
    ['a KV group inconsistent with the width', (d) => (d.model.outputs[1].kv.group = 1), 'model.outputs[1].width', /^is 64, but heads \* group \* headSize is 32$/],
    ['KV dims that are not [1, heads, T, headSize]', (d) => (d.model.outputs[2].dims = [1, 4, 4, 8]), 'model.outputs[2].dims', /is not \[1, heads 2, tokens 4, headSize 16\]/],
    ['a cache output of the wrong length', (d) => (d.model.outputs[3].tokens = 3), 'model.outputs[3].blocks[0].layout.tokens', /^is 4, the output has 3 tokens$/],
    ['a program output no block names', (d) => d.model.outputs.pop(), 'model.outputs', /no output block is the program's output 'present\.1\.value'/],
    ['one ciphertext in two outputs', (d) => (d.model.outputs[2].blocks[0].fhe = 'present.0.key'), 'model.outputs[2].blocks[0].fhe', /already a block of outputs\[1\]/],
    ['a cache on a prefill plan', (d) => d.model.cacheInputs.push({ name: 'past_key_values.0.key', fhe: 'embeddings', layout: d.model.embedding.layout, heads: 2, headSize: 16, group: 2 }), 'model.cacheInputs', /takes no encrypted cache/],
  ];
  for (const [title, edit, at, message] of consistency) {
    it(`${title}: ${at}`, () => {
      const d = structuredClone(doc);
      edit(d);
      const check = () => checkModelSection(parseWith(modelSectionSchema, d.model, PREFILL, 'plan', ['model']), mp.plan.program, PREFILL);
      expectMalformed(errorOf(check), PREFILL, 'plan', at, message);
    });
  }

  it('a probe of a value the monitor program lacks is refused when the monitor is built', () => {
    const f = edited(PREFILL, (d) => (d.model.probes[0].input = 'nope'));
    const edit = loadModelPlan(f);
    expectMalformed(errorOf(() => monitorProgram(edit)), f, 'plan', 'model.probes[0].input', /^%nope is not a value of the monitor program$/);
  });

  it('refuses a plan without a model section, or with the wrong embedding table', () => {
    const none = edited(PREFILL, (d) => delete d.model);
    expect(errorOf(() => loadModelPlan(none)).format()).toBe(`${none}: plan was not compiled from a canonical model (no model section)`);
    const vocab = edited(PREFILL, (d) => (d.model.embedding.vocab = 255));
    expect(errorOf(() => loadModelPlan(vocab)).message).toMatch(/embedding table p4\.embedding\.bin has 65536 bytes, expected 65280/);
    const version = edited(PREFILL, (d) => ((d.version = 2), (d.model.tokens = 'x')));
    expect(errorOf(() => loadModelPlan(version)).message).toMatch(/unknown plan version 2/);
  });

  it('refuses a key list that is not the program\'s', () => {
    const f = edited(PREFILL, (d) => d.keys.galoisSteps.pop());
    expectMalformed(errorOf(() => loadModelPlan(f)), f, 'plan', 'keys.galoisSteps', /are not the program's rotation steps/);
  });

  describe('step files beside a step plan', () => {
    let iface: StepInterface;
    beforeAll(() => {
      iface = describeStep({ shape: { kind: 'prefill', tokens: 4 }, plan: mp, cacheBounds: {} });
    });
    const write = (name: string, v: unknown) => {
      const f = path.join(dir, name);
      fs.writeFileSync(f, typeof v === 'string' ? v : JSON.stringify(v));
      return f;
    };

    it('reads an intact interface file as written; a truncated one is rebuilt (undefined)', () => {
      expect(readStepInterface(write('ok.iface.json', iface), 8192)).toEqual(iface);
      expect(readStepInterface(write('cut.iface.json', JSON.stringify(iface).slice(0, 40)), 8192)).toBeUndefined();
      expect(readStepInterface(path.join(dir, 'absent.iface.json'), 8192)).toBeUndefined();
    });

    const ifaceCases: [string, Edit, string, RegExp][] = [
      ['out of range', (d) => (d.input.level = -1), 'input.level', /^expected a non-negative integer, got -1$/],
      ['wrong type', (d) => (d.keys.relin = 'yes'), 'keys.relin', /^expected boolean, got "yes"$/],
      ['missing', (d) => delete d.input.scale, 'input.scale', /^missing \(expected a positive number\)$/],
      ['a layout past the slots', (d) => (d.input.layout.copies = 64), 'input.layout', /does not fit 8192 slots/],
      ['a rotation past the slots', (d) => (d.keys.galoisSteps = [1, 9000]), 'keys.galoisSteps[1]', /not below the slot count 8192/],
    ];
    for (const [title, edit, at, message] of ifaceCases) {
      it(`interface file, ${title}: ${at}`, () => {
        const d = structuredClone(iface) as Doc;
        edit(d);
        const f = write(`bad-${++edits}.iface.json`, d);
        expectMalformed(errorOf(() => readStepInterface(f, 8192)), f, 'step interface', at, message);
      });
    }

    it('an interface file that disagrees with its plan is refused', () => {
      const f = path.join(dir, 'stale.iface.json');
      expect(() => checkStepInterface(iface, iface, f)).not.toThrow();
      const stale = { ...iface, input: { ...iface.input, level: iface.input.level + 1 } };
      expectMalformed(errorOf(() => checkStepInterface(stale, iface, f)), f, 'step interface', 'input.level', /step plan's input is at level .*delete the file/);
    });

    it('cache bounds: positive numbers for cache outputs only', () => {
      const kv = ['present.0.key', 'present.0.value'];
      expect(readCacheBounds(write('ok.bounds.json', { 'present.0.key': 1.5 }), kv)).toEqual({ 'present.0.key': 1.5 });
      const word = write('word.bounds.json', { 'present.0.key': 'big' });
      expectMalformed(errorOf(() => readCacheBounds(word, kv)), word, 'cache bounds', '["present.0.key"]', /^expected a positive number, got "big"$/);
      const zero = write('zero.bounds.json', { 'present.0.value': 0 });
      expectMalformed(errorOf(() => readCacheBounds(zero, kv)), zero, 'cache bounds', '["present.0.value"]', /positive number, got 0/);
      const other = write('other.bounds.json', { logits: 2 });
      expectMalformed(errorOf(() => readCacheBounds(other, kv)), other, 'cache bounds', 'logits', /is not a cache output of the step plan/);
      const junk = write('junk.bounds.json', '{');
      expect(errorOf(() => readCacheBounds(junk, kv)).format()).toMatch(/junk\.bounds\.json: cache bounds are not valid JSON/);
    });
  });

  describe('generation manifest', () => {
    const manifest = (): Doc => ({
      kind: 'fhec-generation-plan',
      version: 1,
      model: MODEL,
      modelSha256: 'a00175818c7adf3bf497b4a20e8ff57db847f86604af72970ef72c4de8d0ea58',
      calibration: CAL,
      compile: { ringDegree: 16384, maxWindows: 4 },
      maxContext: 16,
      tokenizer: 'bytes',
      vocab: 256,
      dim: 64,
      embedding: 'p4.embedding.bin',
      embeddingSha256: createHash('sha256').update(fs.readFileSync(path.join(dir, 'p4.embedding.bin'))).digest('hex'),
      params: { ringDegree: 16384, bitSizes: mp.plan.params.bitSizes, scale: mp.plan.params.scale },
      steps: 'gen.steps',
      prefill: [4],
    });
    const write = (d: Doc) => {
      const f = path.join(dir, `gen-${++edits}.json`);
      fs.writeFileSync(f, JSON.stringify(d));
      return f;
    };

    it('reads an intact manifest as written, and the client model from it', () => {
      const f = write(manifest());
      expect(readGenerationManifest(f)).toEqual(manifest());
      const client = loadClientModel(f);
      expect([client.vocab, client.dim, client.table.length]).toEqual([256, 64, 256 * 64]);
    });

    runCases(readGenerationManifest, () => write(manifest()), 'generation plan', [
      ['missing', (d) => delete d.vocab, 'vocab', /^missing \(expected a positive integer\)$/],
      ['wrong type', (d) => (d.maxContext = 'many'), 'maxContext', /^expected a positive integer, got "many"$/],
      ['out of range', (d) => (d.maxContext = 1), 'maxContext', /at least 2 positions/],
      ['a typo of an optional field', (d) => (d.compile.placment = 'greedy'), 'compile.placment', /^unknown field$/],
      ['a path out of the plan directory', (d) => (d.steps = '../elsewhere'), 'steps', /plain file name/],
      ['a prefill past the context', (d) => (d.prefill = [4, 40]), 'prefill[1]', /^40 is past the context of 16$/],
      ['parameters of another ring', (d) => (d.params.ringDegree = 32768), 'params.ringDegree', /^is 32768, but the step plans are compiled at 16384$/],
      ['parameters SEAL cannot make', (d) => (d.params.bitSizes = [60, 10, 60]), 'params', /prime size 10 bits is outside 17\.\.60/],
      ['a short vocabulary for bytes', (d) => (d.vocab = 100), 'vocab', /ids 0\.\.255/],
    ]);

    it('an unknown version is refused before its fields are read', () => {
      const f = write({ ...manifest(), version: 2, vocab: 'x' });
      expect(errorOf(() => readGenerationManifest(f)).message).toMatch(/^unknown generation plan version 2/);
    });
  });
});

describe('model plan section (decode after 1, encrypted KV cache)', () => {
  let mp: ModelPlan;
  let doc: Doc;

  beforeAll(() => {
    writeModelPlan(DECODE, compileModel(MODEL, { calibration: CAL, decode: 1, ringDegree: 16384, maxWindows: 4 }));
    mp = loadModelPlan(DECODE);
    doc = JSON.parse(fs.readFileSync(DECODE, 'utf8'));
  }, 120000);

  it('loads intact: one new token after one cached, four cache inputs', () => {
    expect(mp.meta.mode).toEqual({ decode: 1 });
    expect(mp.meta.cacheInputs).toEqual(doc.model.cacheInputs);
    expect(mp.meta.cacheInputs.map((c) => [c.name, c.layout.tokens, c.layout.length])).toEqual(
      ['past_key_values.0.key', 'past_key_values.0.value', 'past_key_values.1.key', 'past_key_values.1.value'].map((n) => [n, 1, 64]),
    );
    expect(mp.meta.outputs.filter((o) => o.kv).every((o) => o.tokens === 2)).toBe(true);
  });

  runCases(loadModelPlan, () => DECODE, 'plan', [
    ['a cache of another past length', (d) => (d.model.mode = { decode: 2 }), 'model.cacheInputs[0].layout.tokens', /^is 1, but the plan decodes after 2 tokens$/],
  ]);

  const consistency: Case[] = [
    ['a cache input the model lacks', (d) => (d.model.cacheInputs[1].name = 'past'), 'model.cacheInputs[1].name', /^'past' is not one of the model's inputs$/],
    ['cache heads inconsistent with the layout', (d) => (d.model.cacheInputs[0].heads = 1), 'model.cacheInputs[0].layout.length', /^is 64, but heads \* group \* headSize is 32$/],
    ['a cache input left out', (d) => d.model.cacheInputs.splice(0, 1), 'model', /input 'past_key_values\.0\.key' is neither the embedding nor a cache input/],
    ['a cache output of the wrong length', (d) => (d.model.outputs[1].tokens = 1), 'model.outputs[1].blocks[0].layout.tokens', /^is 2, the output has 1 tokens$/],
    ['a decode plan called a prefill', (d) => (d.model.mode = { prefill: 1 }), 'model.cacheInputs', /takes no encrypted cache/],
    ['a mode with a string', (d) => (d.model.mode = { decode: '1' }), 'model.mode', /^expected \{"prefill": S\} or \{"decode": P\}, got \{"decode":"1"\}$/],
  ];
  for (const [title, edit, at, message] of consistency) {
    it(`${title}: ${at}`, () => {
      const d = structuredClone(doc);
      edit(d);
      const check = () => checkModelSection(parseWith(modelSectionSchema, d.model, DECODE, 'plan', ['model']), mp.plan.program, DECODE);
      expectMalformed(errorOf(check), DECODE, 'plan', at, message);
    });
  }
});

describe('arithmetic plan: params, keys, weights, tensor interface, rotation keys', () => {
  const ARITH = path.join(dir, 'arith', 'add.json');
  let program: FheProgram;

  beforeAll(() => {
    fs.mkdirSync(path.dirname(ARITH), { recursive: true });
    writeFhePlan(ARITH, compileOnnxToFhe(path.join(NODE_TESTS, 'test_add_bcast', 'model.onnx')));
    program = loadFhePlan(ARITH).plan.program;
  });

  it('loads intact, with its interface as written', () => {
    const doc = JSON.parse(fs.readFileSync(ARITH, 'utf8'));
    const loaded = loadFhePlan(ARITH);
    expect(loaded.interface).toEqual(doc.interface);
    expect(loaded.keyBudgetBytes).toBe(doc.rotationKeys.budgetBytes);
    expect(program.ops.filter((op) => op.kind === 'input').length).toBe(doc.interface.inputs.length);
  });

  runCases(loadPlan, () => ARITH, 'plan', [
    ['wrong type', (d) => (d.params.ringDegree = '8192'), 'params.ringDegree', /^expected a positive integer, got "8192"$/],
    ['not a power of two', (d) => (d.params.ringDegree = 12288), 'params.ringDegree', /power of two/],
    ['missing', (d) => delete d.keys, 'keys', /^missing \(expected object\)$/],
    ['a path out of the plan directory', (d) => (d.weights.file = '/tmp/w.bin'), 'weights.file', /plain file name/],
    ['a rotation the program does not make', (d) => d.keys.galoisSteps.push(5), 'keys.galoisSteps', /are not the program's rotation steps \[\]/],
  ]);

  runCases(loadFhePlan, () => ARITH, 'plan', [
    ['runs not in fours', (d) => d.interface.inputs[0].ciphertexts[0].runs.push(1), 'interface.inputs[0].ciphertexts[0].runs', /multiple of 4/],
    ['a run past the slots', (d) => (d.interface.inputs[0].ciphertexts[0].runs[0] = 1e6), 'interface.inputs[0].ciphertexts[0].runs[0]', /^run \[slot 1000000, .* is not within the \d+ slots/],
    ['a run past the tensor', (d) => (d.interface.inputs[1].ciphertexts[0].runs[1] = 1000), 'interface.inputs[1].ciphertexts[0].runs[0]', /and the 5 elements of \[5\]$/],
    ['an output element read from nowhere', (d) => (d.interface.outputs[0].ciphertexts[0].runs = []), 'interface.outputs[0].ciphertexts', /^element 0 of '.+' is in no ciphertext$/],
    ['negative dims', (d) => (d.interface.inputs[0].dims[0] = -3), 'interface.inputs[0].dims[0]', /^expected a non-negative integer, got -3$/],
    ['a missing dtype', (d) => delete d.interface.inputs[0].dtype, 'interface.inputs[0].dtype', /^missing \(expected "float32"\)$/],
    ['a dtype that is not encrypted', (d) => (d.interface.inputs[0].dtype = 'int64'), 'interface.inputs[0].dtype', /^expected "float32", got "int64"$/],
    ['one tensor twice', (d) => (d.interface.inputs[1].name = d.interface.inputs[0].name), 'interface.inputs[1].name', /is listed twice/],
    ['missing budget', (d) => delete d.rotationKeys.budgetBytes, 'rotationKeys.budgetBytes', /^missing \(expected a positive number\)$/],
    ['out of range', (d) => (d.rotationKeys.budgetBytes = -1), 'rotationKeys.budgetBytes', /^expected a positive number, got -1$/],
    ['a key step past the slots', (d) => d.rotationKeys.keySteps.push(1e7), `rotationKeys.keySteps[0]`, /not below the slot count/],
  ]);

  it('names an input ciphertext packed by two tensors', () => {
    const f = edited(ARITH, (d) => d.interface.inputs[1].ciphertexts.push(d.interface.inputs[0].ciphertexts[0]));
    expectMalformed(errorOf(() => loadFhePlan(f)), f, 'plan', 'interface.inputs[1].ciphertexts[1].fhe', /^input ciphertext 'x' is already packed by 'x'$/);
  });
});

describe('JSON paths in messages', () => {
  it('indexes arrays, dots identifiers, quotes other keys', () => {
    expect(jsonPath(['model', 'outputs', 2, 'blocks', 0, 'layout', 'stride'])).toBe('model.outputs[2].blocks[0].layout.stride');
    expect(jsonPath(['present.0.key'])).toBe('["present.0.key"]');
    expect(jsonPath([])).toBe('(root)');
  });
});
