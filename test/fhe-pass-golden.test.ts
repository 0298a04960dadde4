// Golden tests of the FHE passes, FileCheck style: test/golden/fhe-passes/<pass>/<case>.fhe is FHE IR
// text whose `//` header says what to run and what to expect:
//   // RUN: place-refresh{strategy=greedy,levels=2},manage-scales     the pipeline
//   // CHECK: attr mgmt.refreshes = 1      lines that must appear in the output, in this order
//   // CHECK-NEXT: ...                      must be the line right after the previous match
//   // CHECK-NOT: refresh                   must not appear after the previous match (before the next CHECK)
//   // ERROR: needs more than               the pipeline must fail with this diagnostic
//   // SOURCE: canonical A_nocache_opset14 prefill=4   lower-canonical's input: a shared model raised to the
//                                  canonical IR for a prefill, calibrated on 2 windows of calibration.txt
//   // SOURCE: graph test_matmul_2d   lower-graph's input: an ONNX node test's model (imported, folded)
//                                  (a SOURCE case has no program text)
// Every output must also be valid IR: it parses back and prints the same. Each registered pass has a
// folder with at least two cases.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FhecError } from '../ir/errors.js';
import { parseFhe } from '../ir/fhe/parse.js';
import { printFhe } from '../ir/fhe/print.js';
import { runFhePipeline } from '../compiler/driver.js';
import { fhePasses } from '../passes/fhe/registry.js';
import { MODELS, NODE_TESTS, ROOT } from './helpers/shared.js';
import type { FheProgram } from '../ir/fhe/types.js';
import { graphSource } from '../passes/fhe/lower/lower-graph-pass.js';
import { loadModel } from '../compiler/driver.js';
import { textCalibrationSets } from '../compiler/calibration-data.js';
import { calibrate } from '../passes/calibrate/calibrate.js';
import { generatorBindings } from '../passes/canonical/specialize.js';
import { collectAttentionStats } from '../passes/fhe/lower-canonical/attention-stats.js';
import { canonicalSource } from '../passes/fhe/lower-canonical/lower-canonical-pass.js';
import type { LoweredModel } from '../passes/fhe/lower-canonical/lower-model.js';
import { unitOf, type FheUnit } from '../passes/fhe/pipeline/unit.js';

const DIR = path.join(ROOT, 'test', 'golden', 'fhe-passes');

interface Directive {
  kind: 'RUN' | 'CHECK' | 'CHECK-NEXT' | 'CHECK-NOT' | 'ERROR' | 'SOURCE';
  text: string;
}

function directives(text: string): Directive[] {
  const out: Directive[] = [];
  for (const m of text.matchAll(/^\s*\/\/\s*(RUN|CHECK-NEXT|CHECK-NOT|CHECK|ERROR|SOURCE):\s?(.*)$/gm)) out.push({ kind: m[1] as Directive['kind'], text: m[2]!.trim() });
  return out;
}

/** FileCheck's core: ordered CHECK, CHECK-NEXT on the following line, CHECK-NOT between matches. */
function fileCheck(output: string, checks: Directive[]): string[] {
  const lines = output.split('\n');
  const failures: string[] = [];
  let at = -1;
  let nots: string[] = [];
  const notsBetween = (from: number, to: number) => {
    for (const n of nots) {
      const hit = lines.slice(from + 1, to).findIndex((l) => l.includes(n));
      if (hit >= 0) failures.push(`CHECK-NOT: '${n}' found at line ${from + 2 + hit}: ${lines[from + 1 + hit]}`);
    }
    nots = [];
  };
  for (const c of checks) {
    if (c.kind === 'CHECK-NOT') {
      nots.push(c.text);
      continue;
    }
    if (c.kind === 'CHECK-NEXT') {
      if (!lines[at + 1]?.includes(c.text)) failures.push(`CHECK-NEXT: '${c.text}' is not line ${at + 2} (${lines[at + 1] ?? 'end of output'})`);
      at++;
      continue;
    }
    const found = lines.findIndex((l, i) => i > at && l.includes(c.text));
    if (found < 0) {
      failures.push(`CHECK: '${c.text}' not found after line ${at + 1}`);
      continue;
    }
    notsBetween(at, found);
    at = found;
  }
  notsBetween(at, lines.length);
  return failures;
}

/** The unit of a SOURCE case: an arithmetic graph (lower-graph) or a calibrated canonical model (lower-canonical). */
function sourceUnit(spec: string): FheUnit<{ program: FheProgram }> {
  const [kind, name, shape] = spec.split(/\s+/);
  if (kind === 'graph') {
    const graph = loadModel(path.join(NODE_TESTS, name!, 'model.onnx')).graph;
    return unitOf({ name: 'graph', slots: 4096, constants: new Map(), ops: [] }, { source: graphSource(graph, 4096) });
  }
  expect(kind).toBe('canonical');
  const S = Number(/prefill=(\d+)/.exec(shape ?? '')?.[1] ?? 4);
  const graph = loadModel(path.join(MODELS, `${name}.onnx`), { canonical: true, bindings: (g) => generatorBindings(g, { kind: 'prefill', sequence: S }) }).graph;
  const sets = textCalibrationSets(graph, fs.readFileSync(path.join(MODELS, 'calibration.txt')), 'calibration.txt', { window: S, maxWindows: 2 }).map((x) => x.inputs);
  calibrate(graph, sets);
  const attention = collectAttentionStats(graph, sets);
  return unitOf<LoweredModel>({ name: 'model', slots: 4096, constants: new Map(), ops: [] }, { source: canonicalSource(graph, { attention }, 4096) });
}

const folders = fs.readdirSync(DIR, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);

describe('FHE pass golden cases', () => {
  it('every registered pass has a folder of at least two cases', () => {
    for (const name of fhePasses.keys()) {
      const dir = path.join(DIR, name);
      const cases = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.fhe')) : [];
      expect(cases.length, `test/golden/fhe-passes/${name}`).toBeGreaterThanOrEqual(2);
    }
  });

  for (const folder of folders) {
    for (const file of fs.readdirSync(path.join(DIR, folder)).filter((f) => f.endsWith('.fhe'))) {
      it(`${folder}/${file}`, () => {
        const rel = path.join('test', 'golden', 'fhe-passes', folder, file);
        const text = fs.readFileSync(path.join(ROOT, rel), 'utf8');
        const ds = directives(text);
        const run = ds.filter((d) => d.kind === 'RUN').map((d) => d.text);
        expect(run.length, 'one RUN line').toBe(1);
        const error = ds.find((d) => d.kind === 'ERROR');
        let output: string;
        try {
          const source = ds.find((d) => d.kind === 'SOURCE');
          const unit = source ? sourceUnit(source.text) : unitOf(parseFhe(text, rel));
          runFhePipeline(unit, run[0]!, { verifyEach: true });
          output = printFhe(unit.program, { elideConstantsAbove: 16 });
          if (process.env.GOLDEN_PRINT) fs.writeFileSync(path.join(process.env.GOLDEN_PRINT, `${folder}.${file}`), output);
        } catch (e) {
          if (!(e instanceof FhecError) || !error) throw e;
          expect(e.format()).toContain(error.text);
          return;
        }
        expect(error, `expected the diagnostic '${error?.text}', but the pipeline succeeded`).toBeUndefined();
        expect(fileCheck(output, ds.filter((d) => d.kind.startsWith('CHECK')))).toEqual([]);
        // The output is valid IR: it parses back to the same text.
        expect(printFhe(parseFhe(output, `${rel} (output)`))).toBe(output);
      });
    }
  }
});
