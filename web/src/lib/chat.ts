import { api } from './api';
import { readSse } from './sse';
import { parseStreamEvent, type StreamEvent } from './branch';

/** Opens a Chat API stream (send, regenerate or re-attach) and calls `onEvent` per event. */
export async function openStream(
  path: string,
  init: { method: 'GET' | 'POST'; body?: unknown; signal?: AbortSignal },
  onEvent: (e: StreamEvent) => void,
) {
  const res = await api<Response>(path, { method: init.method, body: init.body, signal: init.signal, raw: true });
  if (!res.body) return;
  await readSse(res.body, (frame) => {
    const event = parseStreamEvent(frame.event, frame.data);
    if (event) onEvent(event);
  });
}
