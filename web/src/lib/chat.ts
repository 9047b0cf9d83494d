import { api, ApiError, refreshSession } from './api';
import { readSse } from './sse';
import { parseStreamEvent, type StreamEvent } from './branch';
import { chatSocket, SocketUnavailable, tokenExpired, type ChatSocket } from './socket';
import { authStore } from './auth';

/** A Chat API stream (send, regenerate or re-attach) as a chat socket request, or null for a
 * path the socket does not carry. */
export function socketRequest(path: string, method: 'GET' | 'POST', body: unknown): Record<string, unknown> | null {
  const extra = body && typeof body === 'object' ? (body as Record<string, unknown>) : {};
  let m = /^chat\/conversations\/([^/]+)\/messages$/.exec(path);
  if (m && method === 'POST') return { ...extra, type: 'send', conversation_id: decodeURIComponent(m[1]) };
  m = /^chat\/messages\/([^/]+)\/(regenerate|continue)$/.exec(path);
  if (m && method === 'POST') return { ...extra, type: m[2], message_id: decodeURIComponent(m[1]) };
  m = /^chat\/messages\/([^/]+)\/stream$/.exec(path);
  if (m && method === 'GET') return { type: 'attach', message_id: decodeURIComponent(m[1]) };
  return null;
}

/**
 * Opens a Chat API stream (send, regenerate or re-attach) and calls `onEvent` per event: over
 * the chat socket when the browser has one and it opens, else over SSE. The fallback happens
 * only before a request went out on the socket, so a message is never sent twice; a socket
 * that drops mid-answer fails the stream like a dropped SSE connection does.
 */
export async function openStream(
  path: string,
  init: { method: 'GET' | 'POST'; body?: unknown; signal?: AbortSignal },
  onEvent: (e: StreamEvent) => void,
  socket: ChatSocket = chatSocket,
) {
  const request = socketRequest(path, init.method, init.body);
  if (request && socket.usable()) {
    if (tokenExpired(authStore.get().accessToken)) await refreshSession().catch(() => false);
    const onFrame = (frame: { event: string; data?: unknown }) => {
      const event = parseStreamEvent(frame.event, JSON.stringify(frame.data ?? null));
      if (event) onEvent(event);
    };
    try {
      return await socket.request(request, onFrame, init.signal);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        // The token the socket was opened with expired: refused before anything ran, so
        // once more on a socket with a fresh token.
        socket.close();
        if (await refreshSession().catch(() => false)) {
          try {
            return await socket.request(request, onFrame, init.signal);
          } catch (again) {
            if (!(again instanceof SocketUnavailable)) throw again;
          }
        }
      } else if (!(e instanceof SocketUnavailable)) throw e;
    }
  }
  const res = await api<Response>(path, { method: init.method, body: init.body, signal: init.signal, raw: true });
  if (!res.body) return;
  await readSse(res.body, (frame) => {
    const event = parseStreamEvent(frame.event, frame.data);
    if (event) onEvent(event);
  });
}
