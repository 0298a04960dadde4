// The figures README.md's marked tables state, each paired with the JSON key of the section that
// measures it (figures/<section>.json): row (first cells, or index), column (header prefix), the text
// around the number in that cell (`{}` for it), and how to compare (bench/figures/check.ts). A README
// edit that moves a figure shows up in `--check` as "not found in the README", never as a silent pass.

import type { StatedFigure } from './check.js';

const pct = 100;

const CONFORMANCE = 'ONNX backend node tests';
const EVAL_ORT = '`fhec eval` vs onnxruntime';
const GENAI_ORT = 'the same for the onnxruntime-genai fp16 model';
const SIM_S64 = 'model A compiled with `--calibration calibration.txt` and run on `sim`';
const SEAL = 'model A on **SEAL**';
const PLACEMENT = 'refresh placement on model A';
const REPORT_32768 = 'model A, `fhec compile --calibration calibration.txt --prefill 16 --ring-degree 32768 --report`';
const SIM_GENAI = 'the onnxruntime-genai fp16 model compiled from its reference inputs';
const SIM_S8 = 'model A, prefill S=8';

const zooRows = (model: string): StatedFigure[] => [
  { row: model, col: 'prefill-64 plan', text: 'N={},', key: `${model}.ringDegree`, kind: 'exact' },
  { row: model, col: 'prefill-64 plan', text: '{} refreshes', key: `${model}.refreshes`, kind: 'exact' },
  { row: model, col: 'sim agreement', text: '{}%', key: `${model}.agreement`, kind: 'exact', scale: pct },
  { row: model, col: 'sim agreement', text: '({}/', key: `${model}.agree`, kind: 'exact' },
  { row: model, col: 'sim agreement', text: '/{})', key: `${model}.positions`, kind: 'exact' },
  { row: model, col: 'max / mean logit error', text: '{} /', key: `${model}.maxAbsError`, kind: 'approx' },
  { row: model, col: 'max / mean logit error', text: '/ {}', key: `${model}.meanAbsError`, kind: 'approx' },
];

const zooSealRows = (model: string): StatedFigure[] => [
  { row: model, col: 'plan', text: 'N={},', key: `${model}.ringDegree`, kind: 'exact' },
  { row: model, col: 'plan', text: ', {} levels', key: `${model}.levels`, kind: 'exact' },
  { row: model, col: 'equal to onnxruntime', text: '{} of', key: `${model}.equalBytes`, kind: 'exact' },
  { row: model, col: 'equal to onnxruntime', text: 'of {} bytes', key: `${model}.bytes`, kind: 'exact' },
  { row: model, col: 'prefill', text: '{}', key: `${model}.prefillSeconds`, kind: 'timing' },
  { row: model, col: 'decode', text: '{}', key: `${model}.decodeSecondsPerToken`, kind: 'timing' },
  { row: model, col: 'key-holder round trips', text: '{}', key: `${model}.roundTripsPerDecodeToken`, kind: 'exact' },
];

const softmaxRows = (step: string, method: 'squaring' | 'shifted'): StatedFigure[] => {
  const row = [step, method];
  const key = `${step.split(' ')[0]}.${method}`;
  return [
    { row, col: 'depth', text: '{}', key: `${key}.depth`, kind: 'exact' },
    { row, col: 'ct x ct', text: '{}', key: `${key}.ctMuls`, kind: 'exact' },
    { row, col: 'pt muls', text: '{}', key: `${key}.ptMuls`, kind: 'exact' },
    { row, col: 'rotations', text: '{}', key: `${key}.rotations`, kind: 'exact' },
    { row, col: 'max error', text: '{}', key: `${key}.maxError`, kind: 'approx' },
    { row, col: 'proved bound', text: '{}', key: `${key}.bound`, kind: 'approx' },
  ];
};

const ckksOp = (row: string, op: string, levels: number[]): StatedFigure[] => levels.map((l) => ({ row, col: `level ${l}`, text: '{}', key: `${op}.${l}`, kind: 'timing' }));

const rounds = (row: string, key: string): StatedFigure[] => [
  { row, col: 'chain', text: 'N={} [', key: `${key}.ringDegree`, kind: 'exact' },
  { row, col: 'chain', text: '{} levels', key: `${key}.levels`, kind: 'exact' },
  { row, col: 'refreshes', text: '{}', key: `${key}.refreshes`, kind: 'exact' },
  { row, col: 'rounds', text: '{}', key: `${key}.rounds`, kind: 'exact' },
  { row, col: 'predicted', text: '{}', key: `${key}.predictedSeconds`, kind: 'exact' },
];

