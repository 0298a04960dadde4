// `fhec calibrate MODEL.onnx --calibration FILE [--window N] [--stride N] [--max-windows N] [--margin F]
// [--json] [--canonical] [--emit-ir FILE]`: runs the reference interpreter over the calibration set and
// prints, for every value that needs one, the observed range, the interval after the safety margin
// and the fixed-point bits it needs.

import * as fs from 'node:fs';
import type { Command } from 'commander';
import { FhecError } from '../../ir/errors.js';
import type { Graph } from '../../ir/graph/types.js';
import { printGraph } from '../../ir/text/print.js';
import { Calibrator, DEFAULT_MARGIN, type CalibratedValue } from '../../passes/calibrate/calibrate.js';
import { calibrationRows, formatCalibrationTable, type CalibrationRow } from '../../passes/calibrate/report.js';
import { importOnnx } from '../onnx/import.js';
import { loadCalibrationSets, type WindowOptions } from '../calibration-data.js';
import type { PassRun } from '../../passes/pass-manager.js';
import { loadModel } from '../driver.js';
import { rejectUnsupported } from './eval.js';
import { intOption, numberOption } from './common.js';
import { checkOutputs, modelFiles } from './outputs.js';
import { writeFileAtomic } from '../../runtime/plan/files.js';

export interface CalibrateModelOptions extends WindowOptions {
  margin?: number;
  /** Calibrate the canonical transformer IR instead of the imported graph. */
  canonical?: boolean;
  /** --print-after for the graph and canonical passes that make the first (returned) graph. */
  printAfter?: ReadonlySet<string> | 'all';
}

export interface CalibrationReport {
  model: string;
  calibration: string;
  /** Input sets (text windows or JSON sets) run. */
  sets: number;
  margin: number;
  percentileAccuracy: number;
  ms: number;
  values: CalibratedValue[];
  rows: CalibrationRow[];
  /** The model's graph (specialized to the first set's shape) with `range` on every calibrated value. */
  graph: Graph;
  /** The passes that made that graph. */
  passRuns: PassRun[];
}

/** Calibrates a model file on a calibration file (see compiler/calibration-data.ts). */
export function calibrateModel(model: string, calibration: string, opts: CalibrateModelOptions = {}): CalibrationReport {
  const t0 = performance.now();
  const imported = importOnnx(model).graph;
  rejectUnsupported(imported, model);
  const sets = loadCalibrationSets(imported, calibration, opts);
  // Sets of the same shape share one specialized graph (its shape plumbing folded away).
  const groups = new Map<string, typeof sets>();
  for (const s of sets) {
    const key = JSON.stringify(Object.entries(s.bindings).sort());
    groups.set(key, [...(groups.get(key) ?? []), s]);
  }
  const calibrator = new Calibrator({ margin: opts.margin ?? DEFAULT_MARGIN });
  let first: Graph | undefined;
  let passRuns: PassRun[] = [];
  for (const group of groups.values()) {
    const loaded = loadModel(model, { bindings: group[0]!.bindings, canonical: opts.canonical, verifyEach: false, ...(first ? {} : { printAfter: opts.printAfter }) });
    const graph = loaded.graph;
    if (!first) passRuns = loaded.passRuns;
    first ??= graph;
    for (const s of group) {
      try {
        calibrator.observe(graph, s.inputs);
      } catch (e) {
        if (e instanceof FhecError) throw new FhecError(`${s.name}: ${e.message}`, { ...e.where, file: e.where.file ?? calibration });
        throw e;
      }
    }
  }
  calibrator.annotate(first!);
  const values = calibrator.results();
  return {
    model,
    calibration,
    sets: calibrator.sets,
    margin: calibrator.margin,
    percentileAccuracy: calibrator.accuracy,
    ms: performance.now() - t0,
    values,
    rows: calibrationRows(values),
    graph: first!,
    passRuns,
  };
}

function formatCalibrationReport(r: CalibrationReport): string {
  const header = [
    `model        ${r.model}`,
    `calibration  ${r.calibration}: ${r.sets} input set(s), ${(r.ms / 1000).toFixed(2)} s`,
    `interval     [min - ${r.margin}*|min|, max + ${r.margin}*|max|]; percentiles within ${r.percentileAccuracy * 100}% relative error`,
    '',
  ];
  return formatCalibrationTable(r.rows, header);
}


export function registerCalibrate(program: Command): void {
  program
    .command('calibrate')
    .description('record value ranges over a calibration set and print the intervals and fixed-point bits')
    .argument('<model>', 'ONNX model file')
    .requiredOption('--calibration <file>', 'text (.txt, byte-tokenized into windows) or tensor JSON (.json)')
    .option('--window <n>', 'tokens per text window (default 64)', intOption('--window', 1))
    .option('--stride <n>', 'tokens between text windows (default: the window)', intOption('--stride', 1))
    .option('--max-windows <n>', 'use at most n text windows', intOption('--max-windows', 1))
    .option('--tokenizer <dir>', 'the model\'s Hugging Face tokenizer folder (tokenizer.json, tokenizer_config.json) for text; default: UTF-8 bytes (256-token vocabularies)')
    .option('--margin <f>', `relative safety margin of each interval (default ${DEFAULT_MARGIN})`, numberOption('--margin', 0))
    .option('--canonical', 'calibrate the canonical transformer IR')
    .option('--emit-ir <file>', 'write the textual IR with its range annotations to this file')
    .option('--json', 'print one JSON object')
    .action((model: string, opts: CalibrateModelOptions & { calibration: string; emitIr?: string; json?: boolean }) => {
      if (opts.emitIr) checkOutputs([{ path: opts.emitIr, flag: '--emit-ir' }], [...modelFiles(model), opts.calibration]);
      const report = calibrateModel(model, opts.calibration, opts);
      if (opts.emitIr) writeFileAtomic(opts.emitIr, printGraph(report.graph));
      if (opts.json) {
        const { graph: _graph, values: _values, ...rest } = report;
        console.log(JSON.stringify(rest, null, 2));
      } else {
        console.log(formatCalibrationReport(report));
      }
    });
}
