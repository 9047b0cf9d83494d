// What a keystroke costs: typing in the composer must not re-render the conversation's messages
// (on a long page with code and tables that made each key take most of a second in Chromium).
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { fireEvent, render, screen } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter, Route, Routes } from 'react-router-dom';
import { ChatPage } from './ChatPage';
import { acceptTokens, clearSession } from '../../lib/auth';
import { chatMessage } from '../../test/chat';

const renders = vi.hoisted(() => ({ count: 0 }));

vi.mock('./MessageItem', async (importOriginal) => {
  const real = await importOriginal<typeof import('./MessageItem')>();
  return {
    ...real,
    MessageItem: (props: Parameters<typeof real.MessageItem>[0]) => {
      renders.count++;
      return real.MessageItem(props);
    },
  };
});

const json = (data: unknown) => new Response(JSON.stringify(data), { headers: { 'content-type': 'application/json' } });

const message = (id: string, parent: string | null, role: 'user' | 'assistant', content: string) => chatMessage(id, parent, role, content);

beforeEach(() => {
  renders.count = 0;
  acceptTokens({ access_token: 'acc', refresh_token: 'ref', token_type: 'Bearer', expires_in: 900 });
  const routes: Record<string, unknown> = {
    '/api/v1/chat/models': [{ id: 'gpt-test', context_window: 8000, input_price: 1, output_price: 1 }],
    '/api/v1/chat/conversations': { items: [], next_cursor: null },
    '/api/v1/chat/conversations/c1': { id: 'c1', title: 'T', pinned: false, archived: false, deleted_at: null, model: 'gpt-test', active_leaf_id: 'a2', created_at: '2026-11-26T00:00:00Z', updated_at: '2026-11-26T00:00:00Z' },
    '/api/v1/chat/conversations/c1/messages': {
      conversation_id: 'c1',
      active_leaf_id: 'a2',
      messages: [message('u1', null, 'user', 'One'), message('a1', 'u1', 'assistant', 'First **answer**'), message('u2', 'a1', 'user', 'Two'), message('a2', 'u2', 'assistant', 'Second answer')],
    },
  };
  vi.stubGlobal('fetch', async (url: string) => {
    const data = routes[url.split('?')[0]];
    return data === undefined ? new Response('{"error":{"code":"not_found","message":"no"}}', { status: 404 }) : json(data);
  });
});

afterEach(() => {
  vi.unstubAllGlobals();
  clearSession();
});

it('typing in the composer re-renders no message', async () => {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  render(
    <QueryClientProvider client={client}>
      <MemoryRouter initialEntries={['/chat/c1']}>
        <Routes>
          <Route path="/chat/:id" element={<ChatPage />} />
        </Routes>
      </MemoryRouter>
    </QueryClientProvider>,
  );
  await screen.findByText('Second answer');
  const composer = screen.getByRole('textbox', { name: 'Send' });
  const before = renders.count;
  expect(before).toBeGreaterThanOrEqual(4);
  let text = '';
  for (const ch of 'Hello there') {
    text += ch;
    fireEvent.change(composer, { target: { value: text } });
  }
  expect(composer).toHaveProperty('value', 'Hello there');
  // The send button follows the draft (the composer did re-render).
  expect(screen.getByRole('button', { name: 'Send' })).toHaveProperty('disabled', false);
  expect(renders.count).toBe(before);
});
