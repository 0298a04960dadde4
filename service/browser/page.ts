// The browser page of `fhec serve`: node-seal's wasm runs here; the page makes the keys, encrypts the
// prompt, answers the server's refresh requests as the key holder, decrypts and shows the text as it
// comes. The secret key never leaves the page: only evaluation keys and ciphertexts go to the server
// (the same client library as `fhec client generate`, service/client).

import { generateRemote, formatRemoteSummary } from '../client/remote-generation.js';
import { sealBackend } from '../../runtime/seal/backend.js';
import { shapeName } from '../../runtime/generate/plan-source.js';

function el<T extends HTMLElement>(id: string): T {
  return document.getElementById(id) as T;
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
    status.textContent = 'making keys and uploading the evaluation keys...';
    const r = await generateRemote({
      server: location.origin,
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
