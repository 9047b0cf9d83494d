// The root account's first-run checklist: each step's state comes from the API, steps can be
// done from the list, and the list disappears when all are done.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter } from 'react-router-dom';
import { SetupChecklist } from './SetupChecklist';
import { ChatEmpty } from '../pages/chat/ChatEmpty';
import { ModelPicker } from '../pages/chat/ModelPicker';
import { clearSession, setUser } from '../lib/auth';
import { setLang } from '../lib/settings';
import type { Profile } from '../lib/types';

afterEach(() => {
  vi.unstubAllGlobals();
  clearSession();
  setLang('en');
});

const profile = (role: Profile['role']): Profile => ({
  id: 'u1',
  username: 'root',
  email: null,
  display_name: 'Root',
  avatar_url: null,
  language: 'en',
  theme: 'system',
  role,
  status: 'active',
  invited_by: null,
  created_at: '2026-12-01T00:00:00Z',
  last_login_at: null,
  email_verified: false,
  two_factor_enabled: false,
});

/** A server whose state the test changes as steps are done. */
function server(initial: { channel?: boolean; tested?: boolean; priced?: boolean; registration?: boolean; key?: boolean }) {
  const state = { ...initial };
  const calls: string[] = [];
  vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
    const method = init.method ?? 'GET';
    const path = url.split('?')[0];
    calls.push(`${method} ${path}`);
    const channel = { id: 'c1', name: 'openai', type: 'openai', models: ['gpt-4o'], last_test_result: state.tested ? 'ok' : null };
    const settings = (mode: string, chosen: boolean) => ({
      values: { registration_mode: mode },
      defaults: { registration_mode: 'open' },
      overridden: chosen ? ['registration_mode'] : [],
      quota_per_usd: 500000,
    });
    if (method === 'PUT' && path === '/api/v1/admin/settings') {
      state.registration = true;
      return new Response(JSON.stringify(settings(JSON.parse(String(init.body)).registration_mode, true)), { status: 200 });
    }
    const routes: Record<string, unknown> = {
      'GET /api/v1/admin/settings': settings(state.registration ? 'invite_only' : 'open', !!state.registration),
      'GET /api/v1/channels': state.channel ? [channel] : [],
      'GET /api/v1/pricing': state.priced ? [{ model: 'gpt-4o' }] : [],
      'GET /api/v1/admin/pricing/unpriced': state.channel && !state.priced ? [{ model: 'gpt-4o', channels: ['openai'], has_default: true }] : [],
      'GET /api/v1/keys': { items: [], total: state.key ? 1 : 0, page: 1, per_page: 20 },
      'POST /api/v1/channels/c1/test': { ok: true, latency_ms: 12, message: 'ok' },
      'POST /api/v1/admin/pricing/defaults': { added: ['gpt-4o'], kept: [] },
    };
    if (method === 'POST' && path === '/api/v1/channels/c1/test') state.tested = true;
    if (method === 'POST' && path === '/api/v1/admin/pricing/defaults') state.priced = true;
    const answer = routes[`${method} ${path}`];
    if (answer === undefined) return new Response('{}', { status: 404 });
    return new Response(JSON.stringify(answer), { status: 200 });
  });
  return calls;
}

function show(node: React.ReactNode) {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <QueryClientProvider client={client}>
      <MemoryRouter>{node}</MemoryRouter>
    </QueryClientProvider>,
  );
}

const done = (id: string) => screen.getByTestId(`setup-step-${id}`).getAttribute('data-done');

describe('setup checklist', () => {
  it('on a fresh server, lists every step with a way to do it', async () => {
    setUser(profile('root'));
    server({});
    show(<SetupChecklist />);
    await screen.findByTestId('setup-checklist');
    expect(screen.getByText('0 of 5 done')).toBeTruthy();
    expect(['provider', 'test', 'prices', 'registration', 'key'].map(done)).toEqual(['false', 'false', 'false', 'false', 'false']);
    expect(screen.getByRole('link', { name: 'Add a channel' }).getAttribute('href')).toBe('/admin/channels?new=1');
    expect(screen.getByRole('link', { name: 'Create a key' }).getAttribute('href')).toBe('/keys');
  });

  it('ticks steps off from the API as they are done, then disappears', async () => {
    setUser(profile('root'));
    const calls = server({ channel: true, key: true });
    show(<SetupChecklist />);
    await screen.findByText('2 of 5 done');
    // Registration: chosen right from the list, stored through the settings API.
    fireEvent.click(within(screen.getByTestId('setup-step-registration')).getByRole('button', { name: 'Invite only' }));
    await waitFor(() => expect(done('registration')).toBe('true'));
    expect(calls).toContain('PUT /api/v1/admin/settings');
    fireEvent.click(within(screen.getByTestId('setup-step-test')).getByRole('button', { name: 'Test now' }));
    await waitFor(() => expect(done('test')).toBe('true'));
    expect(calls).toContain('POST /api/v1/channels/c1/test');
    fireEvent.click(within(screen.getByTestId('setup-step-prices')).getByRole('button', { name: 'Load default prices' }));
    await waitFor(() => expect(screen.queryByTestId('setup-checklist')).toBeNull());
    expect(calls).toContain('POST /api/v1/admin/pricing/defaults');
  });

  it('is not shown once everything is set up', async () => {
    setUser(profile('root'));
    const calls = server({ channel: true, tested: true, priced: true, registration: true, key: true });
    const { container } = show(<SetupChecklist />);
    await waitFor(() => expect(calls).toContain('GET /api/v1/keys'));
    await new Promise((r) => setTimeout(r, 20));
    expect(container.textContent).toBe('');
  });

  it('is only for root: nobody else asks the admin API for it', async () => {
    setUser(profile('user'));
    const calls = server({});
    show(<ChatEmpty hasModels={false} />);
    await new Promise((r) => setTimeout(r, 20));
    expect(screen.queryByTestId('setup-checklist')).toBeNull();
    expect(calls).toEqual([]);
  });

  it('the empty chat shows it to root, in Chinese too', async () => {
    setLang('zh-CN');
    setUser(profile('root'));
    server({});
    show(<ChatEmpty hasModels={false} />);
    await screen.findByText('设置本服务器');
    expect(screen.getByText('已完成 0/5')).toBeTruthy();
    expect(screen.getByRole('link', { name: '添加渠道' }).getAttribute('href')).toBe('/admin/channels?new=1');
  });

  it('the model picker without models says so and leads root to the checklist', () => {
    setUser(profile('root'));
    server({});
    show(<ModelPicker models={[]} value="" onChange={() => undefined} />);
    const link = screen.getByTestId('model-picker');
    expect(link.getAttribute('href')).toBe('/admin/dashboard');
    expect(link.textContent).toBe('Set up this server');
  });

  it('a user’s model picker without models leads nowhere', () => {
    setUser(profile('user'));
    show(<ModelPicker models={[]} value="" onChange={() => undefined} />);
    expect(screen.getByTestId('model-picker').textContent).toBe('No models yet.');
    expect(screen.queryByRole('link')).toBeNull();
  });
});
