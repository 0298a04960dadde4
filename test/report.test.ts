// `fhec report`: renders the HTML report of an arithmetic plan and of model A's generation plan, each
// without and with a run trace (`fhec run --trace`, `fhec generate --trace`), opens it in headless
// Chromium (Debian's /usr/bin/chromium through playwright-core, never a downloaded browser), checks
// that every chart rendered data and that no console error occurred, reads the numbers back from the
// page and compares them with the plan's and the trace's, and keeps screenshots in test/artifacts/.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { exportOnnx } from '../compiler/onnx/export.js';
import { compileGenerationPlan } from '../compiler/generation-plan.js';
import { attr, GraphBuilder } from '../ir/graph/builder.js';
import { Tensor } from '../ir/tensor.js';
import { tensorsToJson } from '../ir/tensor-json.js';
import { parseFhe } from '../ir/fhe/parse.js';
import { expandOpKernels, parseAnalysis, type PlanAnalysis } from '../runtime/plan/analysis-schema.js';
import { readRunTrace } from '../runtime/trace/run-trace.js';
import { splitByStages } from '../runtime/trace/stage-split.js';
import { refreshRounds } from '../ir/fhe/refresh-rounds.js';
import { fhecInProcess as fhec } from './helpers/in-process.js';
import { MODELS, ROOT } from './helpers/shared.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.join(ROOT, 'test', 'artifacts');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-report-'));
let browser: Browser;

function rng(seed: number): () => number {
  let s = seed;
  return () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) - 0.5;
}

function randomTensor(dims: number[], seed: number): Tensor {
  const r = rng(seed);
  return Tensor.from('float32', dims, Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => r()));
}

/** A small arithmetic graph: two linear layers around a square, so kernels differ in cost and depth. */
function arithmeticModel(file: string): string {
  const b = new GraphBuilder('mlp', { '': 17 });
  const x = b.input('x', 'float32', [2, 8]);
  const h = b.op1('MatMul', [x, b.constant('W1', randomTensor([8, 8], 1))], 'float32', [2, 8], {}, { name: 'fc1' });
  const a = b.op1('Add', [h, b.constant('b1', randomTensor([8], 2))], 'float32', [2, 8], {}, { name: 'bias1' });
  const sq = b.op1('Mul', [a, a], 'float32', [2, 8], {}, { name: 'square' });
  const y = b.op1('Gemm', [sq, b.constant('W2', randomTensor([8, 4], 3))], 'float32', [2, 4], { alpha: attr.float(1) }, { name: 'fc2' });
  b.output(y);
  exportOnnx(b.graph, file);
  const inputs = path.join(dir, 'mlp.in.json');
  fs.writeFileSync(inputs, JSON.stringify(tensorsToJson({ x: randomTensor([2, 8], 4) }, 'inputs')));
  return inputs;
}

interface PageReadback {
  errors: string[];
  charts: { id: string; rows: number; dataRows: number; drawn: boolean }[];
  figures: Record<string, string>;
  data: Record<string, Record<string, unknown>[]>;
}

/** Runs in the page (a string: the tests are type-checked without the DOM library). */
const READBACK = `(async () => {
  const r = window.fhecReport;
  await r.ready;
  const charts = [...document.querySelectorAll('.chart')].map((el) => {
    const id = el.id.replace(/^chart-/, '');
    const canvas = el.querySelector('canvas');
    return { id, rows: Number(el.dataset.rows), dataRows: r.views[id] ? r.views[id].data(el.dataset.dataset).length : -1, drawn: !!canvas && canvas.width > 0 && canvas.height > 0 };
  });
  const data = {};
  for (const el of document.querySelectorAll('.chart')) data[el.id.replace(/^chart-/, '')] = r.views[el.id.replace(/^chart-/, '')].data(el.dataset.dataset);
  const figures = {};
  for (const td of document.querySelectorAll('#summary td[data-key]')) if (td.dataset.value !== undefined) figures[td.dataset.key] = td.dataset.value;
  return { charts, figures, data };
})()`;

