import { ApiError } from './api';
import { authStore } from './auth';

/** One frame from the chat socket: the request it answers, the event, its data; a refused
 * request comes as `rejected` with the HTTP status the SSE route would have answered. */
export interface SocketFrame {
  id: string;
  event: string;
  data?: unknown;
  status?: number;
}

/** The chat socket's protocol; the access token rides as a second subprotocol because a
 * browser cannot set headers on a WebSocket (and a token in the URL would be logged). */
export const CHAT_PROTOCOL = 'skein.chat.v1';
const TOKEN_PROTOCOL = 'skein.bearer.';
/** How long opening may take before the page uses SSE instead (a proxy that swallows upgrades). */
const OPEN_WAIT_MS = 5000;
/** After a socket could not be opened, SSE is used for this long before the socket is tried again. */
const RETRY_AFTER_MS = 60_000;

type Pending = { onFrame: (frame: SocketFrame) => void; fail: (e: unknown) => void };

/** Thrown when the socket cannot be used (the caller falls back to SSE). */
export class SocketUnavailable extends Error {}

/**
 * One WebSocket per tab for every answer's events (see docs/CHAT-API.md): requests go out
 * with an id, and frames come back tagged with it. Opened on first use, closed at sign-out.
 */
export class ChatSocket {
  private ws: WebSocket | null = null;
  private opening: Promise<WebSocket> | null = null;
  private pending = new Map<string, Pending>();
  private seq = 0;
  private brokenUntil = 0;

  constructor(
    private readonly url: () => string,
    private readonly token: () => string | null,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether the socket is worth trying: WebSocket exists and did not fail lately. */
  usable(): boolean {
    return typeof WebSocket !== 'undefined' && this.now() >= this.brokenUntil && this.token() !== null;
  }

  /** The open socket, opening it if needed; rejects with [`SocketUnavailable`]. */
  connect(): Promise<WebSocket> {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) return Promise.resolve(this.ws);
    if (this.opening) return this.opening;
    const token = this.token();
    if (!token || typeof WebSocket === 'undefined') return Promise.reject(new SocketUnavailable('no socket'));
    this.opening = new Promise<WebSocket>((resolve, reject) => {
      let ws: WebSocket;
      try {
        ws = new WebSocket(this.url(), [CHAT_PROTOCOL, TOKEN_PROTOCOL + token]);
      } catch {
        reject(new SocketUnavailable('socket refused'));
        return;
      }
      const timer = setTimeout(() => {
        ws.close();
        fail();
      }, OPEN_WAIT_MS);
      const fail = () => {
        clearTimeout(timer);
        this.brokenUntil = this.now() + RETRY_AFTER_MS;
        reject(new SocketUnavailable('socket failed to open'));
      };
      ws.onerror = fail;
      ws.onclose = fail;
      ws.onopen = () => {
        clearTimeout(timer);
        ws.onerror = null;
        ws.onclose = () => this.closed(ws);
        ws.onmessage = (m) => this.frame(m.data);
        this.ws = ws;
        resolve(ws);
      };
    }).finally(() => {
      this.opening = null;
    });
    return this.opening;
  }

  /**
   * Sends a request and hands its frames to `onFrame` until its `end`. Rejects with an
   * [`ApiError`] when the server refuses it, or with a network error when the socket drops.
   */
  async request(body: Record<string, unknown>, onFrame: (frame: SocketFrame) => void, signal?: AbortSignal): Promise<void> {
    const ws = await this.connect();
    const id = `r${++this.seq}`;
    await new Promise<void>((resolve, reject) => {
      const abort = () => {
        this.pending.delete(id);
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'cancel', id }));
        reject(new DOMException('aborted', 'AbortError'));
      };
      if (signal?.aborted) return abort();
      signal?.addEventListener('abort', abort, { once: true });
      const done = () => {
        signal?.removeEventListener('abort', abort);
        this.pending.delete(id);
      };
      this.pending.set(id, {
        onFrame: (frame) => {
          if (frame.event === 'end') {
            done();
            resolve();
          } else if (frame.event === 'rejected') {
            done();
            reject(rejection(frame));
          } else onFrame(frame);
        },
        fail: (e) => {
          done();
          reject(e);
        },
      });
      ws.send(JSON.stringify({ ...body, id }));
    });
  }

  /** Closes the socket (sign-out); running requests fail. */
  close() {
    const ws = this.ws;
    this.ws = null;
    ws?.close(1000);
    if (ws) this.closed(ws);
  }

  private frame(text: unknown) {
    let frame: SocketFrame;
    try {
      frame = JSON.parse(String(text)) as SocketFrame;
    } catch {
      return;
    }
    this.pending.get(frame.id)?.onFrame(frame);
  }

  private closed(ws: WebSocket) {
    if (this.ws === ws) this.ws = null;
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.fail(new ApiError(0, 'network_error', 'The connection was lost.', null));
  }
}

/** Whether an access token (a JWT) has expired or will within half a minute. */
export function tokenExpired(token: string | null, now: number = Date.now()): boolean {
  if (!token) return false;
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const exp = Number((JSON.parse(atob(payload)) as { exp?: number }).exp);
    return Number.isFinite(exp) && exp * 1000 - 30_000 <= now;
  } catch {
    return false;
  }
}

function rejection(frame: SocketFrame): ApiError {
  const envelope = (frame.data ?? {}) as { error?: { code?: string; message?: string; details?: Record<string, unknown> }; request_id?: string };
  const e = envelope.error ?? {};
  return new ApiError(frame.status ?? 0, String(e.code ?? `http_${frame.status}`), String(e.message ?? ''), envelope.request_id ?? null, e.details ?? null);
}

function socketUrl() {
  const { protocol, host } = globalThis.location;
  return `${protocol === 'https:' ? 'wss:' : 'ws:'}//${host}/api/v1/chat/socket`;
}

/** This tab's chat socket. */
export const chatSocket = new ChatSocket(socketUrl, () => authStore.get().accessToken);

// A new token (a refresh, another user) or a sign-out: the socket opened with the old one goes.
let lastToken = authStore.get().accessToken;
authStore.subscribe(() => {
  const token = authStore.get().accessToken;
  if (token === lastToken) return;
  const signedOut = token === null || lastToken === null;
  lastToken = token;
  // A refreshed token for the same session keeps the socket (the server closes it when the
  // old token expires and nothing runs on it); a sign-out closes it at once.
  if (signedOut) chatSocket.close();
});
