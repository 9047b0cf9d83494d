// Chat streams over the socket and the fallback to SSE, against a fake WebSocket and a fake
// fetch: which transport carries a stream, that a message is never sent twice, and how
// refusals and drops surface.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { openStream, socketRequest } from './chat';
import { ChatSocket, tokenExpired } from './socket';
import { acceptTokens, clearSession } from './auth';
import type { StreamEvent } from './branch';
import { ApiError } from './api';

/** A WebSocket whose server side the test plays. */
class FakeSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;
  static made: FakeSocket[] = [];
  /** What the next socket does: open, fail, or never answer. */
  static behaviour: 'open' | 'fail' = 'open';
  readyState = FakeSocket.CONNECTING;
  sent: Record<string, unknown>[] = [];
  onopen: (() => void) | null = null;
  onerror: (() => void) | null = null;
  onclose: (() => void) | null = null;
  onmessage: ((m: { data: string }) => void) | null = null;

  constructor(
    readonly url: string,
    readonly protocols: string[],
  ) {
    FakeSocket.made.push(this);
    queueMicrotask(() => {
      if (FakeSocket.behaviour === 'open') {
        this.readyState = FakeSocket.OPEN;
        this.onopen?.();
      } else {
        this.readyState = FakeSocket.CLOSED;
        this.onerror?.();
      }
    });
  }

  send(text: string) {
    this.sent.push(JSON.parse(text));
  }

  close() {
    this.readyState = FakeSocket.CLOSED;
  }

  /** The server sends a frame. */
  push(frame: Record<string, unknown>) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  /** The connection drops. */
  drop() {
    this.readyState = FakeSocket.CLOSED;
    this.onclose?.();
  }
}

/** A JWT-shaped token expiring at `exp` (seconds). */
const token = (exp: number) => `h.${btoa(JSON.stringify({ exp })).replace(/=+$/, '')}.s`;

let fetches: string[];
let now: number;
const newSocket = () => new ChatSocket(() => 'ws://test/api/v1/chat/socket', () => 'acc', () => now);

/** Waits until the fake socket got `n` requests. */
async function requests(socket: FakeSocket, n: number) {
  await vi.waitFor(() => expect(socket.sent.length).toBeGreaterThanOrEqual(n));
  return socket.sent;
}

beforeEach(() => {
  FakeSocket.made = [];
  FakeSocket.behaviour = 'open';
  fetches = [];
  now = 1_000_000;
  acceptTokens({ access_token: token(4_000_000_000), refresh_token: 'ref', token_type: 'Bearer', expires_in: 900 });
  vi.stubGlobal('WebSocket', FakeSocket);
  vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
    fetches.push(`${init.method ?? 'GET'} ${url}`);
    const body = 'event: start\ndata: {"conversation_id":"c1","user_message_id":"u1","assistant_message_id":"a1"}\n\nevent: delta\ndata: {"content":"over sse"}\n\n';
    return new Response(body, { headers: { 'content-type': 'text/event-stream' } });
  });
});

afterEach(() => {
  vi.unstubAllGlobals();
  clearSession();
});

describe('socketRequest', () => {
  it('maps the stream routes and nothing else', () => {
    expect(socketRequest('chat/conversations/c1/messages', 'POST', { content: 'hi' })).toEqual({ type: 'send', conversation_id: 'c1', content: 'hi' });
    expect(socketRequest('chat/messages/m1/regenerate', 'POST', undefined)).toEqual({ type: 'regenerate', message_id: 'm1' });
    expect(socketRequest('chat/messages/m1/continue', 'POST', undefined)).toEqual({ type: 'continue', message_id: 'm1' });
    expect(socketRequest('chat/messages/m1/stream', 'GET', undefined)).toEqual({ type: 'attach', message_id: 'm1' });
    expect(socketRequest('chat/messages/m1/stop', 'POST', undefined)).toBeNull();
    expect(socketRequest('chat/conversations/c1/messages', 'GET', undefined)).toBeNull();
  });
});

