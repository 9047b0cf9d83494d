// Admin → System: the settings form sends only what changed, resets a setting to skein.toml's
// value, shows the server's per-field errors, and reads in both languages.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { SystemSettingsPage, formOf, updateOf } from './SystemSettings';
import { setLang } from '../../lib/settings';
import type { SystemSettings } from '../../lib/types';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  setLang('en');
});

const file: SystemSettings = {
  registration_mode: 'open',
  signup_grant: 0,
  invite_reward_inviter: 0,
  invite_reward_invitee: 0,
  default_model: null,
  title_model: null,
  announcement: null,
  currency: 'usd',
  cny_per_usd: 7.2,
};

type Call = { method: string; path: string; body: unknown };

function stub(values: SystemSettings, overridden: string[], put: (body: Record<string, unknown>) => Response) {
  const calls: Call[] = [];
  vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
    const method = init.method ?? 'GET';
    const path = url.split('?')[0];
    const body = init.body ? JSON.parse(String(init.body)) : undefined;
    calls.push({ method, path, body });
    if (method === 'PUT' && path === '/api/v1/admin/settings') return put(body);
    if (path === '/api/v1/admin/settings') return new Response(JSON.stringify({ values, defaults: file, overridden, quota_per_usd: 500000 }));
    if (path === '/api/v1/chat/models') return new Response(JSON.stringify([{ id: 'gpt-4o', context_window: 1, input_price: 1, output_price: 1 }]));
    return new Response('{}', { status: 404 });
  });
  return calls;
}

function show() {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <QueryClientProvider client={client}>
      <SystemSettingsPage />
    </QueryClientProvider>,
  );
}

describe('system settings form', () => {
  it('sends only what changed, so untouched values keep following skein.toml', () => {
    const form = formOf(file);
    expect(updateOf(form, file)).toEqual({});
    expect(
      updateOf({ ...form, registration_mode: 'closed', signup_grant: '500', title_mode: 'off', announcement_en: 'Hi', announcement_zh: '你好', currency: 'cny' }, file),
    ).toEqual({ registration_mode: 'closed', signup_grant: 500, title_model: '', announcement: { en: 'Hi', zh: '你好' }, currency: 'cny' });
    // Clearing both texts removes the banner; a word in a number field goes as typed for the server to name.
    const withBanner = { ...file, announcement: { id: 'a1', en: 'Hi', zh: '你好' } };
    expect(updateOf({ ...formOf(withBanner), announcement_en: '', announcement_zh: '' }, withBanner)).toEqual({ announcement: null });
    expect(updateOf({ ...form, signup_grant: 'lots' }, file)).toEqual({ signup_grant: 'lots' });
    expect(updateOf({ ...form, title_mode: 'model', title_model: 'gpt-4o' }, file)).toEqual({ title_model: 'gpt-4o' });
  });

  it('saves a change, and offers Reset only for changed settings', async () => {
    const calls = stub({ ...file, registration_mode: 'invite_only' }, ['registration_mode'], (body) =>
      new Response(JSON.stringify({ values: { ...file, ...(body.reset ? {} : body) }, defaults: file, overridden: [], quota_per_usd: 500000 })),
    );
    show();
    await screen.findByTestId('system-settings');
    expect((screen.getByLabelText(/Invite only/) as HTMLInputElement).checked).toBe(true);
    // One reset button: registration is the only changed setting; the others say where they come from.
    expect(screen.getAllByRole('button', { name: 'Reset' })).toHaveLength(1);
    expect(screen.getAllByText('From skein.toml').length).toBe(4);
    fireEvent.click(screen.getByRole('button', { name: 'Reset' }));
    await waitFor(() => expect(calls.some((c) => c.method === 'PUT')).toBe(true));
    expect(calls.find((c) => c.method === 'PUT')?.body).toEqual({ reset: ['registration_mode'] });
    // The answer is what the form now shows: back to the file's value, nothing changed.
    await waitFor(() => expect(screen.queryAllByRole('button', { name: 'Reset' })).toHaveLength(0));
    expect((screen.getByLabelText(/Open/) as HTMLInputElement).checked).toBe(true);

    fireEvent.change(screen.getByLabelText('Every new account'), { target: { value: '250000' } });
    expect(screen.getByText('$0.50')).toBeTruthy();
    fireEvent.click(screen.getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(calls.filter((c) => c.method === 'PUT')).toHaveLength(2));
    expect(calls.filter((c) => c.method === 'PUT')[1].body).toEqual({ signup_grant: 250000 });
  });

  it('shows the server’s refusal in Chinese', async () => {
    setLang('zh-CN');
    stub(file, [], () =>
      new Response(JSON.stringify({ error: { code: 'validation_failed', message: '汇率必须大于 0 且不超过 1000（人民币/美元）。', details: { field: 'cny_per_usd' } }, request_id: 'r1' }), { status: 422 }),
    );
    show();
    await screen.findByTestId('system-settings');
    expect(screen.getByText('注册')).toBeTruthy();
    fireEvent.change(screen.getByLabelText('汇率（人民币/美元）'), { target: { value: '0' } });
    fireEvent.click(screen.getByRole('button', { name: '保存' }));
    expect(await screen.findByText(/汇率必须大于 0/)).toBeTruthy();
  });
});