/** Opens the report, waits for the charts, and reads back every chart's data and the key figures. */
async function openReport(html: string, shot: string): Promise<PageReadback> {
  const page: Page = await browser.newPage({ viewport: { width: 1150, height: 1400 } });
  const errors: string[] = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()}`));
  page.on('request', (r) => !r.url().startsWith('file:') && !r.url().startsWith('data:') && errors.push(`network request: ${r.url()}`));
  await page.goto(`file://${html}`);
  await page.waitForFunction('window.fhecReport !== undefined');
  const back = (await page.evaluate(READBACK)) as Omit<PageReadback, 'errors'>;
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, shot), fullPage: true });
  // The first screen (figures, step plans, levels, refreshes), as the README shows it.
  await page.screenshot({ path: path.join(ARTIFACTS, shot.replace(/\.png$/, '.top.png')) });
  await page.close();
  return { ...back, errors };
}

function checkCharts(r: PageReadback, expected: string[]): void {
  expect(r.errors).toEqual([]);
  expect(r.charts.map((c) => c.id).sort()).toEqual([...expected].sort());
  for (const c of r.charts) {
    expect(c.dataRows, `chart ${c.id}`).toBeGreaterThan(0);
    expect(c.dataRows, `chart ${c.id}`).toBe(c.rows);
    expect(c.drawn, `chart ${c.id} drew nothing`).toBe(true);
  }
}

function sum(rows: Record<string, unknown>[], field: string, where: (r: Record<string, unknown>) => boolean = () => true): number {
  return rows.filter(where).reduce((s, r) => s + (r[field] as number), 0);
}

beforeAll(async () => {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: the report test needs Debian's chromium (apt-get install chromium)`);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
}, 30000);

afterAll(async () => {
  await browser?.close();
});

