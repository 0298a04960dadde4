// Draws a ReportData as one self-contained HTML page: Vega, Vega-Lite and vega-embed are inlined
// (their minified builds from node_modules), the data sits in the page as JSON, and every chart is a
// Vega-Lite spec over a named dataset. Opening the page needs no network. The page exposes
// `window.fhecReport = { ready, views }` so a test can wait for the charts and read their data back.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { COUNTED, type ReportData } from './report-data.js';

const require = createRequire(import.meta.url);

/** A package's own folder (its exports hide the minified builds from require.resolve). */
function packageDir(pkg: string): string {
  let dir = path.dirname(require.resolve(pkg));
  while (!fs.existsSync(path.join(dir, 'package.json')) || JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).name !== pkg) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`internal: cannot find the ${pkg} package folder`);
    dir = up;
  }
  return dir;
}

function libraryScript(pkg: string, file: string): string {
  const js = fs.readFileSync(path.join(packageDir(pkg), file), 'utf8');
  return `<script>/* ${pkg} */\n${js.replace(/<\/script/gi, '<\\/script')}\n</script>`;
}

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

const ms = (x: number | undefined) => (x === undefined ? '–' : x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(1)} ms`);
const mib = (b: number | undefined) => (b === undefined ? '–' : `${(b / 2 ** 20).toFixed(1)} MiB`);
const num = (x: number | undefined | null, digits = 3) => (x === undefined || x === null ? '–' : Number.isInteger(x) ? String(x) : x.toPrecision(digits));

interface Chart {
  id: string;
  title: string;
  caption: string;
  dataset: string;
  rows: unknown[];
  spec: Record<string, unknown>;
}

function charts(d: ReportData): Chart[] {
  const out: Chart[] = [];
  const add = (id: string, title: string, caption: string, rows: unknown[], spec: Record<string, unknown>) => {
    if (rows.length > 0) out.push({ id, title, caption, dataset: id, rows, spec });
  };
  const width = 900;
  add('levels', 'Level of each ciphertext value over the program', 'x: op index in program order; y: level (modulus primes left); triangles: refreshes (back to the top level). Colour: decoder layer.', d.levels, {
    width,
    height: 260,
    layer: [
      { mark: { type: 'point', filled: true, size: d.levels.length > 1000 ? 8 : 30, opacity: 0.6 }, encoding: { x: { field: 'op', type: 'quantitative', title: 'op index' }, y: { field: 'level', type: 'quantitative', title: 'level', axis: { tickMinStep: 1 } }, color: { field: 'layer', type: 'nominal' }, tooltip: [{ field: 'kernel' }, { field: 'op' }, { field: 'level' }] } },
      {
        transform: [{ filter: 'datum.refresh' }],
        mark: { type: 'point', shape: 'triangle-up', filled: true, size: 60, color: '#d62728' },
        encoding: { x: { field: 'op', type: 'quantitative' }, y: { field: 'level', type: 'quantitative' }, tooltip: [{ field: 'kernel' }, { field: 'op' }] },
      },
    ],
  });
  const refreshRows = d.kernels
    .filter((k) => k.counts.refreshes > 0 || k.greedyRefreshes > 0)
    .flatMap((k) => [
      { kernel: k.kernel, layer: k.layer, placement: `chosen (${d.summary.placement})`, count: k.counts.refreshes },
      { kernel: k.kernel, layer: k.layer, placement: 'greedy baseline', count: k.greedyRefreshes },
    ]);
  add('refreshes', 'Refreshes by kernel: chosen placement against the greedy baseline', `Chosen: ${d.summary.refreshes}; greedy baseline: ${d.summary.greedyRefreshes ?? '–'} on the same program and chain.`, refreshRows, {
    width: 600,
    mark: 'bar',
    encoding: {
      y: { field: 'kernel', type: 'nominal', sort: null, title: null, axis: { labelLimit: 420 } },
      x: { field: 'count', type: 'quantitative', title: 'refreshed ciphertexts' },
      yOffset: { field: 'placement' },
      color: { field: 'placement', type: 'nominal' },
      tooltip: [{ field: 'kernel' }, { field: 'placement' }, { field: 'count' }],
    },
  });
  const byGroup = (key: 'op' | 'layer') => {
    const m = new Map<string, Record<string, number>>();
    for (const k of d.kernels) {
      const g = m.get(k[key]) ?? {};
      for (const c of COUNTED) g[c] = (g[c] ?? 0) + k.counts[c];
      m.set(k[key], g);
    }
    return [...m].flatMap(([group, g]) => COUNTED.map((kind) => ({ group, kind, count: g[kind]! })).filter((r) => r.count > 0));
  };
  const opsSpec = (title: string) => ({
    width,
    mark: 'bar',
    encoding: {
      y: { field: 'group', type: 'nominal', title, sort: null },
      x: { field: 'count', type: 'quantitative', title: 'ops' },
      yOffset: { field: 'kind' },
      color: { field: 'kind', type: 'nominal', sort: [...COUNTED] },
      tooltip: [{ field: 'group' }, { field: 'kind' }, { field: 'count' }],
    },
  });
  add('ops-by-kernel', 'Rotations, key switches and multiplications by kernel', 'Summed over every instance of each kernel op (key switches: one per Galois key a rotation applies, and relinearizations).', byGroup('op'), opsSpec('kernel'));
  add('ops-by-layer', 'The same by decoder layer', '', byGroup('layer'), opsSpec('layer'));
  const timeRows = (() => {
    const m = new Map<string, { predicted: number; measured: number }>();
    for (const k of d.kernels) {
      const g = m.get(k.op) ?? { predicted: 0, measured: 0 };
      g.predicted += k.predictedMs ?? 0;
      g.measured += k.measuredMs ?? 0;
      m.set(k.op, g);
    }
    const hasP = d.kernels.some((k) => k.predictedMs !== undefined);
    const hasM = d.kernels.some((k) => k.measuredMs !== undefined);
    return [...m].flatMap(([group, g]) => [...(hasP ? [{ group, source: 'predicted', ms: g.predicted }] : []), ...(hasM ? [{ group, source: 'measured', ms: g.measured }] : [])]);
  })();
  const timeSpec = {
    width,
    mark: 'bar',
    encoding: {
      y: { field: 'group', type: 'nominal', sort: null, title: null },
      x: { field: 'ms', type: 'quantitative', title: 'ms' },
      yOffset: { field: 'source' },
      color: { field: 'source', type: 'nominal', scale: { domain: ['predicted', 'measured'] } },
      tooltip: [{ field: 'group' }, { field: 'source' }, { field: 'ms', format: '.1f' }],
    },
  };
  add('time-by-kernel', d.run ? 'Time by kernel: predicted against measured' : 'Predicted time by kernel', `Predicted from the cost table the compiler used (SEAL timings); measured from the run trace (per-op wall time)${d.run?.simulated ? ', here on the simulator: not SEAL timings, compare shapes, not sizes' : ''}.`, timeRows, timeSpec);
  const kinds = new Map<string, { predicted?: number; measured?: number }>();
  for (const r of d.predictedByKind) kinds.set(r.kind, { ...kinds.get(r.kind), predicted: r.ms });
  for (const r of d.measuredByKind) kinds.set(r.kind, { ...kinds.get(r.kind), measured: r.ms });
  const kindRows = [...kinds].flatMap(([group, v]) => [
    ...(v.predicted !== undefined ? [{ group, source: 'predicted', ms: v.predicted }] : []),
    ...(v.measured !== undefined ? [{ group, source: 'measured', ms: v.measured }] : []),
  ]);
  add('time-by-kind', d.run ? 'Time by op kind: predicted against measured' : 'Predicted time by op kind', '', kindRows, timeSpec);
  const precRows = d.precision.flatMap((p) => [
    { op: p.op, bits: p.bits, series: 'bound (worst case)', kernel: p.kernel },
    { op: p.op, bits: p.typicalBits, series: 'typical', kernel: p.kernel },
  ]);
  const required = d.precisionOutputs.map((o) => o.requiredBits).filter((x): x is number => x !== undefined);
  add('precision', 'Predicted precision of each value (bits)', `log2(|value| / error) after each op${required.length ? '; rule: what the outputs need' : ''}. Values whose bound is unbounded are left out.`, precRows, {
    width,
    height: 240,
    layer: [
      { mark: { type: 'point', filled: true, size: 8, opacity: 0.5 }, encoding: { x: { field: 'op', type: 'quantitative', title: 'op index' }, y: { field: 'bits', type: 'quantitative', title: 'bits', scale: { zero: false } }, color: { field: 'series', type: 'nominal' } } },
      ...(required.length ? [{ data: { values: required.map((b) => ({ b })) }, mark: { type: 'rule', color: 'black', strokeDash: [4, 4] }, encoding: { y: { field: 'b', type: 'quantitative' } } }] : []),
    ],
  });
  const approxRows = d.approximations.filter((a) => a.predictedMaxError > 0).map((a, i) => ({ name: `${i}: ${a.role} @ ${a.op.replace(/^.*\/(layers\.\d+\/)?/, '$1')}`, error: a.predictedMaxError, depth: a.depth }));
  add('approximations', 'Approximations: predicted max error on the fitted interval', 'Log scale; the table below has intervals, degree and depth.', approxRows, {
    width: 600,
    mark: 'bar',
    encoding: {
      y: { field: 'name', type: 'nominal', sort: null, title: null, axis: { labelLimit: 420 } },
      x: { field: 'error', type: 'quantitative', scale: { type: 'log' }, title: 'max |error|' },
      color: { field: 'depth', type: 'ordinal', title: 'depth' },
      tooltip: [{ field: 'name' }, { field: 'error', format: '.2e' }, { field: 'depth' }],
    },
  });
  const candRows = d.candidates.filter((c) => c.feasible && c.latencyMs !== undefined).map((c) => ({ N: String(c.ringDegree), levels: c.levels, seconds: c.latencyMs! / 1000, refreshes: c.refreshes ?? 0, chosen: c.chosen ? 'chosen' : 'candidate' }));
  add('candidates', 'Parameter candidates: predicted latency', d.candidatesFrom ?? '', candRows, {
    width: 600,
    mark: { type: 'point', filled: true },
    encoding: {
      x: { field: 'levels', type: 'quantitative', title: 'levels (chain length)' },
      y: { field: 'seconds', type: 'quantitative', scale: { type: 'log' }, title: 'predicted s' },
      color: { field: 'N', type: 'nominal', title: 'ring degree N' },
      shape: { field: 'chosen', type: 'nominal' },
      size: { condition: { test: "datum.chosen === 'chosen'", value: 200 }, value: 50 },
      tooltip: [{ field: 'N' }, { field: 'levels' }, { field: 'refreshes' }, { field: 'seconds', format: '.2f' }],
    },
  });
  if (d.stages) {
    const st = d.stages;
    const rows = st.heaviest.map((h) => ({ stage: `round ${h.round}: ${h.kernel}`, seconds: h.waitedMs / 1000, ops: h.ops, refreshes: h.refreshes }));
    const caption =
      `measured, traced step: ops a round waits on ${ms(st.waitedMs)}, other ops ${ms(st.otherMs)}, ${st.rounds} refresh rounds ${ms(st.roundsMs)}; ` +
      'the stages whose waited-on ops (run one after another before their round can go) took longest, each named by its costliest kernel';
    add('run-stages', 'Measured time between refresh rounds', caption, rows, {
      width: 600,
      mark: 'bar',
      encoding: { y: { field: 'stage', type: 'nominal', sort: null, title: null, axis: { labelLimit: 420 } }, x: { field: 'seconds', type: 'quantitative', title: 's' }, tooltip: [{ field: 'stage' }, { field: 'seconds', format: '.3f' }, { field: 'ops' }, { field: 'refreshes' }] },
    });
  }
  if (d.run) {
    const stepRows = d.run.steps.map((s, i) => ({ step: `${i}: ${s.name}`, seconds: s.ms / 1000, mib: s.rssBytes / 2 ** 20 }));
    add('run-steps', 'Measured time of each executed step', `${d.run.label}`, stepRows, {
      width: 600,
      mark: 'bar',
      encoding: { y: { field: 'step', type: 'nominal', sort: null, title: null }, x: { field: 'seconds', type: 'quantitative', title: 's' }, tooltip: [{ field: 'step' }, { field: 'seconds', format: '.2f' }, { field: 'mib', format: '.0f', title: 'RSS MiB' }] },
    });
  }
  return out;
}

function table(head: string[], rows: (string | number)[][], id?: string): string {
  return (
    `<table${id ? ` id="${id}"` : ''}><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>` +
    rows.map((r) => `<tr>${r.map((c) => `<td>${esc(String(c))}</td>`).join('')}</tr>`).join('') +
    '</tbody></table>'
  );
}

/** A key figure: shown, and machine-readable in data-value for tests. */
function figure(key: string, label: string, shown: string, value: number | string | undefined): string {
  return `<tr><th>${esc(label)}</th><td data-key="${esc(key)}"${value !== undefined ? ` data-value="${esc(String(value))}"` : ''}>${esc(shown)}</td></tr>`;
}

export function renderReportHtml(d: ReportData): string {
  const cs = charts(d);
  const p = d.parameters;
  const s = d.summary;
  const figures = [
    figure('parameters', 'parameters', p.text, p.ringDegree),
    figure('levels', 'levels', `${p.levels} (chain ${p.bitSizes.join(', ')} bits)`, p.levels),
    figure('ops', 'ops (managed program)', String(s.ops), s.ops),
    figure('refreshes', 'refreshes', `${s.refreshes} (${s.placement} placement)`, s.refreshes),
    ...(s.greedyRefreshes !== undefined ? [figure('greedy-refreshes', 'greedy baseline', String(s.greedyRefreshes), s.greedyRefreshes)] : []),
    figure('keys', 'evaluation keys', `${p.galoisKeys} Galois keys, ${mib(p.keyBytes)}`, p.keyBytes),
    ...(s.predictedMs !== undefined ? [figure('predicted-ms', 'predicted latency', ms(s.predictedMs), s.predictedMs)] : []),
    ...(s.measuredMs !== undefined ? [figure('measured-ms', 'measured latency (traced step)', ms(s.measuredMs), s.measuredMs)] : []),
    ...(d.run
      ? [
          figure('run-backend', 'run', d.run.simulated ? d.run.label : `SEAL, encrypted: ${d.run.label}`, d.run.backend),
          figure('run-total-ms', 'run total', ms(d.run.totalMs), d.run.totalMs),
          figure('refresh-rounds', 'refresh round trips', `${d.run.refresh.rounds} (${d.run.refresh.ciphertexts} ciphertexts refreshed, ${d.run.refresh.cacheCiphertexts} cache ciphertexts carried)`, d.run.refresh.rounds),
          figure('refresh-bytes', 'bytes with the key holder', mib(d.run.refresh.bytes), d.run.refresh.bytes),
          figure('peak-rss', 'peak memory (RSS)', mib(d.run.peakRssBytes), d.run.peakRssBytes),
        ]
      : []),
    ...(d.stages
      ? [
          figure('stage-waited-ms', 'traced step: ops a round waits on', ms(d.stages.waitedMs), d.stages.waitedMs),
          figure('stage-other-ms', 'traced step: other ops', ms(d.stages.otherMs), d.stages.otherMs),
          figure('stage-rounds-ms', 'traced step: refresh rounds', `${ms(d.stages.roundsMs)} (${d.stages.rounds} rounds)`, d.stages.roundsMs),
        ]
      : []),
  ];
  const chartHtml = cs
    .map((c) => `<section><h2>${esc(c.title)}</h2><p class="caption">${esc(c.caption)}</p><div class="chart" id="chart-${c.id}" data-dataset="${c.dataset}" data-rows="${c.rows.length}"></div></section>`)
    .join('\n');
  const specs = Object.fromEntries(cs.map((c) => [c.id, { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', datasets: { [c.dataset]: c.rows }, data: { name: c.dataset }, ...c.spec }]));
  const kernelTable = table(
    ['kernel', 'op', 'layer', 'ops', ...COUNTED, 'greedy refreshes', 'predicted', ...(d.run ? ['measured'] : [])],
    d.kernels.map((k) => [k.kernel, k.op, k.layer, k.ops, ...COUNTED.map((c) => k.counts[c]), k.greedyRefreshes, ms(k.predictedMs), ...(d.run ? [ms(k.measuredMs)] : [])]),
    'kernels',
  );
  const candTable = d.candidates.length
    ? table(
        ['', 'N', 'scale bits', 'levels', 'modulus bits', 'limit', 'refreshes', 'keys', 'predicted', 'note'],
        d.candidates.map((c) => [c.chosen ? '★' : '', c.ringDegree, c.scaleBits, c.levels, c.modulusBits, c.securityLimit, c.refreshes ?? '–', mib(c.keyBytes), ms(c.latencyMs), c.feasible ? '' : (c.reason ?? 'infeasible')]),
        'candidates',
      )
    : '<p>No parameter search: the ring degree was fixed (or the plan is arithmetic).</p>';
  const approxTable = d.approximations.length
    ? table(
        ['op', 'approximation', 'interval', 'depth', 'predicted max error', 'fit'],
        d.approximations.map((a) => [a.op, a.role, `[${num(a.interval[0], 4)}, ${num(a.interval[1], 4)}]`, a.depth, a.predictedMaxError.toExponential(2), a.describe ?? '']),
        'approximations',
      )
    : '<p>No approximations (the program is polynomial).</p>';
  const outTable = d.precisionOutputs.length
    ? table(
        ['output', 'bound bits', 'typical bits', 'required bits'],
        d.precisionOutputs.map((o) => [o.tensor, num(o.bits), num(o.typicalBits), num(o.requiredBits)]),
        'precision-outputs',
      )
    : '';
  const stepsTable =
    d.kind === 'generation'
      ? `<section><h2>Step plans</h2><p class="caption">Compiled step plans of the generation plan; ${esc(d.step ?? '')} is shown in detail.</p>${table(
          ['step', 'ops', 'refreshes', 'predicted', ...(d.run ? ['measured (mean)'] : [])],
          d.steps.map((x) => [x.name, x.ops, x.refreshes, ms(x.predictedMs), ...(d.run ? [ms(x.measuredMs)] : [])]),
          'steps',
        )}</section>`
      : '';
  const targets = d.targets ? `<p>Approximation error targets: ${esc(Object.entries(d.targets).map(([k, v]) => `${k} ${v}`).join(', '))}</p>` : '';
  const json = JSON.stringify(specs).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fhec report: ${esc(d.title)}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1100px; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin: 28px 0 4px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 12px; }
th, td { border: 1px solid #ddd; padding: 3px 6px; text-align: left; vertical-align: top; }
#summary th { background: #f5f5f5; width: 220px; }
.caption { color: #555; margin: 0 0 6px; }
.notes { color: #8a4b00; }
.insecure { color: #b00; font-weight: bold; }
details { margin: 8px 0; }
</style></head><body>
<h1>fhec report: ${esc(d.title)}</h1>
<p>${esc(d.kind === 'generation' ? `Generation plan ${d.planFile}, step plan ${d.step}` : `${d.kind === 'model' ? 'Model' : 'Arithmetic'} plan ${d.planFile}`)}${p.insecure ? ' <span class="insecure">INSECURE parameters</span>' : ''}</p>
<table id="summary">${figures.join('')}</table>
${d.notes.length ? `<ul class="notes">${d.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>` : ''}
${stepsTable}
${chartHtml}
<section><h2>Kernels</h2><details><summary>Every kernel: ops, refreshes, time</summary>${kernelTable}</details></section>
<section><h2>Precision of the outputs</h2>${outTable || '<p>No precision analysis in the plan.</p>'}</section>
<section><h2>Parameter search</h2><p class="caption">${esc(d.candidatesFrom ?? '')}</p>${candTable}</section>
<section><h2>Approximations</h2>${targets}${approxTable}</section>
${libraryScript('vega', 'build/vega.min.js')}
${libraryScript('vega-lite', 'build/vega-lite.min.js')}
${libraryScript('vega-embed', 'build/vega-embed.min.js')}
<script id="fhec-report-specs" type="application/json">${json}</script>
<script>
(function () {
  var specs = JSON.parse(document.getElementById('fhec-report-specs').textContent);
  var views = {};
  var ready = Promise.all(Object.keys(specs).map(function (id) {
    return vegaEmbed('#chart-' + id, specs[id], { renderer: 'canvas', actions: false }).then(function (r) { views[id] = r.view; });
  }));
  window.fhecReport = { ready: ready, views: views, specs: specs };
})();
</script>
</body></html>
`;
}
