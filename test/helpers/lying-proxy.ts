// A malicious `fhec serve`, for the tests of the client's schedule check: a proxy in front of a real
// server that passes everything through except what a lying server would change: the schedule digest
// it announces (GET /v1/plans and the session frame), and the refresh requests it sends the key holder
// (an item added, items swapped). The client cannot tell it from a server.

import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { isGenerationMessage } from '../../runtime/generate/messages.js';
import { decodeRefreshRequest, encodeRefreshRequest, type RefreshRequest } from '../../runtime/refresh/messages.js';
import { frame, readFrame, SERVER_KINDS, SERVICE_PATH } from '../../service/protocol.js';

export interface Lies {
  /** Announce this schedule digest for every plan and session, whatever the server runs. */
  scheduleSha256?: string;
  /** Rewrite refresh-op requests (FHRQ) before the client sees them; `n` counts them from 1. */
  refresh?: (r: RefreshRequest, n: number) => RefreshRequest;
}

export interface LyingProxy {
  url: string;
  close(): Promise<void>;
}

export async function lyingProxy(upstream: string, lies: Lies): Promise<LyingProxy> {
  let refreshes = 0;
  const server = http.createServer((req, res) => {
    void (async () => {
      const r = await fetch(new URL(req.url!, upstream));
      let body = new Uint8Array(await r.arrayBuffer());
      if (req.url === '/v1/plans' && lies.scheduleSha256) {
        const plans = JSON.parse(new TextDecoder().decode(body)) as { scheduleSha256: string }[];
        for (const p of plans) p.scheduleSha256 = lies.scheduleSha256;
        body = new TextEncoder().encode(JSON.stringify(plans));
      }
      res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'application/octet-stream' });
      res.end(body);
    })();
  });
  const wss = new WebSocketServer({ server, path: SERVICE_PATH, maxPayload: 2 ** 31 });
  wss.on('connection', (client) => {
    const up = new WebSocket(new URL(SERVICE_PATH, upstream).href.replace(/^http/, 'ws'), { maxPayload: 2 ** 31 });
    const queued: Buffer[] = [];
    up.on('open', () => queued.splice(0).forEach((b) => up.send(b)));
    client.on('message', (d: Buffer) => (up.readyState === WebSocket.OPEN ? up.send(d) : queued.push(d)));
    up.on('message', (d: Buffer) => {
      const bytes = new Uint8Array(d);
      let out: Uint8Array = bytes;
      try {
        const f = readFrame<{ kind: string; scheduleSha256?: string }>(bytes, SERVER_KINDS);
        if (f.header.kind === 'session' && lies.scheduleSha256) out = frame({ ...f.header, scheduleSha256: lies.scheduleSha256 } as { kind: string }, f.blob);
        if (f.header.kind === 'refresh' && lies.refresh && f.blob && !isGenerationMessage(f.blob)) {
          out = frame(f.header, encodeRefreshRequest(lies.refresh(decodeRefreshRequest(f.blob), ++refreshes)));
        }
      } catch {
        // an error frame: pass it on as it is
      }
      client.send(out);
    });
    const closeBoth = () => {
      client.close();
      up.close();
    };
    client.on('close', closeBoth);
    up.on('close', closeBoth);
    up.on('error', closeBoth);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    close: () =>
      new Promise((r) => {
        for (const c of wss.clients) c.terminate();
        wss.close();
        server.close(() => r());
      }),
  };
}
