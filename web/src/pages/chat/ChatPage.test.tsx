// The chat UI against a fake server that speaks docs/CHAT-API.md: what the page sends (paths,
// bodies, explicit parent ids) and what it shows as the SSE events arrive. The e2e run covers
// the same flows against the real Chat service.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { act, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter, Route, Routes } from 'react-router-dom';
import { ChatPage } from './ChatPage';
import { acceptTokens, clearSession } from '../../lib/auth';
import { setLang } from '../../lib/settings';
import type { ChatMessage } from '../../lib/types';
import { chatMessage } from '../../test/chat';

interface Call {
  method: string;
  path: string;
  query: string;
  body: unknown;
}

const cursorOf = (c: Call) => new URLSearchParams(c.query).get('cursor');

const message = (id: string, parent: string | null, role: 'user' | 'assistant', content: string, siblings = [id], status: ChatMessage['status'] = 'done') =>
  chatMessage(id, parent, role, content, { siblings, status });

const conversation = (id: string) => ({
  id,
  title: 'Test chat',
  pinned: false,
  archived: false,
  deleted_at: null,
  model: 'gpt-test',
  system_prompt: null,
  temperature: null,
  top_p: null,
  max_tokens: null,
  history_limit: null,
  active_leaf_id: null,
  created_at: '2026-11-26T00:00:00Z',
  updated_at: '2026-11-26T00:00:00Z',
});

/** An SSE response whose frames the test pushes one at a time. */
function sseResponse() {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) });
  const enc = new TextEncoder();
  return {
    response: new Response(body, { headers: { 'content-type': 'text/event-stream' } }),
    push(event: string, data: unknown) {
      // Cut each frame in two to exercise the parser on the way.
      const frame = enc.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      controller.enqueue(frame.slice(0, 9));
      controller.enqueue(frame.slice(9));
    },
    close: () => controller.close(),
  };
}

let calls: Call[];
let routes: Record<string, (body: unknown) => Response | Promise<Response>>;

function json(data: unknown, status = 200) {
  return new Response(JSON.stringify(data), { status, headers: { 'content-type': 'application/json' } });
}

beforeEach(() => {
  calls = [];
  acceptTokens({ access_token: 'acc', refresh_token: 'ref', token_type: 'Bearer', expires_in: 900 });
  routes = {
    'GET /api/v1/chat/models': () => json([{ id: 'gpt-test', context_window: 8000, input_price: 500000, output_price: 1000000 }]),
    'GET /api/v1/chat/conversations': () => json({ items: [], next_cursor: null }),
  };
  vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
    const [path, query = ''] = url.split('?');
    const method = init.method ?? 'GET';
    const body = init.body ? JSON.parse(String(init.body)) : undefined;
    calls.push({ method, path, query, body });
    const route = routes[`${method} ${path}`];
    if (!route) return json({ error: { code: 'not_found', message: `no route ${method} ${path}` }, request_id: 'r' }, 404);
    return route(body);
  });
});

afterEach(() => {
  vi.unstubAllGlobals();
  clearSession();
  setLang('en');
});

function renderAt(path: string) {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <QueryClientProvider client={client}>
      <MemoryRouter initialEntries={[path]}>
        <Routes>
          <Route path="/chat" element={<ChatPage />} />
          <Route path="/chat/:id" element={<ChatPage />} />
        </Routes>
      </MemoryRouter>
    </QueryClientProvider>,
  );
}

const composer = () => screen.getByRole('textbox', { name: 'Send' });

