// node-seal's wasm heap is 4 GiB, and SEAL's memory pool stays locked after a std::bad_alloc (the next
// free spins forever). A run that fills the heap must stop with a clear error, not hang: here a child
// process keeps ciphertexts alive until SEAL runs out of memory, then frees everything and exits.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { expect, it } from 'vitest';
import { ROOT } from './helpers/shared.js';

const SCRIPT = `
const { sealBackend } = await import(${JSON.stringify(path.join(ROOT, 'dist/runtime/seal/backend.js'))});
const { makeParameters } = await import(${JSON.stringify(path.join(ROOT, 'dist/ir/ckks/params.js'))});
const p = makeParameters({ ringDegree: 16384, bitSizes: [60, 40, 40, 40, 40, 40, 40, 40, 60], scale: 2 ** 40 });
const client = await sealBackend.createClient(p, { galoisSteps: [], relin: false });
const ev = await sealBackend.createEvaluator(p, client.evaluationKeys());
const x = ev.loadCiphertext(client.encrypt(Float64Array.from({ length: 8192 }, (_, i) => i / 8192), 7, 2 ** 40));
const kept = [];
try {
  for (let i = 0; i < 4000; i++) kept.push(ev.add(x, x));
  console.log('no error after', kept.length);
} catch (e) {
  console.log('error after ' + kept.length + ': ' + e.message);
}
for (const h of kept) ev.free(h);
try { ev.add(x, x); } catch (e) { console.log('then: ' + e.message); }
console.log('freed');
`;

it("a run that fills SEAL's wasm heap stops with a clear error instead of hanging", () => {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', SCRIPT], { encoding: 'utf8', timeout: 120_000 });
  expect(r.signal, `${r.stdout}\n${r.stderr}`).toBeNull();
  expect(r.stdout).toMatch(/error after (\d+): SEAL add ran out of memory: node-seal's wasm heap \(4 GiB\) is full/);
  // About 1,700 ciphertexts of 2.4 MB fill the heap.
  expect(Number(/error after (\d+)/.exec(r.stdout)![1])).toBeGreaterThan(1000);
  expect(r.stdout).toMatch(/then: SEAL add refused: this SEAL instance ran out of memory earlier/);
  expect(r.stdout).toMatch(/freed/);
  expect(r.status).toBe(0);
}, 180_000);
