// `fhec inspect MODEL.onnx [--json]`: what a model file holds, without reading its weights.

import type { Command } from 'commander';
import type { Graph } from '../../ir/graph/types.js';
import { opKey } from '../../ir/graph/types.js';
import { fmt } from '../../ir/ops/infer.js';
import { isOpSupported } from '../../runtime/reference/registry.js';
import { importOnnx, type ModelInfo } from '../onnx/import.js';
import { generatorBindings, generatorShapeFromFlags, type GeneratorShape } from '../../passes/canonical/specialize.js';
import { loadModel } from '../driver.js';

export interface UnsupportedOp {
  op: string;
  domain: string;
  nodes: string[];
}

/** Every op of the graph the reference interpreter (and so the compiler) cannot handle, with node names. */
export function unsupportedOps(graph: Graph): UnsupportedOp[] {
  const byOp = new Map<string, UnsupportedOp>();
  for (const n of graph.nodes) {
    if (isOpSupported(n.domain, n.op)) continue;
    const key = opKey(n);
    const entry = byOp.get(key) ?? { op: n.op, domain: n.domain || 'ai.onnx', nodes: [] };
    entry.nodes.push(n.name);
    byOp.set(key, entry);
  }
  return [...byOp.values()];
}

function opHistogram(graph: Graph, info?: ModelInfo): Record<string, number> {
  const ops: Record<string, number> = {};
  for (const n of graph.nodes) ops[opKey(n)] = (ops[opKey(n)] ?? 0) + 1;
  if (info?.constantNodeCount) ops['Constant'] = (ops['Constant'] ?? 0) + info.constantNodeCount;
  return ops;
}

export function inspectModel(file: string, opts: { canonical?: GeneratorShape } = {}) {
  const { graph, info } = importOnnx(file);
  const io = (v: Graph['inputs'][number]) => ({ name: v.name, dtype: v.dtype, shape: v.shape ?? null });
  const ops = opHistogram(graph, info);
  const byDomain: Record<string, Record<string, number>> = {};
  for (const n of graph.nodes) {
    const d = n.domain || 'ai.onnx';
    byDomain[d] ??= {};
    byDomain[d]![n.op] = (byDomain[d]![n.op] ?? 0) + 1;
  }
  if (info.constantNodeCount) {
    byDomain['ai.onnx'] ??= {};
    byDomain['ai.onnx']!['Constant'] = info.constantNodeCount;
  }
  return {
    file,
    producer: { name: info.producerName, version: info.producerVersion },
    irVersion: info.irVersion,
    opsets: info.opsets,
    inputs: graph.inputs.map(io),
    outputs: graph.outputs.map(io),
    nodes: graph.nodes.length + info.constantNodeCount,
    ops,
    opsByDomain: byDomain,
    parameters: { count: info.parameterCount, bytes: info.parameterBytes, initializers: graph.constants.length - info.constantNodeCount },
    externalData: info.externalFiles,
    unsupported: unsupportedOps(graph),
    ...(opts.canonical ? { canonicalOps: canonicalOps(file, opts.canonical) } : {}),
  };
}

/** Op histogram of the canonical graph raised for one generator shape. */
export function canonicalOps(file: string, shape: GeneratorShape): Record<string, number> {
  return opHistogram(loadModel(file, { canonical: true, bindings: (g) => generatorBindings(g, shape) }).graph);
}

export type InspectReport = ReturnType<typeof inspectModel>;

function formatInspect(r: InspectReport): string {
  const lines: string[] = [];
  const num = (n: number) => n.toLocaleString('en-US');
  lines.push(`model      ${r.file}`);
  lines.push(`producer   ${r.producer.name || '?'} ${r.producer.version || ''} (ONNX IR ${r.irVersion})`);
  lines.push(`opsets     ${Object.entries(r.opsets).map(([d, v]) => `${d || 'ai.onnx'} ${v}`).join(', ')}`);
  lines.push('inputs');
  for (const v of r.inputs) lines.push(`  ${v.name.padEnd(28)} ${v.dtype.padEnd(8)} ${fmt(v.shape ?? undefined)}`);
  lines.push('outputs');
  for (const v of r.outputs) lines.push(`  ${v.name.padEnd(28)} ${v.dtype.padEnd(8)} ${fmt(v.shape ?? undefined)}`);
  lines.push(`ops        ${num(r.nodes)} nodes`);
  for (const [domain, ops] of Object.entries(r.opsByDomain)) {
    const list = Object.entries(ops).sort((a, b) => b[1] - a[1]).map(([op, n]) => `${op} ${n}`);
    lines.push(`  ${domain}: ${list.join(', ')}`);
  }
  lines.push(`parameters ${num(r.parameters.count)} in ${num(r.parameters.initializers)} initializers, ${num(r.parameters.bytes)} bytes`);
  if (r.externalData.length) {
    lines.push('external data');
    for (const f of r.externalData) {
      const state = f.exists ? `${num(f.size ?? 0)} bytes on disk` : 'MISSING';
      lines.push(`  ${f.location}: ${num(f.bytesReferenced)} bytes referenced, ${state}`);
    }
  }
  if (r.canonicalOps) lines.push(`canonical  ${Object.entries(r.canonicalOps).map(([op, n]) => `${op} ${n}`).join(', ')}`);
  if (r.unsupported.length === 0) lines.push('unsupported ops: none');
  else {
    lines.push(`unsupported ops: ${r.unsupported.length}`);
    for (const u of r.unsupported) {
      const shown = u.nodes.slice(0, 5).join(', ') + (u.nodes.length > 5 ? `, ... (${u.nodes.length} nodes)` : '');
      lines.push(`  ${u.domain}::${u.op}: ${shown}`);
    }
  }
  return lines.join('\n');
}

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('show a model: producer, opsets, inputs/outputs, op histogram, parameters, external data, unsupported ops')
    .argument('<model>', 'ONNX model file')
    .option('--json', 'print one JSON object')
    .option('--canonical', 'add the op histogram of the canonical IR (canonicalOps; default shape: --prefill 16)')
    .option('--prefill <S>', 'with --canonical: raise for a prompt of S tokens')
    .option('--decode <P>', 'with --canonical: raise for one token after P cached ones')
    .action((model: string, opts: { json?: boolean; canonical?: boolean; prefill?: string; decode?: string }) => {
      const shape = generatorShapeFromFlags(opts.prefill, opts.decode) ?? { kind: 'prefill' as const, sequence: 16 };
      const report = inspectModel(model, opts.canonical ? { canonical: shape } : {});
      console.log(opts.json ? JSON.stringify(report, null, 2) : formatInspect(report));
    });
}
