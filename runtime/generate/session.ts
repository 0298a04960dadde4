// One generation in one process: a client and an evaluator joined by counting byte channels (the
// network split would carry the same bytes), and the summary `fhec generate` prints.

import { weightStreamSummary } from '../../ir/weights/cache.js';
import type { CkksBackend } from '../backend.js';
import { GenerationClient, type GenerateHooks, type GenerationResult } from './client.js';
import { GenerationEvaluator, type EvaluatorOptions } from './evaluator.js';
import type { ClientModel } from './manifest.js';
import type { GenerationPlanSource } from './plan-source.js';
import { CountingChannel, CountingSyncChannel, type ChannelCounters } from './transport.js';
import { formatMasksAhead, formatPrefetched } from './summary-lines.js';

export interface GenerationRun {
  result: GenerationResult;
  label: string;
  simulated: boolean;
  /** Client <-> evaluator messages (keys, embeddings, logits). */
  evaluatorChannel: ChannelCounters;
  /** Evaluator <-> key holder messages (refresh ops and KV-cache carries). */
  keyHolderChannel: ChannelCounters;
  /** Ciphertexts refreshed by refresh ops, and KV-cache ciphertexts carried between steps. */
  refreshes: number;
  cacheRefreshes: number;
  ops: Record<string, { count: number; ms: number }>;
  /** The refresh audit's summary line, when one was kept. */
  audit?: string;
  /** Peak resident set size of the process (bytes). */
  peakRss: number;
  totalMs: number;
}

export interface InProcessOptions extends GenerateHooks, EvaluatorOptions {
  /** The key holder's refresh rounds on a thread of their own while the evaluator makes its next zeros (SEAL). */
  keyHolderThread?: boolean;
}

export async function generateInProcess(
  source: GenerationPlanSource,
  backend: CkksBackend,
  model: ClientModel,
  prompt: string | Uint8Array,
  maxNewTokens: number,
  options: InProcessOptions = {},
): Promise<GenerationRun> {
  const t0 = performance.now();
  options.audit?.nextRun();
  const client = new GenerationClient(backend, model, source, options.mask?.minHidingBits, options.keyHolderThread === true);
  const keyHolder = new CountingSyncChannel(client.keyHolder);
  const evaluator = new GenerationEvaluator(source, backend, keyHolder.send, options);
  const toEvaluator = new CountingChannel((b) => evaluator.handle(b));
  try {
    const result = await client.generate(prompt, maxNewTokens, toEvaluator.send, options);
    const ops: Record<string, { count: number; ms: number }> = {};
    let refreshes = 0;
    let cacheRefreshes = 0;
    for (const s of evaluator.stats) {
      refreshes += s.refreshes;
      cacheRefreshes += s.cacheRefreshes;
      for (const [k, v] of Object.entries(s.ops)) {
        const o = (ops[k] ??= { count: 0, ms: 0 });
        o.count += v.count;
        o.ms += v.ms;
      }
    }
    return {
      result,
      label: backend.label,
      simulated: backend.simulated,
      evaluatorChannel: toEvaluator.counters,
      keyHolderChannel: keyHolder.counters,
      refreshes,
      cacheRefreshes,
      ops,
      peakRss: process.resourceUsage().maxRSS * 1024,
      ...(options.audit ? { audit: options.audit.summary() } : {}),
      totalMs: performance.now() - t0,
    };
  } finally {
    await evaluator.close();
    client.dispose();
  }
}

