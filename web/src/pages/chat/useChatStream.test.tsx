// The stream hook on its own, against a fake Chat API: what it sends, what it shows while the
// SSE events arrive, and what it gives back to the page when a send fails.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { act, renderHook, waitFor } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import type { ReactNode } from 'react';
import { useChatStream, type ChatStreamEvents } from './useChatStream';
import { acceptTokens, clearSession } from '../../lib/auth';
import type { ChatMessage } from '../../lib/types';
import { chatMessage } from '../../test/chat';

interface Call {
  method: string;
  path: string;
  body: unknown;
}

const message = (id: string, parent: string | null, role: 'user' | 'assistant', content: string, status: ChatMessage['status'] = 'done') =>
  chatMessage(id, parent, role, content, { status });

/** An SSE response whose frames the test pushes one at a time. */
function sseResponse() {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) });
  const enc = new TextEncoder();
  return {
    response: new Response(body, { headers: { 'content-type': 'text/event-stream' } }),
    push: (event: string, data: unknown) => controller.enqueue(enc.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`)),
    close: () => controller.close(),
  };
}

const json = (data: unknown, status = 200) => new Response(JSON.stringify(data), { status, headers: { 'content-type': 'application/json' } });

let calls: Call[];
let routes: Record<string, (body: unknown) => Response | Promise<Response>>;

beforeEach(() => {
  calls = [];
  routes = {};
  acceptTokens({ access_token: 'acc', refresh_token: 'ref', token_type: 'Bearer', expires_in: 900 });
  vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
    const method = init.method ?? 'GET';
    const path = url.split('?')[0];
    const body = init.body ? JSON.parse(String(init.body)) : undefined;
    calls.push({ method, path, body });
    const route = routes[`${method} ${path}`];
    if (!route) return json({ error: { code: 'not_found', message: `no route ${method} ${path}` } }, 404);
    return route(body);
  });
});

afterEach(() => {
  vi.unstubAllGlobals();
  clearSession();
});

function mount(id: string | null, events: ChatStreamEvents = {}) {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  const wrapper = ({ children }: { children: ReactNode }) => <QueryClientProvider client={client}>{children}</QueryClientProvider>;
  return renderHook(({ conv }) => useChatStream(conv, events), { wrapper, initialProps: { conv: id } });
}

describe('useChatStream', () => {
  it('loads a conversation, and re-attaches to an answer still being written', async () => {
    const stream = sseResponse();
    routes['GET /api/v1/chat/conversations/c1/messages'] = () =>
      json({ conversation_id: 'c1', active_leaf_id: 'a1', messages: [message('u1', null, 'user', 'Hi'), message('a1', 'u1', 'assistant', 'Hel', 'streaming')] });
    routes['GET /api/v1/chat/messages/a1/stream'] = () => stream.response;
    const { result } = mount('c1');
    await waitFor(() => expect(result.current.streaming).toBe(true));
    // The first delta carries everything produced so far, so the partial text is cleared.
    expect(result.current.messages.map((m) => m.content)).toEqual(['Hi', '']);
    await act(async () => stream.push('delta', { content: 'Hello' }));
    await waitFor(() => expect(result.current.messages[1].content).toBe('Hello'));
    routes['GET /api/v1/chat/conversations/c1/messages'] = () =>
      json({ conversation_id: 'c1', active_leaf_id: 'a1', messages: [message('u1', null, 'user', 'Hi'), message('a1', 'u1', 'assistant', 'Hello')] });
    await act(async () => {
      stream.push('done', { message: message('a1', 'u1', 'assistant', 'Hello') });
      stream.close();
    });
    await waitFor(() => expect(result.current.streaming).toBe(false));
    expect(result.current.messages[1].status).toBe('done');
  });

  it('re-attaching shows the tool steps the server replays, once each, with a call still waiting', async () => {
    const stream = sseResponse();
    const waiting = { ...message('a1', 'u1', 'assistant', 'Let me look', 'streaming'), tool_calls: [{ id: 'call_1', name: 'get_weather', arguments: '{}', result: null, is_error: false }] };
    routes['GET /api/v1/chat/conversations/c1/messages'] = () =>
      json({ conversation_id: 'c1', active_leaf_id: 'a1', messages: [message('u1', null, 'user', 'Weather?'), waiting] });
    routes['GET /api/v1/chat/messages/a1/stream'] = () => stream.response;
    const { result } = mount('c1');
    await waitFor(() => expect(result.current.streaming).toBe(true));
    await act(async () => {
      stream.push('start', { user_message_id: 'u1', assistant_message_id: 'a1', conversation_id: 'c1' });
      stream.push('delta', { content: 'Let me look' });
      stream.push('tool_call', { id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris"}' });
      stream.push('tool_approval', { id: 'call_1', name: 'get_weather', message_id: 'a1', timeout_secs: 120 });
    });
    await waitFor(() => expect(result.current.messages[1].tool_calls?.[0]?.approval?.message_id).toBe('a1'));
    expect(result.current.messages[1].tool_calls).toHaveLength(1);
    expect(result.current.messages[1].content).toBe('Let me look');
    await act(async () => stream.push('tool_result', { id: 'call_1', name: 'get_weather', content: 'sunny', is_error: false, citations: [] }));
    await waitFor(() => expect(result.current.messages[1].tool_calls?.[0]?.result).toBe('sunny'));
    expect(result.current.messages[1].tool_calls?.[0]?.approval).toBeNull();
  });

  it('a first message creates the conversation, tells the page, and streams the answer', async () => {
    const stream = sseResponse();
    routes['POST /api/v1/chat/conversations'] = () => json({ id: 'c9' }, 201);
    routes['POST /api/v1/chat/conversations/c9/messages'] = () => stream.response;
    routes['GET /api/v1/chat/conversations/c9/messages'] = () =>
      json({ conversation_id: 'c9', active_leaf_id: 'a1', messages: [message('u1', null, 'user', 'Hi'), message('a1', 'u1', 'assistant', 'Yes')] });
    const onCreated = vi.fn();
    const onSending = vi.fn();
    const { result } = mount(null, { onCreated, onSending });
    let sent!: Promise<void>;
    act(() => {
      sent = result.current.send({ content: 'Hi', parentId: null, explicitParent: false, model: 'gpt-test' });
    });
    await waitFor(() => expect(onCreated).toHaveBeenCalledWith('c9'));
    expect(onSending).toHaveBeenCalledWith('c9', true);
    await waitFor(() => expect(result.current.messages.map((m) => m.role)).toEqual(['user', 'assistant']));
    expect(result.current.messages[0].id).toMatch(/^tmp-/);
    expect(result.current.activeId()).toBe('c9');
    expect(calls.find((c) => c.path === '/api/v1/chat/conversations')?.body).toEqual({ model: 'gpt-test' });
    expect(calls.find((c) => c.path === '/api/v1/chat/conversations/c9/messages' && c.method === 'POST')?.body).toEqual({ content: 'Hi', model: 'gpt-test' });
    await act(async () => {
      stream.push('start', { user_message_id: 'u1', assistant_message_id: 'a1', conversation_id: 'c9' });
      stream.push('delta', { content: 'Yes' });
      stream.push('done', { message: message('a1', 'u1', 'assistant', 'Yes') });
      stream.close();
      await sent;
    });
    expect(result.current.streaming).toBe(false);
    expect(result.current.messages.map((m) => m.id)).toEqual(['u1', 'a1']);
  });

  it('a send refused before its answer starts restores the thread and gives the text and images back', async () => {
    routes['GET /api/v1/chat/conversations/c1/messages'] = () =>
      json({ conversation_id: 'c1', active_leaf_id: 'a1', messages: [message('u1', null, 'user', 'Hi'), message('a1', 'u1', 'assistant', 'Hello')] });
    routes['POST /api/v1/chat/conversations/c1/messages'] = () => json({ error: { code: 'insufficient_balance', message: 'Your balance is too low' } }, 402);
    const onSendFailed = vi.fn();
    const { result } = mount('c1', { onSendFailed });
    await waitFor(() => expect(result.current.messages).toHaveLength(2));
    await act(async () => {
      await result.current.send({ content: 'More', parentId: 'a1', explicitParent: false, images: ['data:image/png;base64,AA'], model: 'gpt-test' });
    });
    expect(onSendFailed).toHaveBeenCalledWith('More', ['data:image/png;base64,AA']);
    expect(result.current.messages.map((m) => m.id)).toEqual(['u1', 'a1']);
    expect((result.current.error as Error).message).toBe('Your balance is too low');
    expect(result.current.streaming).toBe(false);
    expect(calls.find((c) => c.method === 'POST')?.body).toEqual({ content: 'More', model: 'gpt-test', images: ['data:image/png;base64,AA'], parent_id: 'a1' });
  });

  it('a stop asked for before the server names the answer is sent once it does', async () => {
    const stream = sseResponse();
    routes['GET /api/v1/chat/conversations/c1/messages'] = () => json({ conversation_id: 'c1', active_leaf_id: null, messages: [] });
    routes['POST /api/v1/chat/conversations/c1/messages'] = () => stream.response;
    routes['POST /api/v1/chat/messages/a7/stop'] = () => new Response(null, { status: 204 });
    const { result } = mount('c1');
    await waitFor(() => expect(calls).toHaveLength(1));
    act(() => void result.current.send({ content: 'Hi', parentId: null, explicitParent: false, model: 'gpt-test' }));
    await waitFor(() => expect(result.current.streaming).toBe(true));
    act(() => result.current.stop());
    expect(calls.some((c) => c.path.endsWith('/stop'))).toBe(false);
    await act(async () => stream.push('start', { user_message_id: 'u7', assistant_message_id: 'a7', conversation_id: 'c1' }));
    await waitFor(() => expect(calls.some((c) => c.path === '/api/v1/chat/messages/a7/stop')).toBe(true));
    await act(async () => stream.close());
  });

  it('continues a cut answer in place: the same message streams on and ends whole', async () => {
    const stream = sseResponse();
    const cut = { ...message('a1', 'u1', 'assistant', 'Once upon '), finish_reason: 'length' };
    routes['GET /api/v1/chat/conversations/c1/messages'] = () =>
      json({ conversation_id: 'c1', active_leaf_id: 'a1', messages: [message('u1', null, 'user', 'Tell a story'), cut] });
    routes['POST /api/v1/chat/messages/a1/continue'] = () => stream.response;
    const { result } = mount('c1');
    await waitFor(() => expect(result.current.messages).toHaveLength(2));
    act(() => void result.current.continueAnswer(result.current.messages[1]));
    await waitFor(() => expect(result.current.streaming).toBe(true));
    expect(calls.some((c) => c.path === '/api/v1/chat/messages/a1/continue')).toBe(true);
    await act(async () => stream.push('start', { user_message_id: 'u1', assistant_message_id: 'a1', conversation_id: 'c1' }));
    await act(async () => stream.push('delta', { content: 'a time' }));
    await waitFor(() => expect(result.current.messages[1]).toMatchObject({ id: 'a1', content: 'Once upon a time', status: 'streaming' }));
    expect(result.current.messages).toHaveLength(2);
    await act(async () => stream.close());
    await waitFor(() => expect(result.current.streaming).toBe(false));
  });

  it('regenerates an answer as a new version, and switching the conversation resets the page', async () => {
    const stream = sseResponse();
    routes['GET /api/v1/chat/conversations/c1/messages'] = () =>
      json({ conversation_id: 'c1', active_leaf_id: 'a1', messages: [message('u1', null, 'user', 'Hi'), message('a1', 'u1', 'assistant', 'Hello')] });
    routes['POST /api/v1/chat/messages/a1/regenerate'] = () => stream.response;
    routes['GET /api/v1/chat/conversations/c2/messages'] = () => json({ conversation_id: 'c2', active_leaf_id: null, messages: [] });
    const onSwitched = vi.fn();
    const { result, rerender } = mount('c1', { onSwitched });
    await waitFor(() => expect(result.current.messages).toHaveLength(2));
    act(() => void result.current.regenerate(result.current.messages[1]));
    await waitFor(() => expect(result.current.streaming).toBe(true));
    expect(result.current.messages[1].id).toMatch(/^tmp-a-/);
    await act(async () => stream.close());
    await waitFor(() => expect(result.current.streaming).toBe(false));
    rerender({ conv: 'c2' });
    await waitFor(() => expect(onSwitched).toHaveBeenLastCalledWith('c2'));
    await waitFor(() => expect(result.current.messages).toHaveLength(0));
    expect(result.current.activeId()).toBe('c2');
  });
});