describe('fhec report of an arithmetic plan', () => {
  const model = path.join(dir, 'mlp.onnx');
  const plan = path.join(dir, 'mlp.json');
  const trace = path.join(dir, 'mlp.run.json');
  let analysis: PlanAnalysis;
  let program: ReturnType<typeof parseFhe>;

  beforeAll(async () => {
    const inputs = arithmeticModel(model);
    const c = await fhec('compile', model, '-o', plan);
    expect(c.status, c.stderr).toBe(0);
    const r = await fhec('run', plan, '--inputs', inputs, '--backend', 'sim', '--out', path.join(dir, 'mlp.out.json'), '--trace', trace);
    expect(r.status, r.stderr).toBe(0);
    const doc = JSON.parse(fs.readFileSync(plan, 'utf8'));
    analysis = parseAnalysis(doc.analysis, plan);
    program = parseFhe(doc.program, plan);
  }, 60000);

  it('the plan attributes every managed op to one of its nodes or to the outputs', () => {
    const kernels = expandOpKernels(analysis.opKernels, program.ops.length);
    expect(kernels.length).toBe(program.ops.length);
    expect(analysis.kernels.map((k) => k.name)).toEqual(['fc1', 'bias1', 'square', 'fc2']);
    // Only output ops are left without a kernel; the square's ct x ct product is the square's.
    program.ops.forEach((op, i) => {
      if (kernels[i] === -1) expect(op.kind).toBe('output');
      if (op.kind === 'mul') expect(analysis.kernels[kernels[i]!]!.name).toBe('square');
    });
  });

  it('renders without a run: levels, ops, predicted time and precision match the plan', async () => {
    const html = path.join(dir, 'mlp.html');
    const r0 = await fhec('report', plan, '-o', html);
    expect(r0.status, r0.stderr).toBe(0);
    const r = await openReport(html, 'report-arithmetic.png');
    checkCharts(r, ['levels', 'ops-by-kernel', 'ops-by-layer', 'time-by-kernel', 'time-by-kind', 'precision']);
    const ct = program.ops.filter((o) => o.result?.type.kind === 'ct');
    expect(r.data['levels']!.length).toBe(ct.length);
    expect(r.data['levels']!.map((p) => p['level'])).toEqual(ct.map((o) => o.result!.type.level));
    const rot = program.ops.filter((o) => o.kind === 'rotate').length;
    expect(rot).toBeGreaterThan(0);
    expect(sum(r.data['ops-by-kernel']!, 'count', (x) => x['kind'] === 'rotations')).toBe(rot);
    expect(sum(r.data['ops-by-kernel']!, 'count', (x) => x['kind'] === 'ct x ct')).toBe(program.ops.filter((o) => o.kind === 'mul').length);
    expect(sum(r.data['time-by-kernel']!, 'ms')).toBeCloseTo(analysis.predicted!.totalMs, 6);
    expect(Number(r.figures['ops'])).toBe(program.ops.length);
    expect(Number(r.figures['refreshes'])).toBe(0);
    expect(Number(r.figures['predicted-ms'])).toBeCloseTo(analysis.predicted!.totalMs, 9);
    expect(r.data['precision']!.length).toBe(2 * analysis.precision!.values.length);
  }, 30000);

  it('renders with the run trace: measured time per kernel and kind sums to the trace', async () => {
    const t = readRunTrace(trace);
    expect(t.steps.length).toBe(1);
    expect(t.steps[0]!.ops).toBe(program.ops.length);
    const html = path.join(dir, 'mlp.run.html');
    const r0 = await fhec('report', plan, '--run', trace, '-o', html);
    expect(r0.status, r0.stderr).toBe(0);
    const r = await openReport(html, 'report-arithmetic-run.png');
    checkCharts(r, ['levels', 'ops-by-kernel', 'ops-by-layer', 'time-by-kernel', 'time-by-kind', 'precision', 'run-steps']);
    const measured = t.steps[0]!.opMs.reduce((s, x) => s + x, 0);
    expect(sum(r.data['time-by-kernel']!, 'ms', (x) => x['source'] === 'measured')).toBeCloseTo(measured, 6);
    expect(sum(r.data['time-by-kind']!, 'ms', (x) => x['source'] === 'measured')).toBeCloseTo(t.steps[0]!.byKind.reduce((s, k) => s + k.ms, 0), 6);
    expect(Number(r.figures['peak-rss'])).toBe(t.peakRssBytes);
    expect(r.figures['run-backend']).toBe('sim');
  }, 30000);

  it('a plan file that is not a plan is a clear error', async () => {
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(bad, JSON.stringify({ hello: 1 }));
    const r = await fhec('report', bad, '-o', path.join(dir, 'bad.html'));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/bad\.json.*not a plan/);
    const t = await fhec('report', plan, '--run', bad, '-o', path.join(dir, 'bad.html'));
    expect(t.status).toBe(2);
    expect(t.stderr).toMatch(/malformed trace/);
  });
});

