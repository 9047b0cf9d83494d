import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter, Route, Routes } from 'react-router-dom';
import SharePage from './SharePage';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

function show(token: string) {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <QueryClientProvider client={client}>
      <MemoryRouter initialEntries={[`/s/${token}`]}>
        <Routes>
          <Route path="/s/:token" element={<SharePage />} />
        </Routes>
      </MemoryRouter>
    </QueryClientProvider>,
  );
}

describe('share page', () => {
  it('offers the download at once when no password is asked', async () => {
    vi.stubGlobal('fetch', async () =>
      new Response(JSON.stringify({ name: '报告.pdf', size: 2048, content_type: 'application/pdf', expires_at: null, password_required: false, downloads_left: 3, content_url: '/api/v1/shares/tok/content' }), { status: 200 }),
    );
    show('tok');
    expect((await screen.findByTestId('share-name')).textContent).toBe('报告.pdf');
    expect(screen.getByTestId('share-download').getAttribute('href')).toBe('/api/v1/shares/tok/content');
    expect(screen.getByText(/3 downloads left/)).toBeTruthy();
  });

  it('asks the password, sends it without a session, and shows a wrong one as an error', async () => {
    const sent: Array<{ url: string; body: unknown; auth: string | null }> = [];
    vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
      if (init.method === 'POST') {
        sent.push({ url, body: JSON.parse(String(init.body)), auth: new Headers(init.headers).get('authorization') });
        return new Response(JSON.stringify({ error: { code: 'wrong_share_password', message: 'The password is not right.' } }), { status: 403 });
      }
      return new Response(JSON.stringify({ name: 'a.txt', size: 5, content_type: 'text/plain', expires_at: null, password_required: true, downloads_left: null, content_url: null }), { status: 200 });
    });
    show('tok2');
    const field = await screen.findByLabelText('Password');
    expect(screen.queryByTestId('share-download')).toBeNull();
    fireEvent.change(field, { target: { value: 'guess' } });
    fireEvent.click(screen.getByRole('button', { name: 'Unlock and download' }));
    await screen.findByText('The password is not right.');
    await waitFor(() => expect(sent).toHaveLength(1));
    expect(sent[0].url).toBe('/api/v1/shares/tok2/access');
    expect(sent[0].body).toEqual({ password: 'guess' });
    expect(sent[0].auth).toBeNull();
  });
});