const generateStep = (row: string, key: string, exact: boolean): StatedFigure[] => [
  { row, col: 'SEAL (s)', text: exact ? '{}' : '**{}**', key: `${key}.sealSeconds`, kind: 'timing' },
  ...(exact
    ? ([
        { row, col: 'ops', text: '{}', key: `${key}.ops`, kind: 'exact' },
        { row, col: 'rotations', text: '{}', key: `${key}.rotations`, kind: 'exact' },
      ] as StatedFigure[])
    : []),
  { row, col: 'ORT fp32 (ms)', text: exact ? '{}' : '**{}**', key: `${key}.ortMs`, kind: 'timing' },
  { row, col: 'reference f64 (ms)', text: exact ? '{}' : '**{}**', key: `${key}.referenceMs`, kind: 'timing' },
  { row, col: 'SEAL / ORT', text: exact ? '{}x' : '**{}x**', key: `${key}.slowdownVsOrt`, kind: 'timing' },
  { row, col: 'SEAL / reference', text: exact ? '{}x' : '**{}x**', key: `${key}.slowdownVsReference`, kind: 'timing' },
];

export const STATED: Record<string, StatedFigure[]> = {
  conformance: [
    { row: CONFORMANCE, col: 'result', text: '**{} passed,', key: 'passed', kind: 'exact' },
    { row: CONFORMANCE, col: 'result', text: ', {} expected failures**', key: 'expectedFailures', kind: 'exact' },
    { row: CONFORMANCE, col: 'result', text: 'failures** of {}:', key: 'folders', kind: 'exact' },
  ],
  'reference-ort': [
    { row: EVAL_ORT, col: 'result', text: '{} model-A files', key: 'modelAFiles', kind: 'exact' },
    { row: EVAL_ORT, col: 'result', text: 'logits within {},', key: 'modelALogits', kind: 'atMost' },
    { row: EVAL_ORT, col: 'result', text: 'presents within {},', key: 'modelAPresents', kind: 'atMost' },
    { row: GENAI_ORT, col: 'result', text: 'logits within {},', key: 'genaiLogits', kind: 'atMost' },
    { row: GENAI_ORT, col: 'result', text: 'presents within {} (', key: 'genaiPresents', kind: 'atMost' },
    { row: GENAI_ORT, col: 'result', text: 'argmax {} as ORT', key: 'genaiArgmax', kind: 'exact' },
  ],
  'sim-accuracy-s64': [
    { row: SIM_S64, col: 'result', text: '(N={}):', key: 'ringDegree', kind: 'exact' },
    { row: SIM_S64, col: 'result', text: '**{}%** agreement', key: 'dev.agreement', kind: 'exact', scale: pct },
    { row: SIM_S64, col: 'result', text: 'agreement on {} positions of `eval-dev', key: 'dev.positions', kind: 'exact' },
    { row: SIM_S64, col: 'result', text: 'max logit error {},', key: 'dev.maxAbsError', kind: 'approx' },
    { row: SIM_S64, col: 'result', text: ', mean {}) and', key: 'dev.meanAbsError', kind: 'approx' },
    { row: SIM_S64, col: 'result', text: 'and {}% on', key: 'cal.agreement', kind: 'exact', scale: pct },
    { row: SIM_S64, col: 'result', text: 'on {} positions of `calibration', key: 'cal.positions', kind: 'exact' },
    { row: SIM_S64, col: 'result', text: '(max {}, mean', key: 'cal.maxAbsError', kind: 'approx' },
    { row: SIM_S64, col: 'result', text: ', mean {});', key: 'cal.meanAbsError', kind: 'approx' },
  ],
  'seal-accuracy': [
    { row: SEAL, col: 'check', text: 'the search chose N={},', key: 'ringDegree', kind: 'exact' },
    { row: SEAL, col: 'check', text: ', {} refreshes)', key: 'refreshes', kind: 'exact' },
    { row: SEAL, col: 'result', text: '**{}%** greedy', key: 'agreement', kind: 'exact', scale: pct },
    { row: SEAL, col: 'result', text: '({} of', key: 'agree', kind: 'exact' },
    { row: SEAL, col: 'result', text: 'of {} positions', key: 'positions', kind: 'exact' },
    { row: SEAL, col: 'result', text: 'max logit error {},', key: 'maxAbsError', kind: 'approx' },
    { row: SEAL, col: 'result', text: ', mean {}, range', key: 'meanAbsError', kind: 'approx' },
    { row: SEAL, col: 'result', text: 'range warnings {},', key: 'rangeWarnings', kind: 'exact' },
    { row: SEAL, col: 'result', text: '; {} s for the 4 windows', key: 'accuracySeconds', kind: 'timing' },
  ],
  'refresh-placement': [
    { row: PLACEMENT, col: 'result', text: 'N=16384, {} levels', key: 'decode8.levels', kind: 'exact' },
    { row: PLACEMENT, col: 'result', text: 'decode P = 8 **{}**', key: 'decode8.refreshes', kind: 'exact' },
    { row: PLACEMENT, col: 'result', text: '** vs greedy {}, P = 20', key: 'decode8.greedyRefreshes', kind: 'exact' },
    { row: PLACEMENT, col: 'result', text: 'P = 20 **{}**', key: 'decode20.refreshes', kind: 'exact' },
    { row: PLACEMENT, col: 'result', text: '** vs {}; N=32768', key: 'decode20.greedyRefreshes', kind: 'exact' },
  ],
  'sim-accuracy-s8': [
    { row: PLACEMENT, col: 'result', text: 'prefill of 8 tokens **{}**', key: 'refreshes', kind: 'exact' },
    { row: PLACEMENT, col: 'result', text: '** vs greedy {},', key: 'greedyRefreshes', kind: 'exact' },
    { row: SIM_S8, col: 'check', text: '(N={},', key: 'ringDegree', kind: 'exact' },
    { row: SIM_S8, col: 'check', text: ', {} refreshes)', key: 'refreshes', kind: 'exact' },
    { row: SIM_S8, col: 'result', text: '**{}%** greedy', key: 'dev.agreement', kind: 'exact', scale: pct },
    { row: SIM_S8, col: 'result', text: 'on {} positions of `eval-dev', key: 'dev.positions', kind: 'exact' },
    { row: SIM_S8, col: 'result', text: 'max logit error {},', key: 'dev.maxAbsError', kind: 'approx' },
    { row: SIM_S8, col: 'result', text: ', mean {})', key: 'dev.meanAbsError', kind: 'approx' },
    { row: SIM_S8, col: 'result', text: 'and {}% on', key: 'cal.agreement', kind: 'exact', scale: pct },
    { row: SIM_S8, col: 'result', text: 'on {} of `calibration', key: 'cal.positions', kind: 'exact' },
    { row: SIM_S8, col: 'result', text: '(max {}, mean', key: 'cal.maxAbsError', kind: 'approx' },
    { row: SIM_S8, col: 'result', text: ', mean {})', nth: 1, key: 'cal.meanAbsError', kind: 'approx' },
  ],
  'prefill16-n32768': [
    { row: PLACEMENT, col: 'result', text: 'N=32768, {} levels', key: 'levels', kind: 'exact' },
    { row: PLACEMENT, col: 'result', text: 'prefill of 16 **{}**', key: 'refreshes', kind: 'exact' },
    { row: PLACEMENT, col: 'result', text: '** vs {}.', key: 'greedyRefreshes', kind: 'exact' },
    { row: REPORT_32768, col: 'result', text: 'depth {} (layer 0)', key: 'layer0.depth', kind: 'exact' },
    { row: REPORT_32768, col: 'result', text: 'and {} (layer 1)', key: 'layer1.depth', kind: 'exact' },
    { row: REPORT_32768, col: 'result', text: ', {} rotations each', key: 'layer0.rotations', kind: 'exact' },
    { row: REPORT_32768, col: 'result', text: ', {} rotations each', key: 'layer1.rotations', kind: 'exact' },
    { row: REPORT_32768, col: 'result', text: 'whole model {} levels deep', key: 'depth', kind: 'exact' },
    { row: REPORT_32768, col: 'result', text: ', {} FHE ops', key: 'opsUnmanaged', kind: 'exact' },
    { row: REPORT_32768, col: 'result', text: '({} after scale management)', key: 'opsManaged', kind: 'exact' },
    { row: REPORT_32768, col: 'result', text: '**{} refreshes**', key: 'refreshes', kind: 'exact' },
    { row: REPORT_32768, col: 'result', text: '(greedy baseline {})', key: 'greedyRefreshes', kind: 'exact' },
    { row: REPORT_32768, col: 'result', text: 'on `sim`, {}/', key: 'agree', kind: 'exact' },
    { row: REPORT_32768, col: 'result', text: '/{} greedy agreement', key: 'positions', kind: 'exact' },
    { row: REPORT_32768, col: 'result', text: 'max logit error {}.', key: 'maxAbsError', kind: 'approx' },
  ],
  'sim-genai': [
    { row: SIM_GENAI, col: 'result', text: 'same argmax as onnxruntime ({})', key: 'argmax', kind: 'exact' },
    { row: SIM_GENAI, col: 'result', text: 'max logit error {} (', key: 'vsOrt', kind: 'approx' },
    { row: SIM_GENAI, col: 'result', text: '(N={},', key: 'ringDegree', kind: 'exact' },
    { row: SIM_GENAI, col: 'result', text: ', {} refreshes)', key: 'refreshes', kind: 'exact' },
  ],
  zoo: ['Z1', 'Z2', 'Z3', 'Z4', 'Z5', 'Z6'].flatMap(zooRows),
  'zoo-seal': ['Z1', 'Z2'].flatMap(zooSealRows),
  softmax: [...softmaxRows('decode P=40', 'squaring'), ...softmaxRows('decode P=40', 'shifted'), ...softmaxRows('prefill S=16', 'squaring'), ...softmaxRows('prefill S=16', 'shifted')],
  'cost-only-1b': [
    { row: 'Llama-3.2-1B shape', col: 'ops', text: '{} M', key: 'millionOps', kind: 'exact' },
    { row: 'Llama-3.2-1B shape', col: 'rotations', text: '{}', key: 'rotations', kind: 'exact' },
    { row: 'Llama-3.2-1B shape', col: 'refreshes', text: '{}', key: 'refreshes', kind: 'exact' },
    { row: 'Llama-3.2-1B shape', col: 'keys / plaintexts', text: '{} /', key: 'keyGiB', kind: 'exact' },
    { row: 'Llama-3.2-1B shape', col: 'keys / plaintexts', text: '/ {} GiB', key: 'plaintextGiB', kind: 'exact' },
    { row: 'Llama-3.2-1B shape', col: 'predicted per token, 1 core', text: '{} min', key: 'minutesPerToken1Core', kind: 'exact' },
    { row: 'Llama-3.2-1B shape', col: '64 cores', text: '{} min', key: 'minutesPerToken64Cores', kind: 'exact' },
  ],
  'inspect-8b': [
    { row: 0, col: 'parameters', text: '{}', key: 'parameters', kind: 'exact' },
    { row: 0, col: 'external data', text: '{} GiB', key: 'externalGiB', kind: 'exact' },
    { row: 0, col: '.onnx', text: '{} KiB', key: 'modelKiB', kind: 'exact' },
    { row: 0, col: 'inspect wall time', text: '{} s', key: 'inspectSeconds', kind: 'timing' },
    { row: 0, col: 'inspect peak RSS', text: '{} MB', key: 'inspectPeakRssMB', kind: 'timing' },
  ],
  'generate-bench': [
    ...generateStep('prefill of 8', 'prefill', true),
    ...generateStep('decode, P=8', 'decodeP8', true),
    ...generateStep('decode, P=9', 'decodeP9', true),
    ...generateStep('decode, P=10', 'decodeP10', true),
    ...generateStep('**decode mean**', 'decodeMean', false),
  ],
  'refresh-rounds': [...rounds('shipped table', 'inProcess'), ...rounds('`--link rtt=50ms,bandwidth=100Mbit`', 'link50ms')],
  'ckks-ops': [
    ...ckksOp('encode', 'encode', [2, 1]),
    ...ckksOp('encrypt', 'encrypt', [2, 1]),
    ...ckksOp('decrypt', 'decrypt', [2, 1, 0]),
    ...ckksOp('add', 'add', [2, 1, 0]),
    ...ckksOp('rotate', 'rotate', [2, 1, 0]),
    ...ckksOp('mul_plain', 'mul_plain', [2, 1]),
    ...ckksOp('mul (ct×ct)', 'mul', [2, 1]),
    ...ckksOp('relinearize', 'relinearize', [2, 1]),
    ...ckksOp('rescale', 'rescale', [2, 1]),
  ],
};
