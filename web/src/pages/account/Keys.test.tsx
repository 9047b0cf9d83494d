import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import KeysPage from './Keys';
import { Users } from '../admin/Users';
import { setLang } from '../../lib/settings';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  setLang('en');
});

type Call = { url: string; method: string; body: unknown };

/** Answers `routes[METHOD url]` and records every call. */
function stubFetch(routes: Record<string, unknown>): Call[] {
  const calls: Call[] = [];
  vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
    const method = init.method ?? 'GET';
    calls.push({ url, method, body: init.body ? JSON.parse(String(init.body)) : undefined });
    const path = url.split('?')[0];
    const answer = routes[`${method} ${path}`];
    if (answer === undefined) return new Response('{}', { status: 404 });
    return new Response(JSON.stringify(answer), { status: 200 });
  });
  return calls;
}

function withQueries(ui: React.ReactNode) {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(<QueryClientProvider client={client}>{ui}</QueryClientProvider>);
}

describe('key groups', () => {
  it('the key form offers only the groups the user was granted and sends the chosen one', async () => {
    const calls = stubFetch({
      'GET /api/v1/keys': { items: [], total: 0, page: 1, per_page: 20 },
      'GET /api/v1/relay/groups': [
        { group: 'default', multiplier_permille: 1000 },
        { group: 'cheap', multiplier_permille: 500 },
      ],
      'POST /api/v1/keys': { id: 'k1', key: 'sk-new', name: 'bot', group: 'cheap' },
    });
    withQueries(<KeysPage />);
    fireEvent.click(screen.getByRole('button', { name: '+ New key' }));
    const select = (await screen.findByLabelText('Group')) as HTMLSelectElement;
    await waitFor(() => expect(select.options.length).toBe(2));
    expect(Array.from(select.options).map((o) => o.value)).toEqual(['default', 'cheap']);
    expect(select.options[1].text).toBe('cheap (×0.5)');
    fireEvent.change(select, { target: { value: 'cheap' } });
    fireEvent.change(screen.getByLabelText('Name'), { target: { value: 'bot' } });
    fireEvent.click(screen.getByRole('button', { name: 'Create' }));
    await waitFor(() => expect(calls.some((c) => c.method === 'POST')).toBe(true));
    expect(calls.find((c) => c.method === 'POST')?.body).toMatchObject({ name: 'bot', group: 'cheap' });
  });

  it('says so when no group was granted', async () => {
    stubFetch({ 'GET /api/v1/keys': { items: [], total: 0, page: 1, per_page: 20 }, 'GET /api/v1/relay/groups': [] });
    withQueries(<KeysPage />);
    fireEvent.click(screen.getByRole('button', { name: '+ New key' }));
    expect(await screen.findByText(/No key group has been granted/)).toBeTruthy();
    expect(screen.queryByLabelText('Group')).toBeNull();
  });

  it('an admin sets a user’s groups from the Users page', async () => {
    const ada = { id: 'u1', display_name: 'Ada', username: 'ada', email: null, role: 'user', status: 'active', created_at: '2026-01-01T00:00:00Z' };
    const calls = stubFetch({
      'GET /api/v1/admin/users': { items: [ada], total: 1, page: 1, per_page: 20 },
      'GET /api/v1/admin/relay/users/u1/groups': { user_id: 'u1', groups: ['default'], is_default: true, available: ['default', 'vip'] },
      'PUT /api/v1/admin/relay/users/u1/groups': { user_id: 'u1', groups: ['default', 'vip'], is_default: false, available: ['default', 'vip'] },
    });
    withQueries(<Users />);
    // The table renders each row twice (wide and narrow layouts).
    fireEvent.click((await screen.findAllByRole('button', { name: 'Key groups' }))[0]);
    const dialog = await screen.findByRole('dialog');
    const vip = await within(dialog).findByLabelText('vip');
    expect((within(dialog).getByLabelText('default') as HTMLInputElement).checked).toBe(true);
    expect((vip as HTMLInputElement).checked).toBe(false);
    fireEvent.click(vip);
    fireEvent.click(within(dialog).getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(calls.some((c) => c.method === 'PUT')).toBe(true));
    expect(calls.find((c) => c.method === 'PUT')?.body).toEqual({ groups: ['default', 'vip'] });
  });
});

describe('using a key', () => {
  it('shows the base URL and snippets per SDK, and limits a new key to picked models', async () => {
    const calls = stubFetch({
      'GET /api/v1/keys': { items: [], total: 0, page: 1, per_page: 20 },
      'GET /api/v1/relay/groups': [{ group: 'default', multiplier_permille: 1000 }],
      'GET /api/v1/pricing': [{ model: 'gpt-4o' }, { model: 'claude-sonnet-4' }, { model: 'gemini-2.0-flash' }],
      'POST /api/v1/keys': { id: 'k1', key: 'sk-fresh', name: 'bot', group: 'default' },
    });
    withQueries(<KeysPage />);
    const card = await screen.findByTestId('api-snippets');
    await waitFor(() => expect(within(card).getByTestId('snippet').textContent).toContain('"model": "claude-sonnet-4"'));
    expect(within(card).getByTestId('base-url').textContent).toBe(`${location.origin}/v1`);
    expect(within(card).getByTestId('snippet').textContent).toContain(`${location.origin}/v1/chat/completions`);
    fireEvent.click(within(card).getByRole('button', { name: 'Anthropic' }));
    fireEvent.click(within(card).getByRole('button', { name: 'Python' }));
    expect(within(card).getByTestId('base-url').textContent).toBe(location.origin);
    expect(within(card).getByTestId('snippet').textContent).toContain('anthropic.Anthropic(base_url=');

    fireEvent.click(screen.getByRole('button', { name: '+ New key' }));
    const dialog = await screen.findByRole('dialog');
    fireEvent.change(within(dialog).getByLabelText('Name'), { target: { value: 'bot' } });
    const picker = within(dialog).getByTestId('model-multiselect');
    fireEvent.change(within(picker).getByLabelText('Filter models'), { target: { value: 'gem' } });
    expect(within(picker).getAllByRole('checkbox')).toHaveLength(1);
    fireEvent.click(within(picker).getByLabelText('gemini-2.0-flash'));
    expect(within(picker).getByText('1 picked')).toBeTruthy();
    // A model not in the priced list can be named too.
    fireEvent.change(within(picker).getByLabelText('Filter models'), { target: { value: 'my-local-model' } });
    fireEvent.click(within(picker).getByRole('button', { name: 'Add “my-local-model”' }));
    expect(within(picker).getByText('2 picked')).toBeTruthy();
    fireEvent.click(within(dialog).getByRole('button', { name: 'Create' }));
    await waitFor(() => expect(calls.some((c) => c.method === 'POST')).toBe(true));
    expect(calls.find((c) => c.method === 'POST')?.body).toMatchObject({ name: 'bot', allowed_models: ['gemini-2.0-flash', 'my-local-model'] });
    // The new key's dialog fills the key into the snippets.
    const created = await screen.findByTestId('new-key');
    const secretDialog = created.closest('[role="dialog"]') as HTMLElement;
    expect(within(secretDialog).getByTestId('snippet').textContent).toContain('sk-fresh');
  });
});
