// The bad-input corpus: what a new user or a careless operator does wrong, run through the CLI (in
// process) case by case. Every case must exit 2 with one line on stderr naming the file and the field
// (or flag) at fault, with no stack trace, and leave every input file as it was (all files of the
// fixture folder and the repository files the cases read are hashed before and after each case).
// Classes: integrity of plans and sidecars, CKKS overflow, contained file access, outputs that would
// overwrite inputs, silent acceptance, messages. Prints `N passed, N failed` over the corpus.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportOnnx } from '../compiler/onnx/export.js';
import { GraphBuilder } from '../ir/graph/builder.js';
import { Tensor } from '../ir/tensor.js';
import { moveWeightsToStore } from '../runtime/plan/weight-store.js';
import { fhecInProcess, type InProcessResult } from './helpers/in-process.js';
import { ROOT } from './helpers/shared.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-bad-input-'));
const at = (...p: string[]) => path.join(tmp, ...p);
const LLAMA = path.join(ROOT, 'models', 'llama-byte-a', 'model.onnx');
const CALIBRATION = path.join(ROOT, 'models', 'llama-byte-a', 'calibration.txt');
/** Files outside the fixture folder that cases read: they must not change either. */
const REPO_INPUTS = [LLAMA, CALIBRATION];

// Fixtures (built in beforeAll).
const MODEL = at('mm', 'model.onnx'); // y = x @ W + b, x [2, 4] float32
const IN = at('mm', 'in.json');
const PLAN = at('mm', 'plan.json'); // its arithmetic plan (weights sidecar plan.weights.bin)
const STORED = at('stored', 'plan.json'); // the same plan with its weights moved to a chunk store
const MODEL_PLAN = at('mp', 'p.json'); // llama-byte-a, prefill of 2 (embedding table p.embedding.bin)
const IDS = at('mp', 'ids.json');

function writeJson(file: string, value: unknown): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, typeof value === 'string' ? value : JSON.stringify(value));
  return file;
}

const inputs = (x: unknown[], dtype = 'float32', dims = [2, 4]) => ({ inputs: { x: { dims, dtype, data: x } } });

/** The arithmetic model: MatMul with a [4, 3] weight and an Add of a [3] bias (both initializers). */
function arithmeticModel(file: string, opts: { opset?: number; externalData?: string; inputDims?: number[] } = {}): string {
  const b = new GraphBuilder('mm', { '': opts.opset ?? 17 });
  const dims = opts.inputDims ?? [2, 4];
  const x = b.input('x', 'float32', dims);
  const w = b.constant('W', Tensor.from('float32', [4, 3], [0.5, -1, 2, 1.5, 0.25, -0.5, 1, 1, 1, -2, 0.75, 0.125]));
  const bias = b.constant('bias', Tensor.from('float32', [3], [1, 2, 3]));
  const outDims = [...dims.slice(0, -1), 3];
  const mm = b.op1('MatMul', [x, w], 'float32', outDims, {}, { name: 'matmul' });
  b.output(b.op1('Add', [mm, bias], 'float32', outDims, {}, { name: 'add_bias' }));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  exportOnnx(b.graph, file, opts.externalData ? { externalData: { location: opts.externalData, minBytes: 0 } } : {});
  return file;
}

/** A copy of `src` (and its sidecars) in a fresh folder `name`, with `edit` applied to the copy's folder. */
function planCopy(name: string, edit: (dir: string) => void): string {
  const dir = at(name);
  fs.mkdirSync(dir, { recursive: true });
  for (const f of fs.readdirSync(path.dirname(PLAN))) if (f.startsWith('plan.')) fs.copyFileSync(path.join(path.dirname(PLAN), f), path.join(dir, f));
  edit(dir);
  return path.join(dir, 'plan.json');
}

function flipBit(file: string, byte: number): void {
  const b = fs.readFileSync(file);
  b[byte]! ^= 0x10;
  fs.writeFileSync(file, b);
}