describe('chat page', () => {
  it('a new chat creates the conversation, streams the answer and shows its cost', async () => {
    const stream = sseResponse();
    routes['POST /api/v1/chat/conversations'] = () => json(conversation('c1'), 201);
    routes['GET /api/v1/chat/conversations/c1'] = () => json(conversation('c1'));
    routes['POST /api/v1/chat/conversations/c1/messages'] = () => stream.response;
    routes['GET /api/v1/chat/conversations/c1/messages'] = () =>
      json({ conversation_id: 'c1', active_leaf_id: 'a1', messages: [message('u1', null, 'user', 'Hi there'), message('a1', 'u1', 'assistant', 'Hello world')] });
    renderAt('/chat');
    await screen.findByText(/\$1\.00 in \/ \$2\.00 out/);
    fireEvent.change(composer(), { target: { value: 'Hi there' } });
    fireEvent.keyDown(composer(), { key: 'Enter' });
    await waitFor(() => expect(calls.some((c) => c.path === '/api/v1/chat/conversations/c1/messages')).toBe(true));
    const send = calls.find((c) => c.path === '/api/v1/chat/conversations/c1/messages')!;
    expect(send.body).toEqual({ content: 'Hi there', model: 'gpt-test' });
    expect(calls.find((c) => c.method === 'POST' && c.path === '/api/v1/chat/conversations')!.body).toEqual({ model: 'gpt-test' });

    await act(async () => {
      stream.push('start', { user_message_id: 'u1', assistant_message_id: 'a1', conversation_id: 'c1' });
      stream.push('delta', { content: 'Hello' });
    });
    await screen.findByText('Hello');
    expect(screen.getByTestId('stop')).toBeTruthy();
    await act(async () => {
      stream.push('delta', { content: ' world' });
      stream.push('usage', { prompt_tokens: 2, completion_tokens: 2, cost: 4 });
      const done = { ...message('a1', 'u1', 'assistant', 'Hello world'), usage: { prompt_tokens: 2, completion_tokens: 2, cost: 4 } };
      stream.push('done', { message: done });
      stream.close();
    });
    await screen.findByText('Hello world');
    await waitFor(() => expect(screen.queryByTestId('stop')).toBeNull());
    expect(composer()).toHaveProperty('value', '');
  });

  it('stop asks the server to stop the real answer id', async () => {
    const stream = sseResponse();
    routes['GET /api/v1/chat/conversations/c2'] = () => json(conversation('c2'));
    routes['GET /api/v1/chat/conversations/c2/messages'] = () => json({ conversation_id: 'c2', active_leaf_id: null, messages: [] });
    routes['POST /api/v1/chat/conversations/c2/messages'] = () => stream.response;
    routes['POST /api/v1/chat/messages/a9/stop'] = () => {
      stream.push('done', { message: message('a9', 'u9', 'assistant', 'Part', ['a9'], 'stopped') });
      stream.close();
      return json({ message_id: 'a9', stopping: true }, 202);
    };
    renderAt('/chat/c2');
    await screen.findByText('Start a conversation');
    fireEvent.change(composer(), { target: { value: 'Long one' } });
    fireEvent.keyDown(composer(), { key: 'Enter' });
    await waitFor(() => expect(screen.getByTestId('stop')).toBeTruthy());
    await act(async () => {
      stream.push('start', { user_message_id: 'u9', assistant_message_id: 'a9', conversation_id: 'c2' });
      stream.push('delta', { content: 'Part' });
    });
    await screen.findByText('Part');
    fireEvent.click(screen.getByTestId('stop'));
    await screen.findByText('Stopped');
    expect(calls.some((c) => c.method === 'POST' && c.path === '/api/v1/chat/messages/a9/stop')).toBe(true);
  });

  it('editing the first message sends under the root (parent_id null) and switching versions asks the server', async () => {
    const stream = sseResponse();
    routes['GET /api/v1/chat/conversations/c3'] = () => json(conversation('c3'));
    let history = [message('u1', null, 'user', 'First'), message('a1', 'u1', 'assistant', 'Answer one')];
    routes['GET /api/v1/chat/conversations/c3/messages'] = () => json({ conversation_id: 'c3', active_leaf_id: 'a1', messages: history });
    routes['POST /api/v1/chat/conversations/c3/messages'] = () => stream.response;
    routes['POST /api/v1/chat/conversations/c3/switch'] = () =>
      json({
        conversation_id: 'c3',
        active_leaf_id: 'a1',
        messages: [message('u1', null, 'user', 'First', ['u1', 'u2']), message('a1', 'u1', 'assistant', 'Answer one')],
      });
    renderAt('/chat/c3');
    const user = await screen.findByTestId('user-message');
    fireEvent.click(within(user).getByRole('button', { name: 'Edit' }));
    fireEvent.change(within(user).getByRole('textbox', { name: 'Edit' }), { target: { value: 'First, edited' } });
    fireEvent.click(within(user).getByRole('button', { name: 'Save and send' }));
    await waitFor(() => expect(calls.some((c) => c.method === 'POST' && c.path.endsWith('/c3/messages'))).toBe(true));
    expect(calls.find((c) => c.method === 'POST' && c.path.endsWith('/c3/messages'))!.body).toEqual({ content: 'First, edited', model: 'gpt-test', parent_id: null });
    // The edited message is shown as the second version at once.
    expect(await screen.findByText('2 / 2')).toBeTruthy();
    expect(screen.queryByText('Answer one')).toBeNull();
    await act(async () => {
      stream.push('start', { user_message_id: 'u2', assistant_message_id: 'a2', conversation_id: 'c3' });
      // The server saved the new branch: its history is what the page reloads after the stream.
      history = [message('u2', null, 'user', 'First, edited', ['u1', 'u2']), message('a2', 'u2', 'assistant', 'Answer two')];
      stream.push('done', { message: message('a2', 'u2', 'assistant', 'Answer two') });
      stream.close();
    });
    await screen.findByText('Answer two');
    fireEvent.click(screen.getByRole('button', { name: 'Previous version' }));
    await screen.findByText('Answer one');
    expect(calls.find((c) => c.path.endsWith('/c3/switch'))!.body).toEqual({ message_id: 'u1' });
    expect(screen.getByText('1 / 2')).toBeTruthy();
  });

  it('regenerate streams a sibling answer from /messages/{id}/regenerate', async () => {
    const stream = sseResponse();
    routes['GET /api/v1/chat/conversations/c5'] = () => json(conversation('c5'));
    routes['GET /api/v1/chat/conversations/c5/messages'] = () =>
      json({ conversation_id: 'c5', active_leaf_id: 'a1', messages: [message('u1', null, 'user', 'Q'), message('a1', 'u1', 'assistant', 'Old answer')] });
    routes['POST /api/v1/chat/messages/a1/regenerate'] = () => stream.response;
    renderAt('/chat/c5');
    await screen.findByText('Old answer');
    fireEvent.click(screen.getByRole('button', { name: 'Regenerate' }));
    await screen.findByText('2 / 2');
    expect(screen.queryByText('Old answer')).toBeNull();
    await act(async () => {
      stream.push('start', { user_message_id: 'u1', assistant_message_id: 'a2', conversation_id: 'c5' });
      stream.push('delta', { content: 'New answer' });
    });
    await screen.findByText('New answer');
  });

  it('re-attaches to an answer still streaming after a reload', async () => {
    const stream = sseResponse();
    routes['GET /api/v1/chat/conversations/c4'] = () => json(conversation('c4'));
    let history = [message('u1', null, 'user', 'Q'), message('a1', 'u1', 'assistant', 'Partial so', ['a1'], 'streaming')];
    routes['GET /api/v1/chat/conversations/c4/messages'] = () => json({ conversation_id: 'c4', active_leaf_id: 'a1', messages: history });
    routes['GET /api/v1/chat/messages/a1/stream'] = () => stream.response;
    renderAt('/chat/c4');
    await waitFor(() => expect(calls.some((c) => c.path === '/api/v1/chat/messages/a1/stream')).toBe(true));
    await act(async () => {
      stream.push('delta', { content: 'Partial so far' });
      stream.push('delta', { content: ', and the rest' });
    });
    await screen.findByText('Partial so far, and the rest');
    await act(async () => {
      history = [message('u1', null, 'user', 'Q'), message('a1', 'u1', 'assistant', 'Partial so far, and the rest.')];
      stream.push('done', { message: message('a1', 'u1', 'assistant', 'Partial so far, and the rest.') });
      stream.close();
    });
    await screen.findByText('Partial so far, and the rest.');
  });

  it('a send the server refuses before answering restores the path and the draft, and shows why', async () => {
    routes['GET /api/v1/chat/conversations/c6'] = () => json(conversation('c6'));
    routes['GET /api/v1/chat/conversations/c6/messages'] = () =>
      json({ conversation_id: 'c6', active_leaf_id: 'a1', messages: [message('u1', null, 'user', 'Q'), message('a1', 'u1', 'assistant', 'A')] });
    routes['POST /api/v1/chat/conversations/c6/messages'] = () =>
      json({ error: { code: 'generation_in_progress', message: 'An answer is still being written.' }, request_id: 'req-409' }, 409);
    renderAt('/chat/c6');
    await screen.findByText('A');
    fireEvent.change(composer(), { target: { value: 'Next question' } });
    fireEvent.keyDown(composer(), { key: 'Enter' });
    await screen.findByText('An answer is still being written.');
    expect(screen.queryByText('Request id: req-409')).toBeNull();
    expect(composer()).toHaveProperty('value', 'Next question');
    expect(screen.getAllByTestId('user-message')).toHaveLength(1);
    expect(calls.find((c) => c.method === 'POST')!.body).toEqual({ content: 'Next question', model: 'gpt-test', parent_id: 'a1' });
  });

  it('an answer that breaks off keeps its text and shows the error in the UI language', async () => {
    const stream = sseResponse();
    routes['GET /api/v1/chat/conversations/c7'] = () => json(conversation('c7'));
    routes['GET /api/v1/chat/conversations/c7/messages'] = () => json({ conversation_id: 'c7', active_leaf_id: null, messages: [] });
    routes['POST /api/v1/chat/conversations/c7/messages'] = () => stream.response;
    setLang('zh-CN');
    renderAt('/chat/c7');
    await screen.findByText('开始对话');
    fireEvent.change(screen.getByRole('textbox', { name: '发送' }), { target: { value: '你好' } });
    fireEvent.keyDown(screen.getByRole('textbox', { name: '发送' }), { key: 'Enter' });
    await waitFor(() => expect(calls.some((c) => c.method === 'POST')).toBe(true));
    await act(async () => {
      stream.push('start', { user_message_id: 'u1', assistant_message_id: 'a1', conversation_id: 'c7' });
      stream.push('delta', { content: '半句' });
      stream.push('error', { code: 'upstream_error', message: 'The upstream broke off.', message_zh: '上游中断了。', request_id: 'req-7' });
    });
    await screen.findByText('上游中断了。 (req-7)');
    expect(screen.getByText('半句')).toBeTruthy();
    expect(screen.getByText('失败')).toBeTruthy();
    await act(async () => stream.close());
  });

  it('the conversation list pages with the server cursor', async () => {
    const page = (ids: string[], next: string | null) => json({ items: ids.map((id) => ({ ...conversation(id), title: `Chat ${id}` })), next_cursor: next });
    routes['GET /api/v1/chat/conversations'] = () => {
      const last = calls[calls.length - 1];
      return last.path && cursorOf(last) === '50' ? page(['c51'], null) : page(['c1', 'c2'], '50');
    };
    renderAt('/chat');
    await screen.findByText('Chat c2');
    fireEvent.click(screen.getAllByRole('button', { name: 'Show more' })[0]);
    await screen.findAllByText('Chat c51');
    await waitFor(() => expect(screen.queryAllByRole('button', { name: 'Show more' })).toHaveLength(0));
  });

  it('says so when the server has no Chat service', async () => {
    delete routes['GET /api/v1/chat/models'];
    renderAt('/chat');
    await screen.findByText('Chat is not available on this server yet.');
  });

  it('a conversation that is gone offers no settings or export, and its composer is disabled', async () => {
    const gone = () => json({ error: { code: 'not_found', message: 'Conversation not found.' }, request_id: 'r' }, 404);
    routes['GET /api/v1/chat/conversations/gone'] = gone;
    routes['GET /api/v1/chat/conversations/gone/messages'] = gone;
    renderAt('/chat/gone');
    await screen.findByText(/Conversation not found/);
    await waitFor(() => expect((composer() as HTMLTextAreaElement).disabled).toBe(true));
    expect(screen.queryByRole('button', { name: 'Conversation settings' })).toBeNull();
    expect(screen.queryByRole('button', { name: 'Export' })).toBeNull();
    expect(screen.getByRole('button', { name: 'Send' })).toHaveProperty('disabled', true);
  });

  it('a send refused for a low balance links to where to top up', async () => {
    routes['GET /api/v1/chat/conversations/c7'] = () => json(conversation('c7'));
    routes['GET /api/v1/chat/conversations/c7/messages'] = () => json({ conversation_id: 'c7', active_leaf_id: null, messages: [] });
    routes['POST /api/v1/chat/conversations/c7/messages'] = () =>
      json({ error: { code: 'insufficient_quota', message: 'Only 3 units are left on your balance.' }, request_id: 'req-402' }, 402);
    renderAt('/chat/c7');
    await screen.findByText(/\$1\.00 in/);
    fireEvent.change(composer(), { target: { value: 'Hello' } });
    fireEvent.keyDown(composer(), { key: 'Enter' });
    await screen.findByText('Only 3 units are left on your balance.');
    expect(screen.getByTestId('balance-hint').getAttribute('href')).toBe('/usage');
  });
});
