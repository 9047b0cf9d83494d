// Sharing a conversation: the dialog makes, lists, copies and revokes links through the API;
// the public page shows the shared messages read-only, and says so when a link is gone.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter, Route, Routes } from 'react-router-dom';
import { ShareDialog, type ChatShare } from './ShareDialog';
import SharedConversationPage from './SharedConversation';
import { setLang } from '../../lib/settings';

afterEach(() => {
  vi.unstubAllGlobals();
  setLang('en');
});

const wrap = (ui: React.ReactNode, path = '/') => (
  <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
    <MemoryRouter initialEntries={[path]}>{ui}</MemoryRouter>
  </QueryClientProvider>
);

describe('share dialog', () => {
  it('creates a link, shows its full address, and revokes it', async () => {
    let shares: ChatShare[] = [];
    const calls: string[] = [];
    vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
      const method = init.method ?? 'GET';
      calls.push(`${method} ${url}`);
      if (method === 'POST' && url === '/api/v1/chat/conversations/c1/shares') {
        const s = { id: 's1', token: 'tok123', path: '/share/tok123', leaf_id: 'm2', created_at: '2026-12-01T10:00:00Z' };
        shares = [s];
        return new Response(JSON.stringify(s), { status: 201 });
      }
      if (method === 'DELETE' && url === '/api/v1/chat/shares/s1') {
        shares = [];
        return new Response(null, { status: 204 });
      }
      return new Response(JSON.stringify(shares));
    });
    render(wrap(<ShareDialog open onOpenChange={() => undefined} conversationId="c1" />));
    await screen.findByText('No links yet.');
    fireEvent.click(screen.getByRole('button', { name: 'Create a link' }));
    const url = await screen.findByTestId('chat-share-url');
    expect(url.textContent).toBe(`${window.location.origin}/share/tok123`);
    expect(screen.getByRole('button', { name: 'Copy link' })).toBeTruthy();
    fireEvent.click(screen.getByRole('button', { name: 'Revoke' }));
    await screen.findByText('No links yet.');
    expect(calls).toContain('DELETE /api/v1/chat/shares/s1');
  });
});

describe('shared conversation page', () => {
  const page = (token: string) =>
    render(
      wrap(
        <Routes>
          <Route path="/share/:token" element={<SharedConversationPage />} />
        </Routes>,
        `/share/${token}`,
      ),
    );

  it('shows the title and the messages, read-only, without signing in', async () => {
    const seen: Array<string | null> = [];
    vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
      seen.push(new Headers(init.headers).get('authorization'));
      expect(url).toBe('/api/v1/chat/shared/abc');
      return new Response(
        JSON.stringify({
          title: 'Trip plans',
          shared_at: '2026-12-01T10:00:00Z',
          messages: [
            { id: 'u', role: 'user', content: 'where to in May', reasoning: null, model: null, image_urls: [], created_at: '2026-12-01T10:00:00Z' },
            { id: 'a', role: 'assistant', content: '**Hangzhou**', reasoning: null, model: 'gpt-test', image_urls: [], created_at: '2026-12-01T10:00:01Z' },
          ],
        }),
      );
    });
    page('abc');
    expect((await screen.findByTestId('shared-title')).textContent).toBe('Trip plans');
    expect(screen.getAllByTestId('shared-message').map((m) => m.dataset.role)).toEqual(['user', 'assistant']);
    // Markdown is loaded on demand: give it time on a busy machine.
    expect(await screen.findByText('Hangzhou', {}, { timeout: 10_000 })).toBeTruthy();
    expect(screen.getByText('Read-only')).toBeTruthy();
    expect(screen.queryByRole('textbox')).toBeNull();
    expect(seen.every((h) => h === null)).toBe(true);
    await waitFor(() => expect(document.title).toBe('Trip plans · Skein'));
  });

  it('says a revoked link no longer works, in Chinese too', async () => {
    setLang('zh-CN');
    vi.stubGlobal('fetch', async () => new Response(JSON.stringify({ error: { code: 'not_found', message: 'Shared conversation not found.' } }), { status: 404 }));
    page('gone');
    expect((await screen.findByTestId('shared-missing')).textContent).toContain('此链接已失效。');
  });
});
