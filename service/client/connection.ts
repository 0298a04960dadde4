// The client's end of one session's WebSocket (protocol.ts), the same code in Node (22+, global
// WebSocket) and in the browser. Calls to the evaluator wait for their reply; refresh requests are
// answered by the key holder as they arrive, while a call is in flight. When the connection is lost
// the caller decides whether to resume (remote-generation.ts).

import { FhecError } from '../../ir/errors.js';
import { errorFrame, frame, readFrame, SERVICE_PATH, SERVER_KINDS, type CallHeader, type ResumedHeader, type SessionHeader } from '../protocol.js';

export interface Traffic {
  /** Refresh requests answered (one round trip each, however many ciphertexts it batches). */
  refreshRoundTrips: number;
  /** Evaluator calls (open, keys, step, close). */
  calls: number;
  bytesSent: number;
  bytesReceived: number;
}

/** The connection closed without an error from the server: resumable once a session exists, a clear error otherwise. */
export class ConnectionLost extends FhecError {
  constructor(readonly why: string) {
    super(why);
  }
}

/** Close code of a connection whose key holder refused a refresh request (an application code: browsers allow no 1008 from a client). */
export const REFRESH_REFUSED = 4008;

type Waiter = { kinds: readonly string[]; resolve: (f: { header: { kind: string }; blob?: Uint8Array }) => void; reject: (e: Error) => void };

export class SessionConnection {
  private ws!: WebSocket;
  private waiter?: Waiter;
  private seq = 0;
  session?: string;
  private lost?: Error;

  constructor(
    private readonly url: string,
    /** The key holder: a refresh request in, its reply out (throws to refuse). */
    private readonly keyHolder: (request: Uint8Array) => Uint8Array,
    readonly traffic: Traffic,
  ) {}

  /** Opens the WebSocket (rejects with ConnectionLost if the server cannot be reached). */
  connect(): Promise<void> {
    const u = new URL(SERVICE_PATH, this.url);
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    this.lost = undefined;
    this.seq = 0;
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(u.href);
      ws.binaryType = 'arraybuffer';
      this.ws = ws;
      let opened = false;
      ws.onopen = () => {
        opened = true;
        resolve();
      };
      ws.onmessage = (ev) => this.onFrame(new Uint8Array(ev.data as ArrayBuffer));
      ws.onclose = (ev) => {
        const why = `the connection to ${this.url} closed (code ${ev.code}${ev.reason ? `: ${ev.reason}` : ''})`;
        this.lost ??= new ConnectionLost(why);
        if (!opened) reject(new ConnectionLost(`cannot connect to ${this.url}`));
        this.fail(this.lost);
      };
      ws.onerror = () => {
        // onclose follows with the code.
      };
    });
  }

  private fail(e: Error): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(e);
  }

  private send(bytes: Uint8Array): void {
    if (this.lost) throw this.lost;
    this.traffic.bytesSent += bytes.length;
    this.ws.send(bytes);
  }

  private onFrame(bytes: Uint8Array): void {
    this.traffic.bytesReceived += bytes.length;
    let f: { header: { kind: string }; blob?: Uint8Array };
    try {
      f = readFrame(bytes, SERVER_KINDS);
    } catch (e) {
      // An error frame from the server, or a frame we cannot read: this session is over.
      this.lost = e instanceof FhecError ? e : new FhecError(String(e));
      this.fail(this.lost);
      this.ws.close();
      return;
    }
    if (f.header.kind === 'refresh') {
      const h = f.header as CallHeader;
      try {
        if (h.session !== this.session) throw new FhecError(`the server sent a refresh request for another session`);
        if (!f.blob) throw new FhecError('the server sent a refresh frame with no request');
        const reply = this.keyHolder(f.blob);
        this.traffic.refreshRoundTrips++;
        this.send(frame({ kind: 'refreshed', session: this.session, seq: h.seq } as CallHeader, reply));
      } catch (e) {
        // The key holder refuses: the session ends here, and the caller sees why.
        const err = e instanceof FhecError ? e : new FhecError(`the key holder failed: ${(e as Error).message}`);
        try {
          this.ws.send(errorFrame(err.message));
        } catch {
          // closed already
        }
        this.lost = err;
        this.fail(err);
        // A client may close with 1000 or an application code (3000-4999) only: 4008, policy (1008) refused.
        this.ws.close(REFRESH_REFUSED, 'refresh refused');
      }
      return;
    }
    const w = this.waiter;
    if (!w || !w.kinds.includes(f.header.kind)) {
      this.lost = new FhecError(`the server sent an unexpected '${f.header.kind}' frame`);
      this.fail(this.lost);
      this.ws.close();
      return;
    }
    this.waiter = undefined;
    w.resolve(f);
  }

  private expect(kinds: readonly string[]): Promise<{ header: { kind: string }; blob?: Uint8Array }> {
    if (this.lost) return Promise.reject(this.lost);
    return new Promise((resolve, reject) => (this.waiter = { kinds, resolve, reject }));
  }

  async hello(plan: string, promptTokens: number, maxNewTokens: number): Promise<SessionHeader> {
    const p = this.expect(['session']);
    this.send(frame({ kind: 'hello', plan, promptTokens, maxNewTokens } as { kind: string }));
    const h = (await p).header as SessionHeader;
    this.session = h.session;
    return h;
  }

  async resume(plan: string, session: string): Promise<{ header: ResumedHeader; lastReply?: Uint8Array }> {
    const p = this.expect(['resumed']);
    this.send(frame({ kind: 'resume', session, plan } as { kind: string }));
    const f = await p;
    this.session = session;
    return { header: f.header as ResumedHeader, ...(f.blob ? { lastReply: f.blob } : {}) };
  }

  /** One evaluator request and its reply. */
  async call(request: Uint8Array): Promise<Uint8Array> {
    const p = this.expect(['reply']);
    const seq = ++this.seq;
    this.traffic.calls++;
    this.send(frame({ kind: 'call', session: this.session!, seq } as CallHeader, request));
    const f = await p;
    if ((f.header as CallHeader).seq !== seq || !f.blob) throw new FhecError(`the server answered request ${(f.header as CallHeader).seq}, expected ${seq}`);
    return f.blob;
  }

  close(): void {
    this.lost ??= new ConnectionLost('closed by the client');
    this.ws?.close(1000, 'done');
  }
}
