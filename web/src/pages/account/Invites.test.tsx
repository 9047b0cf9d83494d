// Invite pages: a user makes a code and copies its link; an admin lists every code and
// disables one; a code's state reads right.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter } from 'react-router-dom';
import InvitesPage, { inviteLink, inviteState } from './Invites';
import { AdminInvites } from '../admin/Invites';
import { setLang } from '../../lib/settings';
import type { InviteCode } from '../../lib/types';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  setLang('en');
});

const code = (over: Partial<InviteCode> = {}): InviteCode => ({
  id: 'i1',
  code: 'ABCD-1234',
  owner_id: 'u1',
  max_uses: 1,
  used_count: 0,
  expires_at: null,
  disabled: false,
  by_admin: false,
  note: null,
  created_at: '2026-12-01T00:00:00Z',
  ...over,
});

type Call = { method: string; path: string; body: unknown };

function stub(routes: Record<string, () => unknown>) {
  const calls: Call[] = [];
  vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
    const method = init.method ?? 'GET';
    const path = url.split('?')[0];
    calls.push({ method, path, body: init.body ? JSON.parse(String(init.body)) : undefined });
    const answer = routes[`${method} ${path}`];
    if (!answer) return new Response('{}', { status: 404 });
    return new Response(JSON.stringify(answer()), { status: 200 });
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

const publicSettings = (over: Record<string, unknown> = {}) => ({
  registration_mode: 'invite_only', announcement: null, currency: 'usd', cny_per_usd: 7.2, quota_per_usd: 500000,
  invite_reward_inviter: 250000, invite_reward_invitee: 50000, ...over,
});

describe('invite codes', () => {
  it('reads a code’s state and builds its registration link', () => {
    const now = Date.parse('2026-12-02T00:00:00Z');
    expect(inviteState(code(), now)).toBe('active');
    expect(inviteState(code({ used_count: 1 }), now)).toBe('used_up');
    expect(inviteState(code({ max_uses: 0, used_count: 99 }), now)).toBe('active');
    expect(inviteState(code({ expires_at: '2026-12-01T00:00:00Z' }), now)).toBe('expired');
    expect(inviteState(code({ disabled: true, used_count: 1 }), now)).toBe('disabled');
    expect(inviteLink('AB CD', 'https://ai.example.com')).toBe('https://ai.example.com/register?invite=AB%20CD');
  });

  it('a user makes a code, sees the rewards and who joined', async () => {
    let codes: InviteCode[] = [];
    const calls = stub({
      'GET /api/v1/settings/public': () => publicSettings(),
      'GET /api/v1/user/invite-codes': () => codes,
      'POST /api/v1/user/invite-codes': () => {
        codes = [code()];
        return codes[0];
      },
      'GET /api/v1/user/invitees': () => [{ id: 'u2', display_name: 'Bob', joined_at: '2026-12-01T00:00:00Z' }],
    });
    show(<InvitesPage />);
    expect(await screen.findByText('No invite codes yet.')).toBeTruthy();
    expect((await screen.findByTestId('invite-rewards')).textContent).toBe('You receive $0.50 for each person who registers with your code, and they receive $0.10 extra.');
    expect(await screen.findByText('Bob')).toBeTruthy();
    fireEvent.click(screen.getByRole('button', { name: '+ New code' }));
    expect((await screen.findAllByText('ABCD-1234')).length).toBeGreaterThan(0);
    expect(calls.some((c) => c.method === 'POST' && c.path === '/api/v1/user/invite-codes')).toBe(true);
  });

  it('says codes cannot be used while registration is closed, in Chinese', async () => {
    setLang('zh-CN');
    stub({
      'GET /api/v1/settings/public': () => publicSettings({ registration_mode: 'closed', invite_reward_inviter: 0, invite_reward_invitee: 0 }),
      'GET /api/v1/user/invite-codes': () => [],
      'GET /api/v1/user/invitees': () => [],
    });
    show(<InvitesPage />);
    expect(await screen.findByText(/当前已关闭注册/)).toBeTruthy();
    expect(screen.queryByTestId('invite-rewards')).toBeNull();
  });

  it('an admin sees every code and disables one', async () => {
    const calls = stub({
      'GET /api/v1/admin/invite-codes': () => ({ items: [code({ by_admin: true, note: 'launch' })], total: 1, page: 1, per_page: 20 }),
      'PATCH /api/v1/admin/invite-codes/i1': () => code({ disabled: true }),
    });
    show(<AdminInvites />);
    expect((await screen.findAllByText('launch')).length).toBeGreaterThan(0);
    fireEvent.click(screen.getAllByRole('button', { name: 'Disable' })[0]);
    await waitFor(() => expect(calls.some((c) => c.method === 'PATCH')).toBe(true));
    expect(calls.find((c) => c.method === 'PATCH')?.body).toEqual({ disabled: true });
  });
});