interface Case {
  name: string;
  /** The CLI arguments (computed after the fixtures exist). */
  args: () => string[];
  /** What the one line must contain: the file, the field or flag, the reason. */
  mentions: () => (string | RegExp)[];
}

function corpus(): Record<string, Case[]> {
  const model = (name: string) => at(name, 'model.onnx');
  return {
    integrity: [
      { name: 'one flipped bit in the weights sidecar', args: () => ['run', at('flipped', 'plan.json'), '--inputs', IN, '--backend', 'sim'], mentions: () => [at('flipped', 'plan.json'), 'weights', 'plan.weights.bin', /corrupt or was changed/] },
      { name: 'a weights sidecar swapped for another of the same size', args: () => ['run', at('swapped', 'plan.json'), '--inputs', IN, '--backend', 'seal'], mentions: () => [at('swapped', 'plan.json'), 'weights', /sha256/] },
      { name: 'a plan whose digest was removed', args: () => ['run', at('nodigest', 'plan.json'), '--inputs', IN], mentions: () => [at('nodigest', 'plan.json'), 'weights.sha256', /missing/] },
      { name: 'a changed step-plan weight chunk', args: () => ['run', STORED, '--inputs', IN, '--backend', 'sim'], mentions: () => [STORED.replace(/\.json$/, '.weights.refs.json'), 'chunks[', /weight chunk weights\/[0-9a-f]{64}\.bin is corrupt/] },
      { name: 'one flipped bit in the embedding table', args: () => ['run', at('mp-flipped', 'p.json'), '--inputs', IDS, '--backend', 'sim'], mentions: () => [at('mp-flipped', 'p.json'), 'model.embedding', 'p.embedding.bin', /corrupt/] },
      { name: 'a sidecar that is a folder', args: () => ['run', at('dirsidecar', 'plan.json'), '--inputs', IN], mentions: () => [at('dirsidecar', 'plan.json'), 'weights', /not a regular file/] },
    ],
    overflow: [
      { name: 'inputs around 1e12 on seal', args: () => ['run', PLAN, '--inputs', at('big.json'), '--backend', 'seal'], mentions: () => [at('big.json'), 'inputs.x', /outside the range \[-\d+, \d+\]/] },
      { name: 'inputs around 1e12 on sim', args: () => ['run', PLAN, '--inputs', at('big.json'), '--backend', 'sim'], mentions: () => [at('big.json'), 'inputs.x', /outside the range/] },
      { name: 'a NaN input to encrypt', args: () => ['run', PLAN, '--inputs', at('nan.json')], mentions: () => [at('nan.json'), 'inputs.x', /NaN, outside the range/] },
      { name: '--input-range the modulus cannot hold', args: () => ['compile', MODEL, '-o', at('out', 'huge.json'), '--input-range=-1e15,1e15'], mentions: () => [MODEL, '--input-range', /no headroom/] },
      { name: '--input-range for an input the model lacks', args: () => ['compile', MODEL, '-o', at('out', 'typo.json'), '--input-range', 'z=0,1'], mentions: () => [MODEL, '--input-range', /'z' is not an encrypted input/] },
      { name: '--input-range that is not LO,HI', args: () => ['compile', MODEL, '-o', at('out', 'r.json'), '--input-range', '5,1'], mentions: () => ['--input-range', /LO <= HI/] },
    ],
    containment: [
      { name: 'external data symlinked out of the model folder (eval)', args: () => ['eval', model('ext-symlink'), '--inputs', IN], mentions: () => [model('ext-symlink'), "tensor 'W'", /outside the model's folder/] },
      { name: 'external data symlinked out of the model folder (compile)', args: () => ['compile', model('ext-symlink'), '-o', at('out', 'sym.json')], mentions: () => [model('ext-symlink'), "tensor 'W'", /outside the model's folder/] },
      { name: 'external data symlinked out of the model folder (inspect)', args: () => ['inspect', model('ext-symlink')], mentions: () => [model('ext-symlink'), "tensor 'W'", /outside the model's folder/] },
      { name: 'external data that is a FIFO (eval)', args: () => ['eval', model('ext-fifo'), '--inputs', IN], mentions: () => [model('ext-fifo'), "tensor 'W'", /not a regular file/] },
      { name: 'external data that is a FIFO (inspect)', args: () => ['inspect', model('ext-fifo')], mentions: () => [model('ext-fifo'), "tensor 'W'", /not a regular file/] },
      { name: 'external data offset past the end (inspect)', args: () => ['inspect', model('ext-short')], mentions: () => [model('ext-short'), "tensor '", /too short/] },
      { name: 'external data offset past the end (eval)', args: () => ['eval', model('ext-short'), '--inputs', IN], mentions: () => [model('ext-short'), "tensor '", /too short/] },
    ],
    outputs: [
      { name: 'eval --out onto the model', args: () => ['eval', MODEL, '--inputs', IN, '--out', MODEL], mentions: () => [MODEL, '--out', /would overwrite the input/] },
      { name: 'eval --out onto the inputs JSON', args: () => ['eval', MODEL, '--inputs', IN, '--out', IN], mentions: () => [IN, '--out', /would overwrite the input/] },
      { name: 'eval --out onto a symlink to the model', args: () => ['eval', MODEL, '--inputs', IN, '--out', at('link-to-model.json')], mentions: () => [at('link-to-model.json'), '--out', /would overwrite the input/] },
      { name: 'eval --out onto a hard link to the inputs', args: () => ['eval', MODEL, '--inputs', IN, '--out', at('hardlink-in.json')], mentions: () => [at('hardlink-in.json'), '--out', /would overwrite the input/] },
      { name: 'eval --out onto external data', args: () => ['eval', model('ext-ok'), '--inputs', IN, '--out', at('ext-ok', 'w.bin')], mentions: () => [at('ext-ok', 'w.bin'), '--out', /would overwrite the input/] },
      { name: 'run --out onto the plan', args: () => ['run', PLAN, '--inputs', IN, '--out', PLAN], mentions: () => [PLAN, '--out', /would overwrite the input/] },
      { name: 'run --out onto the weights sidecar', args: () => ['run', PLAN, '--inputs', IN, '--out', at('mm', 'plan.weights.bin')], mentions: () => [at('mm', 'plan.weights.bin'), '--out', /would overwrite the input/] },
      { name: 'run --out onto the embedding table', args: () => ['run', MODEL_PLAN, '--inputs', IDS, '--out', at('mp', 'p.embedding.bin'), '--backend', 'sim'], mentions: () => [at('mp', 'p.embedding.bin'), '--out', /would overwrite the input/] },
      { name: 'compile --emit-fhe-ir onto the model', args: () => ['compile', MODEL, '-o', at('out', 'e.json'), '--emit-fhe-ir', MODEL], mentions: () => [MODEL, '--emit-fhe-ir', /would overwrite the input/] },
      { name: 'compile -o whose sidecar is the model', args: () => ['compile', at('sidecar-clash', 'm.weights.bin'), '-o', at('sidecar-clash', 'm.json')], mentions: () => [at('sidecar-clash', 'm.weights.bin'), '--output (its weights sidecar)', /would overwrite the input/] },
      { name: 'compile -o and --emit-fhe-ir the same file', args: () => ['compile', MODEL, '-o', at('out', 'same.json'), '--emit-fhe-ir', at('out', 'same.json')], mentions: () => [at('out', 'same.json'), '--emit-fhe-ir', /also the output of --output/] },
      { name: 'compile --calibration plan onto the calibration text', args: () => ['compile', LLAMA, '-o', at('cal.json'), '--calibration', at('cal.json'), '--prefill', '2'], mentions: () => [at('cal.json'), '--output', /would overwrite the input/] },
      { name: 'calibrate --emit-ir onto the calibration text', args: () => ['calibrate', LLAMA, '--calibration', CALIBRATION, '--emit-ir', CALIBRATION], mentions: () => [CALIBRATION, '--emit-ir', /would overwrite the input/] },
      { name: 'an output folder below a regular file', args: () => ['eval', MODEL, '--inputs', IN, '--out', path.join(IN, 'out.json')], mentions: () => [path.join(IN, 'out.json'), '--out', /is not a folder/] },
      ...(fs.existsSync('/proc/self')
        ? [{ name: 'an output folder that cannot be created', args: () => ['eval', MODEL, '--inputs', IN, '--out', '/proc/fhec-no-such-folder/y.json'], mentions: () => ['/proc/fhec-no-such-folder/y.json', '--out', /cannot create the output folder/] }]
        : []),
      // Root writes into read-only folders anyway: this case needs an ordinary user.
      ...(process.getuid?.() !== 0
        ? [{ name: 'a read-only output folder', args: () => ['compile', MODEL, '-o', at('readonly', 'plan.json')], mentions: () => [at('readonly', 'plan.json'), '--output', /cannot write into folder/] }]
        : []),
      { name: 'an output that is a folder', args: () => ['eval', MODEL, '--inputs', IN, '--out', at('out')], mentions: () => [at('out'), '--out', /is a folder/] },
      { name: 'compile -o not ending in .json', args: () => ['compile', MODEL, '-o', at('out', 'plan.bin')], mentions: () => [at('out', 'plan.bin'), '--output', /must end in \.json/] },
    ],
    'silent acceptance': [
      { name: 'opset 999', args: () => ['eval', model('opset999'), '--inputs', IN], mentions: () => [model('opset999'), 'opset_import', /ai\.onnx opset 999/] },
      { name: 'a float32 input of 1e39', args: () => ['eval', MODEL, '--inputs', at('f32-overflow.json')], mentions: () => [at('f32-overflow.json'), 'inputs.x', /data\[1\]: 1e\+39 is beyond the float32 range/] },
      { name: 'a JSON number beyond float64', args: () => ['eval', MODEL, '--inputs', at('f64-overflow.json')], mentions: () => [at('f64-overflow.json'), 'inputs.x', /data\[0\]: the number overflows float64/] },
      { name: 'an int64 token 72.7', args: () => ['eval', LLAMA, '--inputs', at('frac-token.json')], mentions: () => [at('frac-token.json'), 'inputs.input_ids', /data\[1\]: 72\.7 is not an integer \(dtype int64\)/] },
      { name: 'an int64 beyond 2^53', args: () => ['eval', LLAMA, '--inputs', at('big-token.json')], mentions: () => [at('big-token.json'), 'inputs.input_ids', /outside the int64 range/] },
      { name: 'a uint8 of 300', args: () => ['eval', MODEL, '--inputs', at('u8.json')], mentions: () => [at('u8.json'), 'inputs.x', /300 is outside the uint8 range/] },
      { name: 'NaN as an int64', args: () => ['eval', LLAMA, '--inputs', at('nan-token.json')], mentions: () => [at('nan-token.json'), 'inputs.input_ids', /"NaN" is not a int64 value/] },
      { name: 'a prompt with invalid UTF-8 (U+FFFD from the shell)', args: () => ['generate', PLAN, '--prompt', 'caf\uFFFD', '--max-new-tokens', '1'], mentions: () => ['--prompt', /U\+FFFD/] },
      { name: 'a prompt file that is not UTF-8', args: () => ['generate', PLAN, '--prompt-file', at('latin1.txt'), '--max-new-tokens', '1'], mentions: () => [at('latin1.txt'), '--prompt-file', /not valid UTF-8/] },
    ],
    messages: [
      { name: '--prefill 0 names --prefill', args: () => ['compile', LLAMA, '-o', at('out', 'p0.json'), '--calibration', CALIBRATION, '--prefill', '0'], mentions: () => ['--prefill', /expects an integer >= 1, got '0'/] },
      { name: '--max-new-tokens 1.5', args: () => ['generate', PLAN, '--prompt', 'hi', '--max-new-tokens', '1.5'], mentions: () => ['--max-new-tokens', /integer >= 1/] },
      { name: 'a 2^40 input dim at compile', args: () => ['compile', model('huge-dim'), '-o', at('out', 'huge-dim.json')], mentions: () => [model('huge-dim'), "input 'x'", /4398046511104 elements \(\[1099511627776, 4\]\)/] },
      { name: 'an unknown backend', args: () => ['run', PLAN, '--inputs', IN, '--backend', 'gpu'], mentions: () => ['--backend', /unknown backend 'gpu'/] },
      { name: 'a token id outside the vocabulary', args: () => ['run', MODEL_PLAN, '--inputs', at('oov.json'), '--backend', 'sim'], mentions: () => [at('oov.json'), 'inputs.input_ids', /token id 300 is outside the vocabulary \(256\)/] },
      { name: 'a missing inputs file', args: () => ['run', PLAN, '--inputs', at('nope.json')], mentions: () => [at('nope.json'), /not found/] },
    ],
  };
}

/**
 * sha256 of a file. Rehashing the 45 MB plan sidecars for every case would dominate the corpus's time,
 * so a hash is reused while the file's inode, size, mtime and ctime are unchanged (any write to the
 * file, or a rename over it, changes them; ctime cannot be set back).
 */
const hashCache = new Map<string, { stamp: string; hash: string }>();
function sha(file: string): string {
  const st = fs.statSync(file, { bigint: true });
  const stamp = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
  const hit = hashCache.get(file);
  if (hit && hit.stamp === stamp) return hit.hash;
  const hash = createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  hashCache.set(file, { stamp, hash });
  return hash;
}

/** Hashes of every regular file of the fixture folder (not following links; FIFOs left alone) and REPO_INPUTS. */
function snapshot(): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out.set(p, sha(p));
    }
  };
  walk(tmp);
  for (const f of REPO_INPUTS) out.set(f, sha(f));
  return out;
}

let passed = 0;
let failed = 0;

describe('bad-input corpus', () => {
  beforeAll(async () => {
    arithmeticModel(MODEL);
    writeJson(IN, inputs([1, 2, 3, 4, -1, -2, -3, -4]));
    let r = await fhecInProcess('compile', MODEL, '-o', PLAN);
    expect(r.status, r.stderr).toBe(0);
    // Integrity fixtures.
    planCopy('flipped', (d) => flipBit(path.join(d, 'plan.weights.bin'), 17));
    planCopy('swapped', (d) => fs.writeFileSync(path.join(d, 'plan.weights.bin'), new Uint8Array(fs.statSync(path.join(d, 'plan.weights.bin')).size)));
    planCopy('nodigest', (d) => {
      const f = path.join(d, 'plan.json');
      const doc = JSON.parse(fs.readFileSync(f, 'utf8'));
      delete doc.weights.sha256;
      fs.writeFileSync(f, JSON.stringify(doc));
    });
    planCopy('dirsidecar', (d) => {
      fs.rmSync(path.join(d, 'plan.weights.bin'));
      fs.mkdirSync(path.join(d, 'plan.weights.bin'));
    });
    planCopy('stored', (d) => {
      moveWeightsToStore(path.join(d, 'plan.json'), path.join(d, 'weights'));
      const chunks = fs.readdirSync(path.join(d, 'weights'));
      flipBit(path.join(d, 'weights', chunks[0]!), 3);
    });
    r = await fhecInProcess('compile', LLAMA, '-o', MODEL_PLAN, '--calibration', CALIBRATION, '--prefill', '2', '--max-windows', '1', '--ring-degree', '16384');
    expect(r.status, r.stderr).toBe(0);
    writeJson(at('oov.json'), { inputs: { input_ids: { dims: [1, 2], dtype: 'int64', data: [300, 1] } } });
    writeJson(IDS, { inputs: { input_ids: { dims: [1, 2], dtype: 'int64', data: [72, 105] } } });
    fs.mkdirSync(at('mp-flipped'));
    for (const f of fs.readdirSync(at('mp'))) if (f.startsWith('p.')) fs.copyFileSync(at('mp', f), at('mp-flipped', f));
    flipBit(at('mp-flipped', 'p.embedding.bin'), 1000);
    // Overflow fixtures.
    writeJson(at('big.json'), inputs([1e12, 2e12, 1, 1, 1, 1, 1, 1]));
    writeJson(at('nan.json'), inputs([1, 'NaN', 1, 1, 1, 1, 1, 1]));
    // Containment fixtures: the same model with W and bias in external data.
    arithmeticModel(at('ext-ok', 'model.onnx'), { externalData: 'w.bin' });
    fs.writeFileSync(at('outside.bin'), fs.readFileSync(at('ext-ok', 'w.bin')));
    arithmeticModel(at('ext-symlink', 'model.onnx'), { externalData: 'w.bin' });
    fs.rmSync(at('ext-symlink', 'w.bin'));
    fs.symlinkSync(at('outside.bin'), at('ext-symlink', 'w.bin'));
    arithmeticModel(at('ext-fifo', 'model.onnx'), { externalData: 'w.bin' });
    fs.rmSync(at('ext-fifo', 'w.bin'));
    execFileSync('mkfifo', [at('ext-fifo', 'w.bin')]);
    arithmeticModel(at('ext-short', 'model.onnx'), { externalData: 'w.bin' });
    fs.truncateSync(at('ext-short', 'w.bin'), 20);
    // Output fixtures.
    fs.symlinkSync(MODEL, at('link-to-model.json'));
    fs.linkSync(IN, at('hardlink-in.json'));
    fs.mkdirSync(at('out'), { recursive: true });
    fs.mkdirSync(at('readonly'));
    fs.chmodSync(at('readonly'), 0o555);
    fs.mkdirSync(at('sidecar-clash'));
    fs.copyFileSync(MODEL, at('sidecar-clash', 'm.weights.bin'));
    writeJson(at('cal.json'), '{"inputs": {}}');
    // Silent-acceptance fixtures.
    arithmeticModel(at('opset999', 'model.onnx'), { opset: 999 });
    writeJson(at('f32-overflow.json'), inputs([1, 1e39, 1, 1, 1, 1, 1, 1]));
    writeJson(at('f64-overflow.json'), '{"inputs": {"x": {"dims": [2, 4], "dtype": "float32", "data": [1e999, 1, 1, 1, 1, 1, 1, 1]}}}');
    writeJson(at('frac-token.json'), { inputs: { input_ids: { dims: [1, 2], dtype: 'int64', data: [72, 72.7] } } });
    writeJson(at('big-token.json'), { inputs: { input_ids: { dims: [1, 2], dtype: 'int64', data: [72, 2 ** 60] } } });
    writeJson(at('nan-token.json'), { inputs: { input_ids: { dims: [1, 2], dtype: 'int64', data: [72, 'NaN'] } } });
    writeJson(at('u8.json'), inputs([1, 300, 1, 1, 1, 1, 1, 1], 'uint8'));
    fs.writeFileSync(at('latin1.txt'), Buffer.from([0x63, 0x61, 0x66, 0xe9]));
    // Messages fixtures.
    arithmeticModel(at('huge-dim', 'model.onnx'), { inputDims: [2 ** 40, 4] });
  }, 120_000);

  afterAll(() => {
    console.log(`bad-input corpus: ${passed} passed, ${failed} failed`);
  });

  for (const [kind, cases] of Object.entries(corpus())) {
    describe(kind, () => {
      for (const c of cases) {
        it(c.name, async () => {
          const before = snapshot();
          let r: InProcessResult | undefined;
          try {
            r = await fhecInProcess(...c.args());
            expect(r.status, r.stderr).toBe(2);
            const lines = r.stderr.trim().split('\n');
            expect(lines, r.stderr).toHaveLength(1);
            expect(r.stderr).toMatch(/^fhec: error: /);
            expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
            for (const m of c.mentions()) {
              if (typeof m === 'string') expect(r.stderr, `mentions ${m}`).toContain(m);
              else expect(r.stderr).toMatch(m);
            }
            const after = snapshot();
            for (const [f, h] of before) expect(after.get(f), `${f} unchanged`).toBe(h);
            passed++;
          } catch (e) {
            failed++;
            throw e;
          }
        }, 60_000);
      }
    });
  }
});

// What the refusals leave working: the flags that let a user proceed, and the good paths they guard.
describe('good input still goes through', () => {
  it('--allow-newer-opset evaluates a newer opset with a warning', async () => {
    const r = await fhecInProcess('eval', at('opset999', 'model.onnx'), '--inputs', IN, '--allow-newer-opset');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: .*opset 999, newer than the 28 fhec implements; evaluating with opset 28 semantics/);
    // x @ W + b, evaluated as at opset 28.
    expect(Object.values(JSON.parse(r.stdout).outputs)[0]).toEqual({ dims: [2, 3], dtype: 'float32', data: [-0.5, 7.5, 7.5, 2.5, -3.5, -1.5] });
  });

  it('the plan records its input ranges; the default is the widest power of two the modulus holds', () => {
    const doc = JSON.parse(fs.readFileSync(PLAN, 'utf8'));
    const [lo, hi] = doc.inputRanges.x as [number, number];
    expect(lo).toBe(-hi);
    expect(Number.isInteger(Math.log2(hi))).toBe(true);
    expect(hi).toBeGreaterThanOrEqual(2 ** 10);
    expect(doc.weights.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('--input-range NAME=LO,HI is recorded, and values inside it run encrypted on seal to the right answer', async () => {
    const plan = at('ranged', 'plan.json');
    let r = await fhecInProcess('compile', MODEL, '-o', plan, '--input-range', 'x=-100,100');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^input ranges: x \[-100, 100\]; the client refuses values outside them$/m);
    expect(JSON.parse(fs.readFileSync(plan, 'utf8')).inputRanges).toEqual({ x: [-100, 100] });
    const inFile = writeJson(at('ranged', 'in.json'), inputs([100, 0, 0, 0, -100, 0, 0, 0]));
    const out = at('ranged', 'out', 'y.json'); // a folder that does not exist yet is created
    r = await fhecInProcess('run', plan, '--inputs', inFile, '--out', out, '--backend', 'seal');
    expect(r.status, r.stderr).toBe(0);
    const y = Object.values(JSON.parse(fs.readFileSync(out, 'utf8')).outputs)[0] as { data: number[] };
    [51, -98, 203, -49, 102, -197].forEach((want, i) => expect(Math.abs(y.data[i]! - want)).toBeLessThan(1e-3 + 1e-3 * Math.abs(want)));
    // Written through a temporary file, renamed: nothing else is left in the folder.
    expect(fs.readdirSync(path.dirname(out))).toEqual(['y.json']);
    r = await fhecInProcess('run', plan, '--inputs', writeJson(at('ranged', 'over.json'), inputs([100.5, 0, 0, 0, 0, 0, 0, 0])), '--backend', 'seal');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/inputs\.x: element 0 is 100\.5, outside the range \[-100, 100\]/);
  }, 60_000);

  it('--prompt-file with --prompt-bytes takes bytes that are not UTF-8 past the check', async () => {
    // The plan is not a generation plan: the prompt passes and the plan is what gets refused.
    const r = await fhecInProcess('generate', PLAN, '--prompt-file', at('latin1.txt'), '--prompt-bytes', '--max-new-tokens', '1');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/not a generation plan/);
  });

  it('a usage error is one line and a hint, not the whole usage text', async () => {
    const r = await fhecInProcess('eval', MODEL);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual(["error: required option '--inputs <file>' not specified", '(add --help for usage)']);
  });
});