describe('fhec report of model A generation plan', () => {
  const plan = path.join(dir, 'gen.json');
  const trace = path.join(dir, 'gen.run.json');
  let analysis: PlanAnalysis;
  let program: ReturnType<typeof parseFhe>;

  beforeAll(async () => {
    compileGenerationPlan(path.join(MODELS, 'A_kvcache_opset14.onnx'), plan, { calibration: path.join(MODELS, 'calibration.txt'), maxContext: 6, prefill: [4], maxWindows: 8 });
    const doc = JSON.parse(fs.readFileSync(path.join(dir, 'gen.steps', 'prefill-4.json'), 'utf8'));
    analysis = parseAnalysis(doc.analysis, 'prefill-4.json');
    program = parseFhe(doc.program, 'prefill-4.json');
    // A 4-byte prompt and one new token: the prefill alone.
    const g = await fhec('generate', plan, '--prompt', 'the ', '--max-new-tokens', '1', '--backend', 'sim', '--no-progress', '--trace', trace);
    expect(g.status, g.stderr).toBe(0);
  }, 180000);

  it('the prefill plan records its kernels, the greedy baseline and the search that chose its parameters', () => {
    expect(analysis.kernels.some((k) => k.op === 'attention' && k.layer === 'layer 1')).toBe(true);
    const refreshes = program.ops.filter((o) => o.kind === 'refresh').length;
    expect(refreshes).toBeGreaterThan(0);
    // The chosen placement never needs more refreshes than the greedy baseline.
    expect(analysis.refreshes.greedyKernels.length).toBeGreaterThanOrEqual(refreshes);
    expect(fs.existsSync(path.join(dir, 'gen.steps', 'parameter-search.json'))).toBe(true);
  });

  it('renders without and with the trace; the page shows the plan and the trace numbers', async () => {
    const html = path.join(dir, 'gen.html');
    const r0 = await fhec('report', plan, '-o', html);
    expect(r0.status, r0.stderr).toBe(0);
    const all = ['levels', 'refreshes', 'ops-by-kernel', 'ops-by-layer', 'time-by-kernel', 'time-by-kind', 'approximations', 'candidates'];
    const r = await openReport(html, 'report-generation.png');
    checkCharts(r, all);
    const refreshes = program.ops.filter((o) => o.kind === 'refresh').length;
    expect(sum(r.data['refreshes']!, 'count', (x) => String(x['placement']).startsWith('chosen'))).toBe(refreshes);
    expect(sum(r.data['refreshes']!, 'count', (x) => x['placement'] === 'greedy baseline')).toBe(analysis.refreshes.greedyKernels.length);
    expect(r.data['levels']!.filter((p) => p['refresh']).length).toBe(refreshes);
    expect(Number(r.figures['refreshes'])).toBe(refreshes);
    expect(Number(r.figures['greedy-refreshes'])).toBe(analysis.refreshes.greedyKernels.length);
    expect(sum(r.data['ops-by-layer']!, 'count', (x) => x['kind'] === 'rotations')).toBe(program.ops.filter((o) => o.kind === 'rotate').length);
    expect(sum(r.data['time-by-kernel']!, 'ms')).toBeCloseTo(analysis.predicted!.totalMs, 6);
    const search = JSON.parse(fs.readFileSync(path.join(dir, 'gen.steps', 'parameter-search.json'), 'utf8'));
    expect(r.data['candidates']!.filter((c) => c['chosen'] === 'chosen').length).toBe(1);
    expect(r.data['candidates']!.length).toBe(search.candidates.filter((c: { feasible: boolean; latencyMs?: number }) => c.feasible && c.latencyMs !== undefined).length);

    const t = readRunTrace(trace);
    expect(t.steps.map((s) => s.name)).toEqual(['prefill-4']);
    const html2 = path.join(dir, 'gen.run.html');
    const r1 = await fhec('report', plan, '--run', trace, '-o', html2);
    expect(r1.status, r1.stderr).toBe(0);
    const r2 = await openReport(html2, 'report-generation-run.png');
    checkCharts(r2, [...all, 'run-steps', 'run-stages']);
    // The split by refresh stage of the traced prefill: its three parts are the step's measured op time, the
    // rounds are the plan's, and the chart's stages are the heaviest waited-on ones, longest first.
    const traced = readRunTrace(trace).steps.find((s) => s.name === 'prefill-4')!;
    const split = splitByStages(program, traced.opMs, 12);
    expect(Number(r2.figures['stage-waited-ms'])).toBeCloseTo(split.waitedMs, 6);
    expect(Number(r2.figures['stage-other-ms'])).toBeCloseTo(split.otherMs, 6);
    expect(Number(r2.figures['stage-rounds-ms'])).toBeCloseTo(split.roundsMs, 6);
    expect(split.waitedMs + split.otherMs + split.roundsMs).toBeCloseTo(traced.opMs.reduce((a, x) => a + x, 0), 6);
    expect(split.rounds).toBe(refreshRounds(program).count);
    const stageRows = r2.data['run-stages']!;
    expect(stageRows.map((x) => x['seconds'] as number)).toEqual(split.heaviest.map((h) => h.waitedMs / 1000));
    expect(stageRows.every((x) => /^round \d+: /.test(String(x['stage'])))).toBe(true);
    expect(sum(r2.data['time-by-kernel']!, 'ms', (x) => x['source'] === 'measured')).toBeCloseTo(t.steps[0]!.opMs.reduce((s, x) => s + x, 0), 6);
    expect(Number(r2.figures['refresh-rounds'])).toBe(t.refresh.rounds);
    expect(t.refresh.rounds).toBeGreaterThan(0);
    expect(Number(r2.figures['refresh-bytes'])).toBe(t.refresh.bytes);
    expect(Number(r2.figures['measured-ms'])).toBe(t.steps[0]!.totalMs);
    // FHEC_UPDATE_DOCS=1 refreshes the README's screenshot from this report.
    if (process.env.FHEC_UPDATE_DOCS) fs.copyFileSync(path.join(ARTIFACTS, 'report-generation-run.top.png'), path.join(ROOT, 'docs', 'report.png'));
  }, 60000);

  it('fhec generate --trace prints the decode steps split by refresh stage, as the trace sums', async () => {
    const trace2 = path.join(dir, 'gen2.run.json');
    const g = await fhec('generate', plan, '--prompt', 'the ', '--max-new-tokens', '2', '--backend', 'sim', '--no-progress', '--trace', trace2);
    expect(g.status, g.stderr).toBe(0);
    const out = `${g.stdout}\n${g.stderr}`;
    const m = /decode steps by refresh stage, mean per token: ops a round waits on ([\d.]+) s, other ops ([\d.]+) s, ([\d.]+) refresh rounds ([\d.]+) s \(rounds x ciphertexts: (.*)\)/.exec(out);
    expect(m, out).not.toBeNull();
    const t = readRunTrace(trace2);
    const step = t.steps.find((st) => st.name.startsWith('decode'))!;
    const file = fs.readdirSync(path.join(dir, 'gen.steps')).find((f) => /^decode-[\d-]+\.json$/.test(f))!;
    const decodeProgram = parseFhe(JSON.parse(fs.readFileSync(path.join(dir, 'gen.steps', file), 'utf8')).program, file);
    const split = splitByStages(decodeProgram, step.opMs);
    expect(Number(m![1])).toBeCloseTo(split.waitedMs / 1000, 2);
    expect(Number(m![2])).toBeCloseTo(split.otherMs / 1000, 2);
    expect(Number(m![3])).toBe(split.rounds);
    expect(Number(m![4])).toBeCloseTo(split.roundsMs / 1000, 2);
    // The three parts are the whole step's measured op time, and the rounds are the plan's.
    expect(split.waitedMs + split.otherMs + split.roundsMs).toBeCloseTo(step.opMs.reduce((a, x) => a + x, 0), 6);
    expect(split.rounds).toBe(refreshRounds(decodeProgram).count);
    expect(split.waitedMs).toBeGreaterThan(0);
  }, 120000);

  it('fhec run --trace of a step plan (a model plan) reports measured time by kernel for that plan', async () => {
    const step = path.join(dir, 'gen.steps', 'prefill-4.json');
    const inputs = path.join(dir, 'ids.json');
    fs.writeFileSync(inputs, JSON.stringify({ inputs: { input_ids: { dtype: 'int64', dims: [1, 4], data: [...Buffer.from('the ')] } } }));
    const runTrace = path.join(dir, 'step.run.json');
    const r = await fhec('run', step, '--backend', 'sim', '--inputs', inputs, '--out', path.join(dir, 'step.out.json'), '--trace', runTrace);
    expect(r.status, r.stderr).toBe(0);
    const t = readRunTrace(runTrace);
    expect(t.steps.map((s) => [s.name, s.ops])).toEqual([['program', program.ops.length]]);
    expect(t.refresh.ciphertexts).toBe(program.ops.filter((o) => o.kind === 'refresh').length);
    const html = path.join(dir, 'step.html');
    const r0 = await fhec('report', step, '--run', runTrace, '-o', html);
    expect(r0.status, r0.stderr).toBe(0);
    const back = await openReport(html, 'report-model-run.png');
    // A model plan carries no search (its N was fixed for the generation): no candidates chart.
    checkCharts(back, ['levels', 'refreshes', 'ops-by-kernel', 'ops-by-layer', 'time-by-kernel', 'time-by-kind', 'approximations', 'run-steps', 'run-stages']);
    const byKernel = back.data['time-by-kernel']!;
    expect(sum(byKernel, 'ms', (x) => x['source'] === 'measured')).toBeCloseTo(t.steps[0]!.opMs.reduce((s, x) => s + x, 0), 6);
    // Measured time lands on the model's kernels (attention here), not only on the glue.
    expect(byKernel.some((x) => x['group'] === 'attention' && x['source'] === 'measured' && (x['ms'] as number) > 0)).toBe(true);
    expect(Number(back.figures['refresh-rounds'])).toBe(t.refresh.rounds);
  }, 60000);
});

