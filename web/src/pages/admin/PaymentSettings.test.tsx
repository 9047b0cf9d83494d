// Admin → Payments: the page shows the settings in effect (amounts in yuan, secrets only as
// "set"), sends only what changed, sends a provider's secrets only when typed or cleared, and
// resets to skein.toml.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { PaymentSettingsPage, formOf, updateOf } from './PaymentSettings';
import { setLang } from '../../lib/settings';
import type { PaymentSettings, PaymentValues } from '../../lib/types';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  setLang('en');
});

const file: PaymentValues = {
  enabled: false,
  public_url: null,
  currency: 'CNY',
  quota_per_unit: 0,
  amounts: [1000, 5000],
  min_amount: 100,
  max_amount: 10000000,
  order_ttl_secs: 7200,
  max_pending_orders: 5,
  plan_reminder_days: 3,
  epay: null,
  stripe: null,
  alipay: null,
  wechat: null,
};

const values: PaymentValues = {
  ...file,
  enabled: true,
  public_url: 'https://ai.example.com',
  epay: { url: 'https://pay.example.com/', pid: '1001', key_set: true, methods: ['alipay', 'wxpay'] },
};

type Call = { method: string; path: string; body: unknown };

function stub(answer: PaymentSettings) {
  const calls: Call[] = [];
  vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
    const method = init.method ?? 'GET';
    const path = url.split('?')[0];
    const body = init.body ? JSON.parse(String(init.body)) : undefined;
    calls.push({ method, path, body });
    if (path === '/api/v1/admin/billing/payment-settings') return new Response(JSON.stringify(answer));
    return new Response('{}', { status: 404 });
  });
  return calls;
}

function show() {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <QueryClientProvider client={client}>
      <PaymentSettingsPage />
    </QueryClientProvider>,
  );
}

const settings: PaymentSettings = {
  values,
  defaults: file,
  sources: { public_url: 'stored', epay: 'stored', currency: 'file', min_amount: 'file' },
  effective_quota_per_unit: 69444,
  load_error: null,
};

describe('payment settings', () => {
  it('sends only what changed, amounts in minor units, and no secret nobody typed', () => {
    const form = formOf(values);
    expect(form.amounts).toBe('10, 50');
    expect(form.order_ttl_minutes).toBe('120');
    expect(form.providers.epay.secrets.key.value).toBe('');
    expect(updateOf(form, values)).toEqual({});
    const changed = { ...form, min_amount: '2', amounts: '10, 50, 100', order_ttl_minutes: '30' };
    expect(updateOf(changed, values)).toEqual({ min_amount: 200, amounts: [1000, 5000, 10000], order_ttl_secs: 1800 });
    // A provider field changed: the section is sent whole, without its key (kept on the server).
    const epay = { ...form.providers.epay, fields: { ...form.providers.epay.fields, pid: '2002' } };
    const sent = updateOf({ ...form, providers: { ...form.providers, epay } }, values);
    expect(sent).toEqual({ epay: { url: 'https://pay.example.com/', pid: '2002', methods: ['alipay', 'wxpay'] } });
    // A typed key is sent; a cleared one is sent empty; a provider turned off is null.
    const typed = { ...form.providers.epay, secrets: { key: { value: 'new-key', clear: false } } };
    expect(updateOf({ ...form, providers: { ...form.providers, epay: typed } }, values)).toEqual({ epay: expect.objectContaining({ key: 'new-key' }) });
    const cleared = { ...form.providers.epay, secrets: { key: { value: '', clear: true } } };
    expect(updateOf({ ...form, providers: { ...form.providers, epay: cleared } }, values)).toEqual({ epay: expect.objectContaining({ key: '' }) });
    expect(updateOf({ ...form, providers: { ...form.providers, epay: { ...form.providers.epay, on: false } } }, values)).toEqual({ epay: null });
  });

  it('shows the settings in effect with secrets only as set, saves changes and resets', async () => {
    const calls = stub(settings);
    show();
    const page = await screen.findByTestId('payment-settings');
    expect((within(page).getByDisplayValue('https://ai.example.com') as HTMLInputElement).name).toBe('public_url');
    expect(within(page).getByDisplayValue('10, 50')).toBeTruthy();
    const key = screen.getByTestId('secret-epay-key');
    expect(within(key).getByText('Set')).toBeTruthy();
    const keyInput = within(key).getByLabelText('Merchant key') as HTMLInputElement;
    expect(keyInput.value).toBe('');
    expect(keyInput.type).toBe('password');
    // Nothing from the server could fill it: the answer has no key at all.
    expect(JSON.stringify(settings)).not.toMatch(/"key":/);

    fireEvent.change(page.querySelector('input[name="max_pending_orders"]')!, { target: { value: '2' } });
    fireEvent.change(keyInput, { target: { value: 'rotated' } });
    fireEvent.click(screen.getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(calls.some((c) => c.method === 'PUT')).toBe(true));
    const put = calls.find((c) => c.method === 'PUT')!;
    expect(put.body).toEqual({
      max_pending_orders: 2,
      epay: { url: 'https://pay.example.com/', pid: '1001', methods: ['alipay', 'wxpay'], key: 'rotated' },
    });

    // A stored setting offers a reset to skein.toml's value.
    const resets = screen.getAllByRole('button', { name: 'Reset' });
    fireEvent.click(resets[0]);
    await waitFor(() => expect(calls.filter((c) => c.method === 'PUT')).toHaveLength(2));
    expect(calls.filter((c) => c.method === 'PUT')[1].body).toEqual({ reset: ['public_url'] });
    fireEvent.click(screen.getByRole('button', { name: 'Reset all to skein.toml' }));
    await waitFor(() => expect(calls.some((c) => c.method === 'DELETE')).toBe(true));
  });

  it('clears a secret only when asked, and reads in Chinese', async () => {
    setLang('zh-CN');
    const calls = stub(settings);
    show();
    const key = await screen.findByTestId('secret-epay-key');
    expect(within(key).getByText('已设置')).toBeTruthy();
    fireEvent.click(within(key).getByText('清除'));
    expect(within(key).getByText('将被清除')).toBeTruthy();
    fireEvent.click(screen.getByRole('button', { name: '保存' }));
    await waitFor(() => expect(calls.some((c) => c.method === 'PUT')).toBe(true));
    expect(calls.find((c) => c.method === 'PUT')!.body).toEqual({ epay: expect.objectContaining({ key: '' }) });
  });
});
