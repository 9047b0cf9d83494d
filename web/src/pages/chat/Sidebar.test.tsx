// The conversation list says why it is empty: nothing yet, nothing archived, or no match.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter } from 'react-router-dom';
import { Sidebar } from './Sidebar';
import { acceptTokens, clearSession } from '../../lib/auth';
import { setLang } from '../../lib/settings';

beforeEach(() => {
  acceptTokens({ access_token: 'acc', token_type: 'Bearer', expires_in: 900 });
  vi.stubGlobal('fetch', async () => new Response(JSON.stringify({ items: [], next_cursor: null }), { status: 200 }));
});

afterEach(() => {
  vi.unstubAllGlobals();
  clearSession();
  setLang('en');
});

function show() {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  render(
    <QueryClientProvider client={client}>
      <MemoryRouter>
        <Sidebar activeId={null} />
      </MemoryRouter>
    </QueryClientProvider>,
  );
}

describe('conversation list', () => {
  it('an empty search says nothing matched, not that there are no conversations', async () => {
    show();
    expect((await screen.findByTestId('conversations-empty')).textContent).toBe('No conversations yet.');
    fireEvent.change(screen.getByRole('searchbox'), { target: { value: 'zebra' } });
    await screen.findByText('No conversation matches “zebra”.');
  });

  it('in Chinese too', async () => {
    setLang('zh-CN');
    show();
    expect((await screen.findByTestId('conversations-empty')).textContent).toBe('还没有对话。');
    fireEvent.change(screen.getByRole('searchbox'), { target: { value: '斑马' } });
    await screen.findByText('没有与“斑马”匹配的对话。');
  });

  it('a search hit shows where it matched, highlighted', async () => {
    vi.stubGlobal('fetch', async (url: string) => {
      const q = new URL(url, 'http://x').searchParams.get('q');
      const items = q
        ? [{ id: 'c1', title: 'Parsers', pinned: false, archived: false, snippet: '…how to write a Zebra parser in Rust…' }]
        : [{ id: 'c1', title: 'Parsers', pinned: false, archived: false }];
      return new Response(JSON.stringify({ items, next_cursor: null }), { status: 200 });
    });
    show();
    await screen.findByText('Parsers');
    expect(screen.queryByTestId('snippet')).toBeNull();
    fireEvent.change(screen.getByRole('searchbox'), { target: { value: 'zebra' } });
    const snippet = await screen.findByTestId('snippet');
    expect(snippet.textContent).toBe('…how to write a Zebra parser in Rust…');
    const marked = [...snippet.querySelectorAll('mark')].map((m) => m.textContent);
    expect(marked).toEqual(['Zebra']);
  });
});