describe('fhec report of a zoo model plan (Z1: hidden 48, heads of 12 held padded to 16, tied embeddings)', () => {
  const model = path.join(ROOT, 'models', 'zoo', 'Z1_nocache_opset17.onnx');
  const plan = path.join(dir, 'z1.json');
  const trace = path.join(dir, 'z1.run.json');

  it('compiles with the parameter search, runs on sim with a trace, and renders with and without it', async () => {
    const c = await fhec('compile', model, '-o', plan, '--calibration', path.join(MODELS, 'calibration.txt'), '--prefill', '4', '--max-windows', '8');
    expect(c.status, c.stderr).toBe(0);
    const doc = JSON.parse(fs.readFileSync(plan, 'utf8'));
    const program = parseFhe(doc.program, plan);
    const analysis = parseAnalysis(doc.analysis, plan);
    const inputs = path.join(dir, 'z1.ids.json');
    fs.writeFileSync(inputs, JSON.stringify({ inputs: { input_ids: { dtype: 'int64', dims: [1, 4], data: [...Buffer.from('the ')] } } }));
    const r = await fhec('run', plan, '--backend', 'sim', '--inputs', inputs, '--out', path.join(dir, 'z1.out.json'), '--trace', trace);
    expect(r.status, r.stderr).toBe(0);
    const charts = ['levels', 'refreshes', 'ops-by-kernel', 'ops-by-layer', 'time-by-kernel', 'time-by-kind', 'approximations', 'candidates'];
    const html = path.join(dir, 'z1.html');
    expect((await fhec('report', plan, '-o', html)).status).toBe(0);
    const page = await openReport(html, 'report-zoo.png');
    checkCharts(page, charts);
    const refreshes = program.ops.filter((o) => o.kind === 'refresh').length;
    expect(Number(page.figures['refreshes'])).toBe(refreshes);
    expect(sum(page.data['time-by-kernel']!, 'ms')).toBeCloseTo(analysis.predicted!.totalMs, 6);
    const html2 = path.join(dir, 'z1.run.html');
    expect((await fhec('report', plan, '--run', trace, '-o', html2)).status).toBe(0);
    const withRun = await openReport(html2, 'report-zoo-run.png');
    checkCharts(withRun, [...charts, 'run-steps', 'run-stages']);
    const t = readRunTrace(trace);
    expect(sum(withRun.data['time-by-kernel']!, 'ms', (x) => x['source'] === 'measured')).toBeCloseTo(t.steps[0]!.opMs.reduce((s, x) => s + x, 0), 6);
    expect(Number(withRun.figures['refresh-rounds'])).toBe(t.refresh.rounds);
  }, 240000);
});
