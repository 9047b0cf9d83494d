// Admin → Pricing → model aliases and fallbacks: the routes are listed, and the form sends an
// alias and an ordered fallback list as the API takes them; in Chinese too.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { ModelRoutes } from './ModelRoutes';
import { setLang } from '../../lib/settings';

afterEach(() => {
  vi.unstubAllGlobals();
  setLang('en');
});

type Call = { method: string; path: string; body: unknown };

function stubFetch() {
  const calls: Call[] = [];
  vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
    const method = init.method ?? 'GET';
    const path = url.split('?')[0];
    calls.push({ method, path, body: init.body ? JSON.parse(String(init.body)) : undefined });
    if (method === 'GET' && path === '/api/v1/admin/model-routes') {
      return new Response(
        JSON.stringify([
          {
            model: 'gpt-4o',
            alias_of: 'gpt-4o-2024-08-06',
            fallbacks: ['qwen-plus', 'deepseek-chat'],
            group_fallbacks: { free: [], vip: ['claude-sonnet'] },
            strategy: 'latency',
            updated_at: '2026-12-01T00:00:00Z',
          },
        ]),
        { status: 200 },
      );
    }
    if (method === 'PUT') return new Response(JSON.stringify({ model: 'm', alias_of: null, fallbacks: [], updated_at: '' }), { status: 200 });
    return new Response('{}', { status: 404 });
  });
  return calls;
}

function show() {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  render(
    <QueryClientProvider client={client}>
      <ModelRoutes />
    </QueryClientProvider>,
  );
}

describe('admin model routes', () => {
  it('lists aliases and fallbacks and saves a new route', async () => {
    const calls = stubFetch();
    show();
    const card = await screen.findByTestId('model-routes');
    await within(card).findAllByText('gpt-4o-2024-08-06');
    expect(within(card).getAllByText('qwen-plus → deepseek-chat').length).toBeGreaterThan(0);
    fireEvent.click(screen.getByRole('button', { name: '+ Set alias or fallbacks' }));
    const dialog = await screen.findByRole('dialog');
    fireEvent.change(dialog.querySelector('input[name="route-model"]')!, { target: { value: 'claude-fast' } });
    fireEvent.change(dialog.querySelector('input[name="route-fallbacks"]')!, { target: { value: 'qwen-plus, deepseek-chat' } });
    fireEvent.click(within(dialog).getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(calls.some((c) => c.method === 'PUT')).toBe(true));
    const put = calls.find((c) => c.method === 'PUT')!;
    expect(put.path).toBe('/api/v1/admin/model-routes/claude-fast');
    expect(put.body).toEqual({ alias_of: null, fallbacks: ['qwen-plus', 'deepseek-chat'], group_fallbacks: {}, strategy: null });
  });

  it('shows and keeps each group’s own fallbacks when a route is edited', async () => {
    const calls = stubFetch();
    show();
    const card = await screen.findByTestId('model-routes');
    expect((await within(card).findAllByText('free: — · vip: claude-sonnet')).length).toBeGreaterThan(0);
    fireEvent.click(within(card).getAllByRole('button', { name: 'Edit' })[0]);
    const dialog = await screen.findByRole('dialog');
    const groups = dialog.querySelector('input[name="route-groups"]') as HTMLInputElement;
    expect(groups.value).toBe('free:; vip: claude-sonnet');
    fireEvent.change(groups, { target: { value: 'vip: claude-sonnet, qwen-max; free:' } });
    fireEvent.click(within(dialog).getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(calls.some((c) => c.method === 'PUT')).toBe(true));
    const put = calls.find((c) => c.method === 'PUT')!;
    expect(put.body).toEqual({
      alias_of: 'gpt-4o-2024-08-06',
      fallbacks: ['qwen-plus', 'deepseek-chat'],
      group_fallbacks: { vip: ['claude-sonnet', 'qwen-max'], free: [] },
      strategy: 'latency',
    });
  });

  it('shows a model’s own strategy and sets one', async () => {
    const calls = stubFetch();
    show();
    const card = await screen.findByTestId('model-routes');
    expect((await within(card).findAllByText('Lowest latency')).length).toBeGreaterThan(0);
    fireEvent.click(screen.getByRole('button', { name: '+ Set alias or fallbacks' }));
    const dialog = await screen.findByRole('dialog');
    fireEvent.change(dialog.querySelector('input[name="route-model"]')!, { target: { value: 'qwen-plus' } });
    fireEvent.change(dialog.querySelector('select[name="route-strategy"]')!, { target: { value: 'cost' } });
    fireEvent.click(within(dialog).getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(calls.some((c) => c.method === 'PUT')).toBe(true));
    const put = calls.find((c) => c.method === 'PUT')!;
    expect(put.path).toBe('/api/v1/admin/model-routes/qwen-plus');
    expect(put.body).toEqual({ alias_of: null, fallbacks: [], group_fallbacks: {}, strategy: 'cost' });
  });

  it('in Chinese too', async () => {
    setLang('zh-CN');
    stubFetch();
    show();
    await screen.findByText('模型别名与备用模型');
    expect(screen.getByRole('button', { name: '+ 设置别名或备用模型' })).toBeTruthy();
  });
});
