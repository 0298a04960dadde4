// The precision pass against SEAL on the real model: model A (models/llama-byte-a) compiled to a
// prefill of 2 tokens at N = 16384 and run on node-seal in debug mode (the client decrypts the values
// checked here; runtime/debug/measure.ts), on 2 bytes of held-out text.
//
// Precision of a value, in bits, for both the prediction and the measurement:
//   bits = log2(max |v| / max |error|), maxima over all slots of the ciphertext,
// with max |v| from the float64 evaluation of the same program and the error against that evaluation
// (CKKS error only: the polynomial approximations are part of the program). The same max |v| is used for
// both, so predicted - measured bits = log2(measured error / predicted error).
//
// Checked at the outputs (logits and the present K/V), at the residual stream after each decoder layer
// (and after each attention block), and at every approximation's output:
// - the typical estimate (passes/fhe/precision.ts given the run's float64 values: the median of draws
//   of the noise model propagated slot by slot, passes/fhe/noise-sample.ts) is within 3 bits of the
//   measurement at every row. The measurement is one draw too: every SEAL key set has its own
//   key-switching spikes, and the measured precision of one value moves by up to 3 bits between key sets
//   (more where few slots hold the largest error, as after a 1/sqrt or an exp). At 2.5 bits, runs failed
//   on key draws: layer 1's 1/sqrt once measured 2.52 bits from its estimate, and the residual stream
//   after layer 0 once 2.66;
// - the gaps (typical - measured bits) split in two: their median, the run's common shift, within 2 bits,
//   and their spread around it (median absolute deviation) within 1 bit. A key set moves every row
//   together, because an error made early (the input's encryption, the first key switches) carries into
//   every later value: over 7 CI runs of this test the median gap was -0.46 to +1.28 bits (standard
//   deviation 0.56; the +1.28 run had nearly every row +1 to +1.6), while the spread stayed 0.32-0.67. An
//   estimate biased by 2 bits or more fails the first gate; one whose shape is wrong (some kinds of value
//   off, others not) fails the second, whatever the key draw;
// - the bound (analytic, failure probability 2^-20) is not below the measured error. On a whole model
//   that holds trivially for most rows: the bound is finite only up to the first attention's exp and
//   soon far above the value itself (precision.ts says why). Each row's bound is therefore classed as
//   informative (below the value's magnitude: some bits guaranteed), vacuous (finite but at least the
//   magnitude) or infinite; the classes are printed and their counts asserted, so a change to the
//   analysis or to the lowering that moves a row from one class to another is noticed, and the
//   informative bounds are also held to the measurement from below (not looser than 23 bits).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileModel } from '../compiler/model-plan.js';
import { evaluatePlain, maxAbs } from '../ir/fhe/plain-eval.js';
import { analyzePrecision } from '../passes/fhe/analysis/precision.js';
import { DEBUG_LABEL, debugMeasureErrors } from '../runtime/debug/measure.js';
import { matchManagedValues, residualStream } from '../runtime/debug/model-values.js';
import { embedTokens } from '../runtime/model-session.js';
import { BOUND_CLASSES, byBoundClass } from './helpers/bound-class.js';
import { MODELS, ROOT } from './helpers/shared.js';

const MODEL = path.join(ROOT, 'models', 'llama-byte-a', 'model.onnx');
const CAL = path.join(ROOT, 'models', 'llama-byte-a', 'calibration.txt');
const S = 2;

interface Row {
  what: string;
  kind: 'output' | 'layer' | 'attention' | 'approximation';
  name: string;
  magnitude: number;
  measured: number;
  typical: number;
  bound: number;
}

const bits = (magnitude: number, error: number) => Math.log2(magnitude / error);

