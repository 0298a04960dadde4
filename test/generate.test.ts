// `fhec generate` end to end on model A: a generation plan compiled from the KV-cache export, greedy
// generation through the client/evaluator split on the simulator, checked byte for byte against greedy
// decoding of the fp32 model by onnxruntime; the evaluator's side holds no secret key on SEAL; clear
// errors for prompts past the compiled context and for plans that are not generation plans.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { GenerationPlanStore } from '../compiler/generation-plan.js';
import { GenerationEvaluator } from '../runtime/generate/evaluator.js';
import { GenerationClient } from '../runtime/generate/client.js';
import { loadClientModel } from '../runtime/generate/manifest.js';
import { decodeMessage, encodeKeys, encodeMessage } from '../runtime/generate/messages.js';
import type { OpenReply } from '../runtime/generate/evaluator.js';
import { loadSeal } from '../runtime/seal/module.js';
import { sealBackend } from '../runtime/seal/backend.js';
import { fhecInProcess } from './helpers/in-process.js';
import { cachedGenerationPlan } from './helpers/plan-cache.js';
import { ortGreedy as ortGreedyOf } from './helpers/ort-greedy.js';
import { MODELS } from './helpers/shared.js';

const KV_MODEL = path.join(MODELS, 'A_kvcache_opset14.onnx');
const FP32_MODEL = path.join(MODELS, 'A_nocache_opset14.onnx');
const CAL = path.join(MODELS, 'calibration.txt');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-generate-'));
let PLAN: string;
const PROMPT = 'said. ';

const fhec = fhecInProcess;

interface AuditLine {
  run: number;
  step: number;
  kind: 'refresh' | 'carry';
  point: string;
  bound: number;
  observedMax: number | null;
  hidingBits: number;
}

/** Reads an --audit-refresh file: every step has records, every observed |x| is within its bound. */
function checkAudit(file: string, steps: number): AuditLine[] {
  const lines = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as AuditLine);
  expect(new Set(lines.map((l) => l.step)).size).toBe(steps);
  for (const l of lines) {
    expect(l.observedMax, `${l.kind} of ${l.point} at step ${l.step}`).not.toBeNull();
    expect(l.observedMax!, `${l.kind} of ${l.point} at step ${l.step}`).toBeLessThanOrEqual(l.bound);
    expect(l.hidingBits).toBeGreaterThanOrEqual(40);
  }
  return lines;
}
const ortGreedy = (prompt: string, n: number) => ortGreedyOf(FP32_MODEL, prompt, n);

beforeAll(() => {
  // Prefill of 4: the 6-byte prompt prefills 4 bytes and feeds 2 through decode steps; the cache
  // crosses a stride change (8 -> 9 positions) on the way. The same plan as test/generate-seal.test.ts
  // (compiled once per run, plan-cache.ts; the files only read it).
  PLAN = cachedGenerationPlan(KV_MODEL, { calibration: CAL, maxContext: 16, prefill: [4], maxWindows: 32 });
  const doc = JSON.parse(fs.readFileSync(PLAN, 'utf8')) as { decodeBuckets: { from: number; to: number }[] };
  expect(doc.decodeBuckets.map((d) => [d.from, d.to])).toEqual([[4, 7], [8, 15]]);
}, 900000);

