// Admin → Pricing → response cache: each group's settings are listed and saved as the API
// takes them, out-of-range values are refused before anything is sent, and it reads in Chinese.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter } from 'react-router-dom';
import { CachePanel, cacheBody } from './CachePanel';
import { setLang } from '../../lib/settings';

afterEach(() => {
  vi.unstubAllGlobals();
  setLang('en');
});

type Call = { method: string; path: string; body: unknown };

const view = {
  entries: 3,
  groups: [
    { group: 'default', enabled: false, ttl_secs: 3600, share_across_users: false, price_percent: 0, updated_at: null },
    { group: 'vip', enabled: true, ttl_secs: 600, share_across_users: true, price_percent: 50, updated_at: '2026-12-01T00:00:00Z' },
  ],
};

function stubFetch() {
  const calls: Call[] = [];
  vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
    const method = init.method ?? 'GET';
    const path = url.split('?')[0];
    const body = init.body ? JSON.parse(String(init.body)) : undefined;
    calls.push({ method, path, body });
    if (method === 'PUT') return new Response(JSON.stringify({ group: 'default', ...body, updated_at: '' }), { status: 200 });
    if (path === '/api/v1/admin/cache') return new Response(JSON.stringify(view), { status: 200 });
    return new Response('[]', { status: 200 });
  });
  return calls;
}

function show() {
  render(
    <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
      <MemoryRouter>
        <CachePanel />
      </MemoryRouter>
    </QueryClientProvider>,
  );
}

describe('response cache settings', () => {
  it('shows each group and the answers kept, and saves a group’s settings', async () => {
    const calls = stubFetch();
    show();
    const panel = await screen.findByTestId('cache-panel');
    expect((await within(panel).findByTestId('cache-entries')).textContent).toBe('Answers kept on this instance: 3');
    // The table and the phone layout both render each row; the first is the table's.
    const vipShare = within(panel).getAllByLabelText('Share across users vip')[0] as HTMLInputElement;
    expect(vipShare.checked).toBe(true);
    fireEvent.click(within(panel).getAllByLabelText('Cache default')[0]);
    fireEvent.change(within(panel).getAllByLabelText('TTL (s) default')[0], { target: { value: '120' } });
    fireEvent.change(within(panel).getAllByLabelText('Hit price % default')[0], { target: { value: '25' } });
    fireEvent.click(within(panel).getAllByRole('button', { name: 'Save' })[0]);
    await waitFor(() => expect(calls.some((c) => c.method === 'PUT')).toBe(true));
    const put = calls.find((c) => c.method === 'PUT')!;
    expect(put.path).toBe('/api/v1/admin/cache/default');
    expect(put.body).toEqual({ enabled: true, ttl_secs: 120, share_across_users: false, price_percent: 25 });
  });

  it('refuses an out-of-range TTL or price before sending', async () => {
    const calls = stubFetch();
    show();
    const panel = await screen.findByTestId('cache-panel');
    fireEvent.change((await within(panel).findAllByLabelText('TTL (s) default'))[0], { target: { value: '0' } });
    fireEvent.click(within(panel).getAllByRole('button', { name: 'Save' })[0]);
    expect((await within(panel).findAllByRole('alert'))[0].textContent).toContain('1 to 86,400');
    expect(calls.some((c) => c.method === 'PUT')).toBe(false);
    expect(cacheBody(true, '60', false, '101')).toEqual({ invalid: 'price' });
    expect(cacheBody(true, '1.5', false, '0')).toEqual({ invalid: 'ttl' });
    expect(cacheBody(false, '86400', true, '100')).toEqual({ body: { enabled: false, ttl_secs: 86400, share_across_users: true, price_percent: 100 } });
  });

  it('reads in Chinese', async () => {
    setLang('zh-CN');
    stubFetch();
    show();
    await screen.findByText('各分组的响应缓存');
    expect((await screen.findAllByLabelText('用户间共享 vip')).length).toBeGreaterThan(0);
  });
});
