// Admin → Pricing: the default prices load with one button, and models that channels serve
// without a price are listed to pick (with their default rates filled in), not typed blind.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { Pricing } from './Pricing';
import { Toaster } from '../../components/ui/toast';
import { setLang } from '../../lib/settings';

afterEach(() => {
  vi.unstubAllGlobals();
  setLang('en');
});

type Call = { method: string; path: string; body: unknown };

function stubFetch() {
  const calls: Call[] = [];
  let loaded = false;
  vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
    const method = init.method ?? 'GET';
    const path = url.split('?')[0];
    calls.push({ method, path, body: init.body ? JSON.parse(String(init.body)) : undefined });
    const routes: Record<string, unknown> = {
      'GET /api/v1/pricing': loaded
        ? [{ model: 'gpt-4o', input_per_mtok: 1250000, output_per_mtok: 5000000, cache_read_per_mtok: 0, cache_write_per_mtok: 0, per_call: 0, updated_at: '2026-12-01T00:00:00Z' }]
        : [],
      'GET /api/v1/admin/pricing/unpriced': loaded
        ? [{ model: 'house-model', channels: ['local'], has_default: false }]
        : [
            { model: 'gpt-4o', channels: ['openai'], has_default: true },
            { model: 'house-model', channels: ['local'], has_default: false },
          ],
      'GET /api/v1/admin/pricing/defaults': [
        { model: 'gpt-4o', input_per_mtok: 1250000, output_per_mtok: 5000000, cache_read_per_mtok: 625000, cache_write_per_mtok: 0, per_call: 0, as_of: '2025-10-01', source: 'https://openai.com/api/pricing' },
      ],
      'POST /api/v1/admin/pricing/defaults': { added: ['gpt-4o'], kept: [] },
      'PUT /api/v1/admin/pricing/house-model': { model: 'house-model' },
      'GET /api/v1/admin/model-routes': [],
    };
    if (method === 'POST' && path === '/api/v1/admin/pricing/defaults') loaded = true;
    const answer = routes[`${method} ${path}`];
    if (answer === undefined) return new Response('{}', { status: 404 });
    return new Response(JSON.stringify(answer), { status: 200 });
  });
  return calls;
}

function show() {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  render(
    <QueryClientProvider client={client}>
      <Pricing />
      <Toaster />
    </QueryClientProvider>,
  );
}

describe('admin pricing', () => {
  it('loads the default prices with one button and says what it did', async () => {
    const calls = stubFetch();
    show();
    const list = await screen.findByTestId('unpriced');
    expect(within(list).getByText('Served but not priced (2)')).toBeTruthy();
    fireEvent.click(screen.getByRole('button', { name: 'Load default prices' }));
    await screen.findByText('Default prices loaded: 1 added, 0 already priced and kept.');
    expect(calls.some((c) => c.method === 'POST' && c.path === '/api/v1/admin/pricing/defaults')).toBe(true);
    // The list refreshes: what the defaults priced leaves it.
    await waitFor(() => expect(within(screen.getByTestId('unpriced')).queryByText('gpt-4o')).toBeNull());
    expect(within(screen.getByTestId('unpriced')).getByText('house-model')).toBeTruthy();
  });

  it('offers served models that have no price, with their default rates filled in', async () => {
    const calls = stubFetch();
    show();
    const list = await screen.findByTestId('unpriced');
    // Wait for the defaults, which fill the form.
    await waitFor(() => expect(calls.some((c) => c.path === '/api/v1/admin/pricing/defaults')).toBe(true));
    await new Promise((r) => setTimeout(r, 0));
    fireEvent.click(within(list).getByRole('button', { name: /gpt-4o/ }));
    const dialog = await screen.findByRole('dialog');
    expect((within(dialog).getByRole('combobox', { name: 'Model' }) as HTMLInputElement).value).toBe('gpt-4o');
    expect((dialog.querySelector('input[name="input_per_mtok"]') as HTMLInputElement).value).toBe('1250000');
    expect((dialog.querySelector('input[name="cache_read_per_mtok"]') as HTMLInputElement).value).toBe('625000');
    // The model field suggests every served, unpriced model.
    const options = [...document.querySelectorAll('#unpriced-models option')].map((o) => (o as HTMLOptionElement).value);
    expect(options).toEqual(['gpt-4o', 'house-model']);
  });

  it('sends audio rates only when given: empty means audio is billed as text', async () => {
    const calls = stubFetch();
    show();
    const list = await screen.findByTestId('unpriced');
    fireEvent.click(within(list).getByRole('button', { name: /house-model/ }));
    const dialog = await screen.findByRole('dialog');
    const audioIn = dialog.querySelector('input[name="audio_input_per_mtok"]') as HTMLInputElement;
    expect(audioIn.value).toBe('');
    expect(within(dialog).getAllByText('Empty: audio is billed at the text rates')).toHaveLength(2);
    fireEvent.change(dialog.querySelector('input[name="input_per_mtok"]') as HTMLInputElement, { target: { value: '2000000' } });
    fireEvent.change(audioIn, { target: { value: '16000000' } });
    fireEvent.click(within(dialog).getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(calls.some((c) => c.method === 'PUT')).toBe(true));
    const put = calls.find((c) => c.method === 'PUT')!;
    expect(put.path).toBe('/api/v1/admin/pricing/house-model');
    expect(put.body).toMatchObject({ input_per_mtok: 2000000, audio_input_per_mtok: 16000000, audio_output_per_mtok: null });
  });

  it('in Chinese too', async () => {
    setLang('zh-CN');
    stubFetch();
    show();
    await screen.findByText('已提供但未定价的模型（2）');
    expect(screen.getByRole('button', { name: '载入默认价格' })).toBeTruthy();
  });
});