describe(`precision pass on model A (prefill of ${S} tokens, N = 16384) against SEAL`, () => {
  it('typical estimate within 3 bits of the measured precision at every row, their common shift within 2 and spread within 1; bound above, its informative rows counted', async () => {
    const t0 = performance.now();
    const c = compileModel(MODEL, { calibration: CAL, prefill: S, ringDegree: 16384 });
    const emb = c.lowered.embedding;
    const tokens = Array.from(fs.readFileSync(path.join(MODELS, 'eval-dev.txt')).subarray(100, 100 + S));
    const tensors = { [emb.fhe]: embedTokens(new Float32Array(emb.table.load().data), emb.table.dims[0]!, emb.table.dims[1]!, tokens) };

    // Where the residual stream and the approximations' outputs sit in the managed program.
    const residuals = residualStream(c.lowered.program, emb.fhe);
    expect(residuals.length).toBe(4); // two decoder layers: after attention, after the MLP
    const managedPlain = evaluatePlain(c.managed, tensors);
    const where = matchManagedValues(evaluatePlain(c.lowered.program, tensors), c.managed, managedPlain, [...residuals, ...c.lowered.probes.map((p) => p.output)]);
    const wanted: Omit<Row, 'magnitude' | 'measured' | 'typical' | 'bound'>[] = [];
    for (const op of c.managed.ops) if (op.kind === 'output') wanted.push({ what: `output ${op.tensor}`, kind: 'output', name: op.args[0]!.name });
    residuals.forEach((r, i) => {
      const layer = i >> 1;
      wanted.push(i % 2 ? { what: `after layer ${layer}`, kind: 'layer', name: where.get(r)! } : { what: `layer ${layer} after attention`, kind: 'attention', name: where.get(r)! });
    });
    for (const p of c.lowered.probes) wanted.push({ what: `${p.op.replace('/model/', '')} ${p.fn}`, kind: 'approximation', name: where.get(p.output)! });
    for (const w of wanted) expect(w.name, w.what).toBeDefined();

    const tCompiled = performance.now();
    const pred = analyzePrecision(c.managed, { params: c.params, plainValues: managedPlain, inputBounds: { [emb.fhe]: maxAbs(tensors[emb.fhe]!) } });
    expect(pred.typical).toBe('sampled');
    const tPredicted = performance.now();
    const meas = await debugMeasureErrors(c.managed, c.params, tensors, { reference: managedPlain, only: new Set(wanted.map((w) => w.name)) });
    expect(meas.label).toBe(DEBUG_LABEL);
    expect(meas.backend).toBe('seal');
    const tMeasured = performance.now();

    const rows: Row[] = wanted.map((w) => {
      const m = meas.values.get(w.name)!;
      const p = pred.values.get(w.name)!;
      return { ...w, magnitude: m.magnitude, measured: m.error, typical: p.typicalError, bound: p.error };
    });
    console.log(
      `model A prefill ${S} on seal: compile ${((tCompiled - t0) / 1000).toFixed(0)} s, precision pass ${((tPredicted - tCompiled) / 1000).toFixed(0)} s, ` +
        `debug run ${((tMeasured - tPredicted) / 1000).toFixed(0)} s, ${c.refreshes} refreshes\n` +
        `${'value'.padEnd(58)}measured  typical  bound   (bits; typical - measured)\n` +
        rows
          .map((r) => {
            const [mb, tb, bb] = [r.measured, r.typical, r.bound].map((e) => bits(r.magnitude, e));
            return `${r.what.padEnd(58)}${mb.toFixed(1).padStart(8)} ${tb.toFixed(1).padStart(8)} ${bb.toFixed(1).padStart(6)}   ${(tb - mb >= 0 ? '+' : '') + (tb - mb).toFixed(2)}`;
          })
          .join('\n'),
    );
    const gap = (r: Row) => bits(r.magnitude, r.typical) - bits(r.magnitude, r.measured);
    for (const r of rows) {
      expect(r.measured, r.what).toBeGreaterThan(0);
      // The typical estimate, either way, within 3 bits: the measured figure itself moves 2-3 bits between
      // SEAL key sets (the keys are fresh each run), so a tighter gate would test the key draw. The medians
      // below catch a bias.
      expect(Math.abs(gap(r)), r.what).toBeLessThanOrEqual(3);
      // The bound holds (trivially where it is infinite or vacuous: counted below).
      expect(r.measured, r.what).toBeLessThanOrEqual(r.bound);
    }
    const classes = byBoundClass(rows, (r) => r.bound, (r) => r.magnitude);
    const { informative, vacuous, infinite } = classes;
    console.log(
      `bound vs measured error: ${informative.length} of ${rows.length} rows informative (bound below the magnitude), ` +
        `${vacuous.length} vacuous (bound >= magnitude), ${infinite.length} infinite\n` +
        BOUND_CLASSES.map((c) => `  ${c}: ${classes[c].map((r) => r.what).join(', ') || '-'}`).join('\n'),
    );
    // The counts as measured (prefill of 2, N = 16384, the normalize-and-square softmax with one squaring,
    // so two 1/x rows per attention): the bound stays informative up to the first layer's K/V outputs, its
    // first rms_norm and its exp, vacuous through the rest of the first attention (its output and both 1/x),
    // infinite after.
    expect({ informative: informative.length, vacuous: vacuous.length, infinite: infinite.length }).toEqual({ informative: 4, vacuous: 3, infinite: 15 });
    expect(informative.map((r) => r.what).sort()).toEqual([
      'layers.0/input_layernorm/ReduceMean:rms_norm invsqrt',
      'layers.0/self_attn/Softmax:attention exp',
      'output present.0.key',
      'output present.0.value',
    ]);
    // Where the bound says something, it is not absurdly loose: within 23 bits of the measured precision.
    // The loosest is the first exp (measured 20.4-21.1 bits in runs so far, bound 1.1, so 19.3-20.0 bits
    // loose): a relative-error fit whose worst absolute error sits at the top of its widened interval
    // (e^9.5), where no calibrated score goes. 23 = 20 plus the 3 bits the measured side moves between key
    // sets (a CI run measured 20.02 against a gate of 20).
    for (const r of informative) expect(bits(r.magnitude, r.measured) - bits(r.magnitude, r.bound), r.what).toBeLessThanOrEqual(23);
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    for (const [which, gaps] of [
      ['all rows', rows.map(gap)],
      ['approximations', rows.filter((r) => r.kind === 'approximation').map(gap)],
    ] as const) {
      const shift = median(gaps);
      const spread = median(gaps.map((g) => Math.abs(g - shift)));
      console.log(`${which}: median gap ${shift.toFixed(2)} bits, spread around it ${spread.toFixed(2)}`);
      expect(Math.abs(shift), which).toBeLessThanOrEqual(2);
      expect(spread, which).toBeLessThanOrEqual(1);
    }
    expect(rows.filter((r) => r.kind === 'layer').length).toBe(2);
    expect(rows.filter((r) => r.kind === 'approximation').length).toBe(c.lowered.probes.length);
  }, 600_000);
});
