// The browser page of `fhec serve`, driven in headless Chromium (Debian's /usr/bin/chromium through
// playwright-core): node-seal's wasm runs in the page, makes the keys, encrypts the prompt, answers the
// server's refresh requests and shows the generated text, which must be onnxruntime's greedy bytes.
// The secret key never leaves the page: every WebSocket frame the page sends is checked to hold no
// SEAL object laid out as a secret key (service/server/key-check.ts), and the server accepted the keys.
// Screenshot: test/artifacts/serve-browser.png (docs/serve-browser.png with FHEC_UPDATE_DOCS=1).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { decodeKeys, isGenerationMessage, decodeMessage } from '../runtime/generate/messages.js';
import { readFrame } from '../service/protocol.js';
import { secretKeyRefusal } from '../service/server/key-check.js';
import { ortGreedy } from './helpers/ort-greedy.js';
import { startServe, type Served } from './helpers/serve.js';
import { FP32_MODEL, servePlan } from './helpers/serve-plan.js';
import { ownSchedule } from '../compiler/commands/client.js';
import { ROOT } from './helpers/shared.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.join(ROOT, 'test', 'artifacts');
const PROMPT = 'The ';

describe('fhec serve browser page on SEAL', () => {
  let server: Served;
  let browser: Browser;
  let digest: string;

  beforeAll(async () => {
    if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: the browser test needs Debian's chromium (apt-get install chromium)`);
    server = await startServe([servePlan(), '--port', '0']);
    // The digest the user types comes from their own copy of the plan, never from the server.
    digest = (await ownSchedule(servePlan())).sha256;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
  }, 900_000);
  afterAll(async () => {
    await browser?.close();
    server?.proc.kill('SIGKILL');
  });

  it('generates onnxruntime\'s greedy bytes in the page, the secret key staying there', async () => {
    const expected = await ortGreedy(FP32_MODEL, PROMPT, 2);
    const page = await browser.newPage({ viewport: { width: 900, height: 700 } });
    const sent: Uint8Array[] = [];
    page.on('websocket', (ws) => ws.on('framesent', (f) => {
      if (typeof f.payload !== 'string') sent.push(new Uint8Array(f.payload));
    }));
    const logs: string[] = [];
    page.on('console', (m) => logs.push(m.text()));
    page.on('pageerror', (e) => logs.push(String(e)));
    await page.goto(server.url);
    await page.waitForFunction("document.body.dataset.state === 'ready'");
    await page.fill('#prompt', PROMPT);
    await page.fill('#tokens', '2');
    // Without a schedule the user vouches for, or with a digest the server's schedule does not have, the page refuses.
    await page.click('#go');
    await page.waitForFunction("document.body.dataset.state === 'error'");
    expect(await page.textContent('#status')).toMatch(/sha256 of your plan's refresh schedule/);
    await page.fill('#schedule-sha256', digest.replace(/^./, (c) => (c === '0' ? '1' : '0')));
    await page.click('#go');
    await page.waitForFunction("document.body.dataset.state === 'error'");
    expect(await page.textContent('#status')).toMatch(/serves no plan whose refresh schedule has sha256/);
    await page.fill('#schedule-sha256', digest);
    await page.click('#go');
    await page.waitForFunction("['done', 'error'].includes(document.body.dataset.state)", undefined, { timeout: 3_000_000, polling: 1000 });
    const status = await page.textContent('#status');
    expect(await page.evaluate('document.body.dataset.state'), `${status}\n${logs.join('\n')}`).toBe('done');
    expect(await page.evaluate('document.body.dataset.bytes')).toBe(expected.join(','));
    expect(await page.textContent('#output')).toBe(new TextDecoder().decode(Uint8Array.from(expected)));
    const summary = (await page.textContent('#summary')) ?? '';
    expect(summary).toMatch(/^SEAL, encrypted in this page/);
    expect(summary).toMatch(/round trips: [1-9]\d* refresh/);
    // What left the page: frames holding evaluation keys (checked for a secret-key layout), steps, refresh replies.
    let keys = 0;
    for (const b of sent) {
      const inner = readFrame<{ kind: string }>(b, ['hello', 'call', 'refreshed', 'resume']).blob;
      if (!inner || !isGenerationMessage(inner) || decodeMessage(inner, ['open', 'keys', 'step', 'close', 'cache-fresh']).header.kind !== 'keys') continue;
      const k = decodeKeys(inner);
      for (const blob of [k.publicKey, k.relinKeys, k.galoisKeys]) if (blob) expect(secretKeyRefusal(blob, 16384, 6, 'key')).toBeUndefined();
      keys++;
    }
    expect(keys).toBe(1);
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'serve-browser.png'), fullPage: true });
    if (process.env.FHEC_UPDATE_DOCS) fs.copyFileSync(path.join(ARTIFACTS, 'serve-browser.png'), path.join(ROOT, 'docs', 'serve-browser.png'));
    process.stderr.write(`${summary}\n`);
  }, 3_600_000);
});
