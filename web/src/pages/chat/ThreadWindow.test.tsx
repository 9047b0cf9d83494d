// Windowed rendering of long branches. jsdom has no layout, so the sizes the virtualizer reads
// are faked: the scroller is 600 px tall, every measured row 100 px, and scrollHeight follows
// the list's total height.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { act, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter, Route, Routes } from 'react-router-dom';
import { ChatPage } from './ChatPage';
import { WINDOW_FROM } from './MessageList';
import { acceptTokens, clearSession } from '../../lib/auth';
import type { ChatMessage } from '../../lib/types';

function message(i: number): ChatMessage {
  const role = i % 2 === 0 ? 'user' : 'assistant';
  return {
    id: `m${i}`,
    parent_id: i === 0 ? null : `m${i - 1}`,
    role,
    content: `Message ${i}`,
    reasoning: null,
    status: 'done',
    model: role === 'assistant' ? 'gpt-test' : null,
    error: null,
    images: [],
    sibling_ids: [`m${i}`],
    sibling_index: 0,
    sibling_count: 1,
    usage: null,
    created_at: '2026-11-26T00:00:00Z',
  };
}

const conversation = {
  id: 'long',
  title: 'Long chat',
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
};

const json = (data: unknown) => new Response(JSON.stringify(data), { status: 200, headers: { 'content-type': 'application/json' } });

const scrollTops = new WeakMap<Element, number>();
const faked = ['clientHeight', 'offsetHeight', 'scrollHeight', 'scrollTop'] as const;
const saved = faked.map((name) => [name, Object.getOwnPropertyDescriptor(HTMLElement.prototype, name)] as const);

function setup(count: number) {
  const messages = Array.from({ length: count }, (_, i) => message(i));
  const routes: Record<string, () => Response> = {
    'GET /api/v1/chat/models': () => json([{ id: 'gpt-test', context_window: 8000, input_price: null, output_price: null }]),
    'GET /api/v1/chat/conversations': () => json({ items: [], next_cursor: null }),
    'GET /api/v1/chat/conversations/long': () => json(conversation),
    'GET /api/v1/chat/conversations/long/messages': () => json({ conversation_id: 'long', active_leaf_id: `m${count - 1}`, messages }),
  };
  vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
    const route = routes[`${init.method ?? 'GET'} ${url.split('?')[0]}`];
    return route ? route() : new Response('{}', { status: 404 });
  });
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <QueryClientProvider client={client}>
      <MemoryRouter initialEntries={['/chat/long']}>
        <Routes>
          <Route path="/chat/:id" element={<ChatPage />} />
        </Routes>
      </MemoryRouter>
    </QueryClientProvider>,
  );
}

const mounted = () => document.querySelectorAll('[data-testid="user-message"], [data-testid="assistant-message"]').length;

beforeEach(() => {
  acceptTokens({ access_token: 'acc', refresh_token: 'ref', token_type: 'Bearer', expires_in: 900 });
  Object.defineProperties(HTMLElement.prototype, {
    clientHeight: { configurable: true, get: () => 600 },
    offsetHeight: {
      configurable: true,
      get(this: HTMLElement) {
        return this.dataset.index !== undefined ? 100 : 0;
      },
    },
    scrollHeight: {
      configurable: true,
      get(this: HTMLElement) {
        const list = this.querySelector<HTMLElement>('[data-testid="message-list"]');
        return list ? parseFloat(list.style.height) : 0;
      },
    },
    scrollTop: {
      configurable: true,
      get(this: HTMLElement) {
        return scrollTops.get(this) ?? 0;
      },
      set(this: HTMLElement, value: number) {
        scrollTops.set(this, value);
      },
    },
  });
});

afterEach(() => {
  for (const [name, descriptor] of saved) {
    if (descriptor) Object.defineProperty(HTMLElement.prototype, name, descriptor);
    else delete (HTMLElement.prototype as unknown as Record<string, unknown>)[name];
  }
  vi.unstubAllGlobals();
  clearSession();
});

describe('long threads', () => {
  it('a branch of 2,000 messages mounts only the rows near the viewport, opening at the bottom', async () => {
    setup(2000);
    const list = await screen.findByTestId('message-list');
    await waitFor(() => expect(mounted()).toBeGreaterThan(0));
    expect(mounted()).toBeLessThan(100);
    expect(screen.queryByText('Message 1000')).toBeNull();

    // Opening the conversation set scrollTop to the bottom; the browser then fires `scroll`.
    const scroller = list.parentElement!.parentElement!;
    expect(scroller.scrollTop).toBeGreaterThan(0);
    await act(async () => {
      fireEvent.scroll(scroller);
    });
    await waitFor(() => expect(screen.getByText('Message 1999')).toBeTruthy());
    expect(screen.queryByText('Message 0')).toBeNull();
    expect(mounted()).toBeLessThan(100);

    // Scrolling back to the top brings the first rows back and drops the last ones.
    await act(async () => {
      scroller.scrollTop = 0;
      fireEvent.scroll(scroller);
    });
    await waitFor(() => expect(screen.getByText('Message 0')).toBeTruthy());
    expect(screen.queryByText('Message 1999')).toBeNull();
    expect(mounted()).toBeLessThan(100);
  });

  it(`a short branch (up to ${WINDOW_FROM} messages) renders every message`, async () => {
    setup(WINDOW_FROM);
    await screen.findByText(`Message ${WINDOW_FROM - 1}`);
    expect(mounted()).toBe(WINDOW_FROM);
    expect(screen.queryByTestId('message-list')).toBeNull();
  });
});