describe('fhec generate on sim', () => {
  it('yields exactly the bytes greedy fp32 decoding yields, with an encrypted KV cache carried between steps', async () => {
    const expected = await ortGreedy(PROMPT, 4);
    const auditFile = path.join(dir, 'audit.jsonl');
    const r = await fhec('generate', PLAN, '--prompt', PROMPT, '--max-new-tokens', '4', '--backend', 'sim', '--audit-refresh', auditFile);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${Buffer.from(expected).toString('latin1')}\n`);
    expect(r.stderr).toMatch(/^SIMULATION \(nothing encrypted\)/m);
    expect(r.stderr).toMatch(/prefill of 4 tokens: [\d.]+ s/);
    // Positions 4..8: two prompt bytes and three generated ones go through decode plans.
    expect(r.stderr).toMatch(/decode steps: 5, mean [\d.]+ s per token; each: P=4 .*P=8 /);
    expect(r.stderr).toMatch(/rotations: [1-9]\d*/);
    // 2 layers x (K, V) carried after each of the 5 steps before a decode.
    expect(r.stderr).toMatch(/refreshes: [1-9]\d* ciphertexts by refresh ops, 20 KV-cache ciphertexts carried between steps/);
    expect(r.stderr).toMatch(/key holder: [1-9]\d* round trips, [\d.]+ MiB to it/);
    // Refreshes of one dependency level share a message: fewer round trips per token than ciphertexts.
    const perToken = /key holder per decode token: ([\d.]+) round trips for ([\d.]+) ciphertexts, [\d.]+ MiB to it, [\d.]+ MiB back/.exec(r.stderr);
    expect(perToken, r.stderr).not.toBeNull();
    expect(Number(perToken![1])).toBeGreaterThanOrEqual(1);
    expect(Number(perToken![1])).toBeLessThan(Number(perToken![2]));
    expect(r.stderr).toMatch(/peak memory: [\d.]+ MiB/);
    // Decode plans by buckets of past length (4..7 and 8..15), all compiled ahead: none during the run.
    expect(r.stderr).not.toMatch(/step plans compiled during this run/);
    // Every masked ciphertext was within the bound its mask was sized from (the key holder accepted the
    // whole schedule: a refused request would have ended the run).
    const audit = checkAudit(auditFile, 6);
    expect(audit.filter((a) => a.kind === 'carry').length).toBe(20);
    expect(r.stderr).toMatch(/refresh audit .*: \d+ masked ciphertexts \(\d+ refreshes, 20 cache carries\), hiding >= 40\.0 bits per ciphertext; every observed \|x\| within its bound/);
  }, 480000);

  it('keeps every refreshed value within its bound on held-out prompts (eval-dev.txt)', async () => {
    // A 6-byte prompt from the held-out text: the same step plans as above (nothing to compile).
    const text = fs.readFileSync(path.join(MODELS, 'eval-dev.txt'), 'latin1');
    for (const at of [2000]) {
      const prompt = text.slice(at, at + 6);
      const auditFile = path.join(dir, `audit-${at}.jsonl`);
      const r = await fhec('generate', PLAN, '--prompt', prompt, '--max-new-tokens', '4', '--backend', 'sim', '--no-progress', '--audit-refresh', auditFile);
      expect(r.status, r.stderr).toBe(0);
      checkAudit(auditFile, 6);
    }
  }, 240000);

  it('refuses a prompt past the compiled context, before any work', async () => {
    const r = await fhec('generate', PLAN, '--prompt', 'a prompt of 15 b', '--max-new-tokens', '4', '--backend', 'sim');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/a prompt of 16 tokens and 4 new tokens needs a context of 19, the plan was compiled for 16/);
  });

  it('rejects a plan that is not a generation plan, and a malformed one', async () => {
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(bad, JSON.stringify({ format: 'fhec-plan', version: 1 }));
    const a = await fhec('generate', bad, '--prompt', 'x', '--max-new-tokens', '1', '--backend', 'sim');
    expect(a.status).toBe(2);
    expect(a.stderr).toMatch(/not a generation plan/);
    const doc = JSON.parse(fs.readFileSync(PLAN, 'utf8'));
    fs.writeFileSync(bad, JSON.stringify({ ...doc, maxContext: 'many' }));
    const b = await fhec('generate', bad, '--prompt', 'x', '--max-new-tokens', '1', '--backend', 'sim');
    expect(b.status).toBe(2);
    expect(b.stderr).toMatch(/malformed generation plan: maxContext/);
  });
});

describe('client/evaluator split on SEAL', () => {
  it('gives the evaluator public keys only: no secret key, decryptor or key generator reachable from it', async () => {
    const seal = await loadSeal();
    const store = new GenerationPlanStore(PLAN);
    const client = new GenerationClient(sealBackend, loadClientModel(PLAN), store);
    const crossing: unknown[] = [];
    const evaluator = new GenerationEvaluator(store, sealBackend, (b) => {
      crossing.push(b);
      return client.keyHolder(b);
    });
    // A 4-byte prompt and one new token: the prefill alone (no decode plan to compile).
    const plan = decodeMessage<OpenReply>(await evaluator.handle(encodeMessage({ kind: 'open', promptTokens: 4, maxNewTokens: 1 } as { kind: string })), ['plan']).header;
    expect(plan.steps.map((s) => s.kind)).toEqual(['prefill']);
    const ckks = await sealBackend.createClient(store.params, plan.keys);
    const keysMessage = encodeKeys(ckks.evaluationKeys());
    crossing.push(keysMessage);
    decodeMessage(await evaluator.handle(keysMessage), ['ready']);
    const seen = new Set<unknown>();
    const walk = (v: unknown, d: number): void => {
      if (v === null || typeof v !== 'object' || seen.has(v) || d < 0 || ArrayBuffer.isView(v)) return;
      seen.add(v);
      for (const k of Object.getOwnPropertyNames(v)) walk((v as Record<string, unknown>)[k], d - 1);
    };
    walk(evaluator, 6);
    expect([...seen].some((o) => o && (o as object).constructor?.name === 'SealEvaluator')).toBe(true);
    for (const o of seen) {
      expect(o instanceof seal.SecretKey || o instanceof seal.Decryptor || o instanceof seal.KeyGenerator).toBe(false);
    }
    expect('decrypt' in evaluator).toBe(false);
    for (const m of crossing) expect(m).toBeInstanceOf(Uint8Array);
    await evaluator.handle(encodeMessage({ kind: 'close' }));
    ckks.dispose();
    client.dispose();
  }, 120000);
});
