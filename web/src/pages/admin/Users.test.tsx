// Admin → Users: balances shown as money, the adjustment previewed before it is saved, and no
// button on a row for what the server would refuse (your own row above all).
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { Users, permissions } from './Users';
import { clearSession, setUser } from '../../lib/auth';
import { setLang } from '../../lib/settings';
import type { Profile } from '../../lib/types';

afterEach(() => {
  vi.unstubAllGlobals();
  clearSession();
  setLang('en');
});

const person = (id: string, name: string, role: Profile['role']): Profile => ({
  id,
  username: name.toLowerCase(),
  email: null,
  display_name: name,
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

const root = person('r1', 'Root', 'root');
const boss = person('a1', 'Boss', 'admin');
const ada = person('u1', 'Ada', 'user');
const quota = (balance: number) => ({ balance, reserved: 0, available: balance, used: 0, quota_per_usd: 500000, balance_usd: balance / 500000, balance_cny: 0 });

type Call = { method: string; path: string; body: unknown };

function stubFetch() {
  const calls: Call[] = [];
  const routes: Record<string, unknown> = {
    'GET /api/v1/admin/users': { items: [root, boss, ada], total: 3, page: 1, per_page: 20 },
    'GET /api/v1/admin/billing/users/r1/quota': quota(0),
    'GET /api/v1/admin/billing/users/a1/quota': quota(250000),
    'GET /api/v1/admin/billing/users/u1/quota': quota(1000000),
    'POST /api/v1/admin/billing/users/u1/adjust': { balance: 1500000 },
    'PATCH /api/v1/admin/users/u1': { ...ada, status: 'disabled' },
  };
  vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
    const method = init.method ?? 'GET';
    const path = url.split('?')[0];
    calls.push({ method, path, body: init.body ? JSON.parse(String(init.body)) : undefined });
    const answer = routes[`${method} ${path}`];
    if (answer === undefined) return new Response('{}', { status: 404 });
    return new Response(JSON.stringify(answer), { status: 200 });
  });
  return calls;
}

function show(me: Profile) {
  setUser(me);
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  render(
    <QueryClientProvider client={client}>
      <Users />
    </QueryClientProvider>,
  );
}

/** A row of the wide table (the narrow cards repeat it). */
async function row(name: string) {
  const table = await screen.findByRole('table');
  const find = () => within(table).getAllByRole('row').find((r) => r.querySelector('td')?.textContent?.startsWith(name));
  await waitFor(() => expect(find()).toBeTruthy());
  return find()!;
}

const buttons = (r: HTMLElement) => within(r).queryAllByRole('button').map((b) => b.textContent);

describe('admin users', () => {
  it('shows each balance in money, and your own row offers nothing the server refuses', async () => {
    stubFetch();
    show(root);
    const own = await row('Root');
    expect(within(own).getByText('you')).toBeTruthy();
    expect(buttons(own)).toEqual(['Key groups']);
    expect(within(own).queryByRole('combobox')).toBeNull();
    const other = await row('Ada');
    expect(buttons(other)).toEqual(['Disable', 'Adjust balance', 'Reset password', 'Key groups']);
    expect(within(other).getByRole('combobox', { name: 'Role' })).toBeTruthy();
    await waitFor(() => expect(within(other).getByTestId('balance').textContent).toBe('$2.00'));
    expect(within(await row('Boss')).getByTestId('balance').textContent).toBe('$0.50');
  });

  it('an admin (not root) changes no roles and manages no other admin', async () => {
    stubFetch();
    show(boss);
    expect(buttons(await row('Boss'))).toEqual(['Key groups']);
    expect(buttons(await row('Root'))).toEqual(['Adjust balance', 'Key groups']);
    const user = await row('Ada');
    expect(buttons(user)).toEqual(['Disable', 'Adjust balance', 'Reset password', 'Key groups']);
    expect(within(user).queryByRole('combobox')).toBeNull();
    expect(within(user).getByTestId('role').textContent).toBe('User');
  });

  it('previews an adjustment in money with the balance after, and Cancel sends nothing', async () => {
    const calls = stubFetch();
    show(root);
    const user = await row('Ada');
    await waitFor(() => expect(within(user).getByTestId('balance').textContent).toBe('$2.00'));
    fireEvent.click(within(user).getByRole('button', { name: 'Adjust balance' }));
    let dialog = await screen.findByRole('dialog');
    expect(within(dialog).getByTestId('current-balance').textContent).toBe('Current balance: $2.00 (1,000,000 units)');
    expect(within(dialog).getByRole('button', { name: 'Save' })).toHaveProperty('disabled', true);
    fireEvent.change(within(dialog).getByLabelText('Amount (units, negative to deduct)'), { target: { value: '500000' } });
    expect(within(dialog).getByTestId('adjust-preview').textContent).toBe('Adds $1.00 · balance after: $3.00 (1,500,000 units)');
    fireEvent.change(within(dialog).getByLabelText('Amount (units, negative to deduct)'), { target: { value: '-250000' } });
    expect(within(dialog).getByTestId('adjust-preview').textContent).toBe('Deducts $0.50 · balance after: $1.50 (750,000 units)');
    fireEvent.click(within(dialog).getByRole('button', { name: 'Cancel' }));
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
    expect(calls.some((c) => c.method === 'POST')).toBe(false);

    fireEvent.click(within(user).getByRole('button', { name: 'Adjust balance' }));
    dialog = await screen.findByRole('dialog');
    fireEvent.change(within(dialog).getByLabelText('Amount (units, negative to deduct)'), { target: { value: '500000' } });
    fireEvent.change(within(dialog).getByLabelText('Memo (required)'), { target: { value: 'top-up' } });
    fireEvent.click(within(dialog).getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(calls.some((c) => c.method === 'POST')).toBe(true));
    expect(calls.find((c) => c.method === 'POST')).toEqual({ method: 'POST', path: '/api/v1/admin/billing/users/u1/adjust', body: { amount: 500000, memo: 'top-up' } });
  });

  it('asks before disabling a user', async () => {
    const calls = stubFetch();
    show(root);
    const user = await row('Ada');
    fireEvent.click(within(user).getByRole('button', { name: 'Disable' }));
    let dialog = await screen.findByRole('dialog', { name: 'Disable this user?' });
    fireEvent.click(within(dialog).getByRole('button', { name: 'Cancel' }));
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
    expect(calls.some((c) => c.method === 'PATCH')).toBe(false);
    fireEvent.click(within(user).getByRole('button', { name: 'Disable' }));
    dialog = await screen.findByRole('dialog', { name: 'Disable this user?' });
    fireEvent.click(within(dialog).getByRole('button', { name: 'Disable' }));
    await waitFor(() => expect(calls.find((c) => c.method === 'PATCH')?.body).toEqual({ status: 'disabled' }));
  });

  it('permissions follow the server rules', () => {
    expect(permissions(root, root)).toEqual({ manage: false, changeRole: false, adjust: false });
    expect(permissions(root, boss)).toEqual({ manage: true, changeRole: true, adjust: true });
    expect(permissions(boss, root)).toEqual({ manage: false, changeRole: false, adjust: true });
    expect(permissions(boss, person('a2', 'Other', 'admin'))).toEqual({ manage: false, changeRole: false, adjust: true });
    expect(permissions(boss, ada)).toEqual({ manage: true, changeRole: false, adjust: true });
  });
});