describe('openStream', () => {
  it('carries an answer over the socket when it opens, with no HTTP request', async () => {
    const socket = newSocket();
    const events: StreamEvent[] = [];
    const done = openStream('chat/conversations/c1/messages', { method: 'POST', body: { content: 'hi' } }, (e) => events.push(e), socket);
    const ws = await vi.waitFor(() => FakeSocket.made[0] ?? Promise.reject(new Error('no socket yet')));
    expect(ws.protocols[0]).toBe('skein.chat.v1');
    expect(ws.protocols[1]).toMatch(/^skein\.bearer\./);
    expect(ws.url).not.toContain('bearer');
    const [sent] = await requests(ws, 1);
    expect(sent).toMatchObject({ type: 'send', conversation_id: 'c1', content: 'hi' });
    const id = sent.id as string;
    ws.push({ id: 'other', event: 'delta', data: { content: 'not mine' } });
    ws.push({ id, event: 'start', data: { conversation_id: 'c1', user_message_id: 'u1', assistant_message_id: 'a1' } });
    ws.push({ id, event: 'delta', data: { content: 'over the socket' } });
    ws.push({ id, event: 'end' });
    await done;
    expect(events.map((e) => e.type)).toEqual(['start', 'delta']);
    expect(events[1]).toEqual({ type: 'delta', content: 'over the socket' });
    expect(fetches).toEqual([]);

    // The next stream reuses the same socket.
    const again = openStream('chat/messages/a1/stream', { method: 'GET' }, () => undefined, socket);
    const [, second] = await requests(ws, 2);
    expect(second).toMatchObject({ type: 'attach', message_id: 'a1' });
    ws.push({ id: second.id as string, event: 'end' });
    await again;
    expect(FakeSocket.made).toHaveLength(1);
  });

  it('falls back to SSE when the socket does not open, and keeps to SSE for a while', async () => {
    FakeSocket.behaviour = 'fail';
    const socket = newSocket();
    const events: StreamEvent[] = [];
    await openStream('chat/conversations/c1/messages', { method: 'POST', body: { content: 'hi' } }, (e) => events.push(e), socket);
    expect(fetches).toEqual(['POST /api/v1/chat/conversations/c1/messages']);
    expect(events.map((e) => e.type)).toEqual(['start', 'delta']);
    expect(FakeSocket.made).toHaveLength(1);

    // Straight to SSE within the minute, then the socket is tried again.
    await openStream('chat/messages/a1/stream', { method: 'GET' }, () => undefined, socket);
    expect(FakeSocket.made).toHaveLength(1);
    expect(fetches).toHaveLength(2);
    now += 61_000;
    FakeSocket.behaviour = 'open';
    const later = openStream('chat/messages/a1/stream', { method: 'GET' }, () => undefined, socket);
    const ws = await vi.waitFor(() => FakeSocket.made[1] ?? Promise.reject(new Error('no socket yet')));
    const [sent] = await requests(ws, 1);
    ws.push({ id: sent.id as string, event: 'end' });
    await later;
    expect(fetches).toHaveLength(2);
  });

  it('uses SSE in a browser without WebSocket', async () => {
    vi.stubGlobal('WebSocket', undefined);
    const events: StreamEvent[] = [];
    await openStream('chat/messages/m1/regenerate', { method: 'POST' }, (e) => events.push(e), newSocket());
    expect(fetches).toEqual(['POST /api/v1/chat/messages/m1/regenerate']);
    expect(events).toHaveLength(2);
  });

  it('never sends a message twice: a socket that drops mid-answer fails the stream', async () => {
    const socket = newSocket();
    const events: StreamEvent[] = [];
    const done = openStream('chat/conversations/c1/messages', { method: 'POST', body: { content: 'hi' } }, (e) => events.push(e), socket);
    const ws = await vi.waitFor(() => FakeSocket.made[0] ?? Promise.reject(new Error('no socket yet')));
    const [sent] = await requests(ws, 1);
    ws.push({ id: sent.id as string, event: 'start', data: { conversation_id: 'c1', user_message_id: 'u1', assistant_message_id: 'a1' } });
    ws.drop();
    await expect(done).rejects.toMatchObject({ status: 0, code: 'network_error' });
    expect(events.map((e) => e.type)).toEqual(['start']);
    expect(fetches).toEqual([]);
  });

  it('a refused request is an ApiError with the status and code of the SSE route', async () => {
    const socket = newSocket();
    const done = openStream('chat/conversations/theirs/messages', { method: 'POST', body: { content: 'hi' } }, () => undefined, socket);
    const ws = await vi.waitFor(() => FakeSocket.made[0] ?? Promise.reject(new Error('no socket yet')));
    const [sent] = await requests(ws, 1);
    ws.push({ id: sent.id as string, event: 'rejected', status: 404, data: { error: { code: 'not_found', message: 'Conversation not found.' }, request_id: 'rq1' } });
    const error = await done.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 404, code: 'not_found', message: 'Conversation not found.', requestId: 'rq1' });
    expect(fetches).toEqual([]);
  });

  it('an abort stops listening and tells the server', async () => {
    const socket = newSocket();
    const controller = new AbortController();
    const done = openStream('chat/messages/a1/stream', { method: 'GET', signal: controller.signal }, () => undefined, socket);
    const ws = await vi.waitFor(() => FakeSocket.made[0] ?? Promise.reject(new Error('no socket yet')));
    const [sent] = await requests(ws, 1);
    controller.abort();
    await expect(done).rejects.toMatchObject({ name: 'AbortError' });
    expect(ws.sent[1]).toEqual({ type: 'cancel', id: sent.id });
  });
});

describe('tokenExpired', () => {
  it('reads the expiry of a JWT, with half a minute to spare', () => {
    expect(tokenExpired(token(1000), 900_000)).toBe(false);
    expect(tokenExpired(token(1000), 980_000)).toBe(true);
    expect(tokenExpired('not a jwt')).toBe(false);
    expect(tokenExpired(null)).toBe(false);
  });
});
