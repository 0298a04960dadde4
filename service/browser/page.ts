// The browser page of `fhec serve`: node-seal's wasm runs here; the page makes the keys, encrypts the
// prompt, answers the server's refresh requests as the key holder, decrypts and shows the text as it
// comes. The secret key never leaves the page: only evaluation keys and ciphertexts go to the server
// (the same client library as `fhec client generate`, service/client).
// The key holder enforces the refresh schedule of the user's own copy of the plan: the schedule file
// they choose here (`fhec client schedule PLAN.json -o FILE`), or the server's copy accepted only if its
// sha256 equals the digest they type (from their own copy). Both are sound: a file is the user's bytes,
// and a digest binds the server's bytes to them; taking the server's word for the digest would not be.
// The page never fills the digest in from the server.

import { generateRemote, formatRemoteSummary, fetchClientSchedule } from '../client/remote-generation.js';
import { readClientSchedule, type LoadedSchedule } from '../../runtime/generate/client-schedule.js';
import { FhecError } from '../../ir/errors.js';
import { sealBackend } from '../../runtime/seal/backend.js';
import { shapeName } from '../../runtime/generate/plan-source.js';

function el<T extends HTMLElement>(id: string): T {
  return document.getElementById(id) as T;
}

/** The schedule the user vouches for: their file, or the server's copy checked against their digest. */
async function userSchedule(): Promise<LoadedSchedule> {
  const digest = el<HTMLInputElement>('schedule-sha256').value.trim();
  const file = el<HTMLInputElement>('schedule-file').files?.[0];
  if (file) {
    const s = await readClientSchedule(new Uint8Array(await file.arrayBuffer()), file.name);
    if (digest && s.sha256 !== digest.toLowerCase()) throw new FhecError(`the schedule file ${file.name} has sha256 ${s.sha256}, not the digest you typed`);
    return s;
  }
  if (!digest) throw new FhecError('give the sha256 of your plan\'s refresh schedule (`fhec client schedule PLAN.json` prints it), or choose the schedule file: the page does not take the schedule on the server\'s word');
  return fetchClientSchedule(location.origin, digest);
}

async function run(): Promise<void> {
  const prompt = el<HTMLInputElement>('prompt').value;
  const maxNewTokens = Number(el<HTMLInputElement>('tokens').value);
  const status = el('status');
  const out = el('output');
  const bar = el<HTMLProgressElement>('progress');
  const summary = el('summary');
  const button = el<HTMLButtonElement>('go');
  button.disabled = true;
  out.textContent = '';
  summary.textContent = '';
  document.body.dataset['state'] = 'running';
  const t0 = performance.now();
  try {
    status.textContent = 'checking the refresh schedule...';
    const schedule = await userSchedule();
    status.textContent = 'making keys and uploading the evaluation keys...';
    const r = await generateRemote({
      server: location.origin,
      schedule,
      prompt,
      maxNewTokens,
      backend: sealBackend,
      onStatus: (m) => (status.textContent = m),
      onStep: (done, total, rec, text) => {
        bar.max = total;
        bar.value = done;
        out.textContent = text;
        status.textContent = `step ${done} of ${total} (${shapeName(rec.shape)}, ${(rec.ms / 1000).toFixed(1)} s)`;
      },
    });
    out.textContent = r.result.text;
    status.textContent = `done in ${((performance.now() - t0) / 1000).toFixed(1)} s`;
    summary.textContent = formatRemoteSummary(r, `SEAL, encrypted in this page: ${sealBackend.label}`).join('\n');
    document.body.dataset['bytes'] = r.result.generated.join(',');
    document.body.dataset['state'] = 'done';
  } catch (e) {
    status.textContent = `error: ${(e as Error).message}`;
    document.body.dataset['state'] = 'error';
  } finally {
    button.disabled = false;
  }
}

el<HTMLButtonElement>('go').addEventListener('click', () => void run());
document.body.dataset['state'] = 'ready';
