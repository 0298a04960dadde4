// Section `zoo-seal` (README "Model zoo", the table of encrypted generation; issue 12's acceptance): two
// zoo models fhec was not developed on, one MHA with tied embeddings (Z1) and one GQA with 3 query heads
// per KV head (Z2), each `fhec compile <kvcache export> --max-context 16 --prefill 8` (the parameter
// search choosing N), then `fhec generate PLAN --prompt "Let's re" --max-new-tokens 8 --backend seal`
// in its own process: every activation and the KV cache encrypted, the key holder answering the masked
// refreshes. Compared byte for byte with greedy decoding of the fp32 no-cache export by onnxruntime.
// FHEC_ZOO_SEAL_MODELS=Z1 runs only those models and keeps the others' figures from the previous file.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect, it } from 'vitest';
import { compileGenerationPlan } from '../compiler/generation-plan.js';
import { ortGreedy } from '../test/helpers/ort-greedy.js';
import { MODELS, ROOT } from '../test/helpers/shared.js';
import { previousModels, writeSection } from './record.js';

const ZOO = path.join(ROOT, 'models', 'zoo');
const PROMPT = "Let's re";
const BYTES = 8;
const CASES = [
  { model: 'Z1', kv: 'Z1_kvcache_opset14.onnx', fp32: 'Z1_nocache_opset17.onnx' },
  { model: 'Z2', kv: 'Z2_kvcache_opset14.onnx', fp32: 'Z2_nocache_opset17.onnx' },
];
const ONLY = process.env.FHEC_ZOO_SEAL_MODELS?.split(',');

const t0 = performance.now();
const { previous, figures, details } = previousModels('zoo-seal', ONLY);

// Written after every model, so a run that dies part way keeps the models it finished.
const save = () =>
  writeSection('zoo-seal', t0, [
    `fhec compile models/zoo/<model>_kvcache_opset14.onnx -o gen.json --calibration ../shared/models/calibration.txt --max-context ${PROMPT.length + BYTES} --prefill ${PROMPT.length} (compileGenerationPlan)`,
    `fhec generate gen.json --prompt "${PROMPT}" --max-new-tokens ${BYTES} --backend seal --no-progress (its own process); onnxruntime greedy on models/zoo/<model>_nocache_opset17.onnx`,
  ], figures, details);

for (const c of CASES.filter((x) => !ONLY || ONLY.includes(x.model))) {
  it(`${c.model}: ${BYTES} bytes generated on SEAL from "${PROMPT}" equal onnxruntime's greedy fp32 bytes`, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `fhec-zoo-seal-${c.model}-`));
    const plan = path.join(dir, 'gen.json');
    const tc = performance.now();
    const compiled = compileGenerationPlan(path.join(ZOO, c.kv), plan, { calibration: path.join(MODELS, 'calibration.txt'), maxContext: PROMPT.length + BYTES, prefill: [PROMPT.length] });
    const compileSeconds = (performance.now() - tc) / 1000;
    const expected = Buffer.from(await ortGreedy(path.join(ZOO, c.fp32), PROMPT, BYTES)).toString('latin1');
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'fhec.js'), 'generate', plan, '--prompt', PROMPT, '--max-new-tokens', String(BYTES), '--backend', 'seal', '--no-progress'], { encoding: 'latin1', maxBuffer: 1 << 26 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^SEAL, encrypted:/m);
    const text = r.stdout.replace(/\n$/, '');
    const num = (re: RegExp) => Number(re.exec(r.stderr)?.[1] ?? NaN);
    let equal = 0;
    while (equal < BYTES && text[equal] === expected[equal]) equal++;
    const m = compiled.manifest.params;
    Object.assign(figures, {
      [`${c.model}.ringDegree`]: m.ringDegree,
      [`${c.model}.levels`]: m.bitSizes.length - 2,
      [`${c.model}.bytes`]: text.length,
      [`${c.model}.equalBytes`]: equal,
      [`${c.model}.prefillSeconds`]: num(/^prefill of \d+ tokens: ([\d.]+) s/m),
      [`${c.model}.decodeSecondsPerToken`]: num(/^decode steps: \d+, mean ([\d.]+) s per token/m),
      [`${c.model}.roundTripsPerDecodeToken`]: num(/^key holder per decode token: ([\d.]+) round trips/m),
    });
    details[c.model] = { prompt: PROMPT, generated: text, onnxruntime: expected, chain: m.bitSizes, compileSeconds, compileLines: compiled.lines, summary: r.stderr.split('\n').filter(Boolean) };
    save();
    expect(text).toBe(expected);
  });
}