function mb(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

function sec(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

export function formatGenerationSummary(g: GenerationRun): string[] {
  const r = g.result;
  const lines = [g.simulated ? `SIMULATION (nothing encrypted): ${g.label}` : `SEAL, encrypted: ${g.label}`];
  const pre = r.steps[0]!;
  const dec = r.steps.slice(1);
  lines.push(`setup (keys, plans): ${sec(r.setupMs)}`);
  if (r.stoppedAt !== undefined) lines.push(`stopped at token ${r.stoppedAt} (a stop token: BOS, EOS or end of turn) after ${r.generated.length} of the tokens asked for`);
  lines.push(`prefill of ${pre.tokens.length} tokens: ${sec(pre.ms)} (evaluator ${sec(pre.evaluator.ms)}, client ${sec(pre.clientMs)})`);
  if (dec.length > 0) {
    const mean = dec.reduce((s, x) => s + x.ms, 0) / dec.length;
    lines.push(`decode steps: ${dec.length}, mean ${sec(mean)} per token; each: ${dec.map((d) => `P=${d.shape.kind === 'decode' ? d.shape.past : 0} ${sec(d.ms)}`).join(', ')}`);
    // Where a decode step's time goes: encoding constants (what the plaintext cache saves) vs the rest.
    let encodeMs = 0;
    let encodes = 0;
    let otherMs = 0;
    for (const d of dec) {
      for (const [k, v] of Object.entries(d.evaluator.ops)) {
        if (k === 'encode') {
          encodeMs += v.ms;
          encodes += v.count;
        } else otherMs += v.ms;
      }
    }
    lines.push(`decode step time by op, mean per step: encode ${sec(encodeMs / dec.length)} (${Math.round(encodes / dec.length)} encodes), other ops ${sec(otherMs / dec.length)}`);
  }
  const withCache = r.steps.filter((s) => s.evaluator.plaintexts);
  if (withCache.length > 0) {
    const cached = withCache.map((s) => s.evaluator.plaintexts!);
    const hits = cached.reduce((s, p) => s + p.hits, 0);
    const encodes = withCache.reduce((s, x) => s + (x.evaluator.ops['encode']?.count ?? 0), 0);
    const last = cached[cached.length - 1]!;
    lines.push(
      `plaintext cache (decode steps, dense constants): ${hits} of ${encodes} encodes were hits (per step: ${cached.map((p) => p.hits).join(', ')}), ` +
        `${mb(last.bytes)} held (${mb(last.reservedBytes)} of SEAL pool) of a ${mb(last.budgetBytes)} budget, ${cached.reduce((s, p) => s + p.evictions, 0)} evictions`,
    );
  }
  lines.push(...formatPrefetched(r.steps.map((s) => s.evaluator)), ...formatMasksAhead(r.steps.map((s) => s.evaluator)));
  const kinds = Object.entries(g.ops).sort((a, b) => b[1].count - a[1].count);
  const total = kinds.reduce((s, [, v]) => s + v.count, 0);
  lines.push(`ops: ${total} (${kinds.map(([k, v]) => `${k} ${v.count} in ${sec(v.ms)}`).join(', ')})`);
  lines.push(`rotations: ${g.ops['rotate']?.count ?? 0}`);
  lines.push(`refreshes: ${g.refreshes} ciphertexts by refresh ops, ${g.cacheRefreshes} KV-cache ciphertexts carried between steps`);
  const k = g.keyHolderChannel;
  lines.push(`key holder: ${k.roundTrips} round trips, ${mb(k.bytesSent)} to it, ${mb(k.bytesReceived)} back (its work ${sec(r.keyHolder.ms)}${r.keyHolder.threadRounds > 0 ? `, ${r.keyHolder.threadRounds} rounds on its own thread` : ''}${r.keyHolder.repliesAhead > 0 ? `, ${r.keyHolder.repliesAhead} replies encrypted between rounds` : ''}${r.keyHolder.rotatedCopies > 0 ? `, ${r.keyHolder.rotatedCopies} rotated copies of fresh values` : ''})`);
  if (dec.length > 0) {
    // Refreshes of one dependency level travel in one message (runtime/refresh/rounds.ts).
    const per = (f: (d: (typeof dec)[number]) => number) => dec.reduce((s, d) => s + f(d), 0) / dec.length;
    lines.push(
      `key holder per decode token: ${per((d) => d.evaluator.keyHolder.rounds).toFixed(1)} round trips for ${per((d) => d.evaluator.refreshes + d.evaluator.cacheRefreshes).toFixed(1)} ciphertexts, ` +
        `${mb(per((d) => d.evaluator.keyHolder.bytesToKeyHolder))} to it, ${mb(per((d) => d.evaluator.keyHolder.bytesToEvaluator))} back`,
    );
    const par = dec.map((d) => d.evaluator.parallel).filter((p) => p !== undefined);
    if (par.length > 0) {
      const moved = par.reduce((s, p) => s + p.moved.count, 0) / par.length;
      const movedBytes = par.reduce((s, p) => s + p.moved.bytes, 0) / par.length;
      const movedMs = par.reduce((s, p) => s + p.moved.ms, 0) / par.length;
      const busy = par[0]!.busyMs.map((_, w) => par.reduce((s, p) => s + p.busyMs[w]!, 0) / par.length);
      lines.push(
        `workers: ${par[0]!.workers}, per decode step ${Math.round(moved)} ciphertexts moved between them (${mb(movedBytes)}, ${sec(movedMs)} saving and loading), ` +
          `op time per worker ${busy.map((b) => sec(b)).join(' / ')}`,
      );
    }
  }
  const e = g.evaluatorChannel;
  lines.push(`client <-> evaluator: ${e.roundTrips} messages, ${mb(e.bytesSent)} to the evaluator (keys, embeddings), ${mb(e.bytesReceived)} back (logits)`);
  const streamed = weightStreamSummary();
  if (streamed) lines.push(streamed);
  lines.push(`peak memory: ${mb(g.peakRss)} resident (maxRSS)`);
  if (g.audit) lines.push(g.audit);
  return lines;
}
