import { afterEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import { MemoryRouter, Route, Routes } from 'react-router-dom';
import { AuthPage } from './Auth';
import { OAuthCallbackPage } from './OAuth';
import { isLastWayIn } from '../account/LinkedProviders';
import { providerBody } from '../admin/OAuthProviders';
import { authStore, clearSession } from '../../lib/auth';
import { setLang } from '../../lib/settings';

afterEach(() => {
  vi.unstubAllGlobals();
  clearSession();
  setLang('en');
});

function renderCallback(query: string) {
  return render(
    <MemoryRouter initialEntries={[`/oauth/callback/corp?${query}`]}>
      <Routes>
        <Route path="/oauth/callback/:slug" element={<OAuthCallbackPage />} />
        <Route path="/chat" element={<p>chat page</p>} />
      </Routes>
    </MemoryRouter>,
  );
}

describe('the provider callback page', () => {
  it('posts the code and state once, then signs in', async () => {
    const calls: Array<{ url: string; body: unknown }> = [];
    vi.stubGlobal('fetch', async (url: string, init: RequestInit) => {
      calls.push({ url, body: JSON.parse(String(init.body)) });
      return new Response(JSON.stringify({ access_token: 'a1', token_type: 'Bearer', expires_in: 900 }), { status: 200 });
    });
    renderCallback('code=c0de&state=st4te');
    await screen.findByText('chat page');
    expect(calls).toEqual([{ url: '/api/v1/auth/oauth/corp/callback', body: { state: 'st4te', code: 'c0de' } }]);
    await waitFor(() => expect(authStore.get().accessToken).toBe('a1'));
  });

  it('asks for the second factor when the account has it', async () => {
    vi.stubGlobal('fetch', async (url: string) => {
      if (url.endsWith('/callback')) return new Response(JSON.stringify({ two_factor_required: true, challenge: 'skc_1', expires_in: 300 }), { status: 200 });
      return new Response(JSON.stringify({ access_token: 'a2', token_type: 'Bearer', expires_in: 900 }), { status: 200 });
    });
    renderCallback('code=c&state=s');
    fireEvent.change(await screen.findByLabelText('Two-factor sign-in'), { target: { value: '123456' } });
    fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    await screen.findByText('chat page');
    expect(authStore.get().accessToken).toBe('a2');
  });

  it('explains an invite-only refusal in Chinese', async () => {
    vi.stubGlobal('fetch', async () =>
      new Response(JSON.stringify({ error: { code: 'invite_code_required', message: '注册需要邀请码。' } }), { status: 422 }),
    );
    setLang('zh-CN');
    renderCallback('code=c&state=s');
    await screen.findByText('注册需要邀请码。');
    expect(screen.getByText(/请在注册页填写邀请码/)).toBeTruthy();
    expect(authStore.get().accessToken).toBeNull();
  });
});

describe('the sign-in page', () => {
  it('shows a button per provider and starts there, carrying the invite code', async () => {
    const started: unknown[] = [];
    const assign = vi.fn();
    vi.stubGlobal('location', { ...window.location, assign });
    vi.stubGlobal('fetch', async (url: string, init: RequestInit) => {
      if (url === '/api/v1/auth/setup') return new Response('{"needs_setup":false}', { status: 200 });
      if (url === '/api/v1/auth/oauth/providers') return new Response(JSON.stringify({ items: [{ slug: 'corp', kind: 'oidc', name: 'Corp SSO' }] }), { status: 200 });
      started.push(JSON.parse(String(init.body)));
      return new Response(JSON.stringify({ authorize_url: 'https://id.example.com/authorize?state=x', redirect_uri: 'r', expires_in: 600 }), { status: 200 });
    });
    render(
      <MemoryRouter initialEntries={['/register']}>
        <Routes>
          <Route path="/register" element={<AuthPage mode="register" />} />
        </Routes>
      </MemoryRouter>,
    );
    fireEvent.click(await screen.findByRole('button', { name: 'I have an invite code' }));
    fireEvent.change(screen.getByLabelText('Invite code'), { target: { value: 'INV-9' } });
    fireEvent.click(await screen.findByRole('button', { name: 'Sign in with Corp SSO' }));
    await waitFor(() => expect(assign).toHaveBeenCalledWith('https://id.example.com/authorize?state=x'));
    expect(started).toEqual([{ link: false, invite_code: 'INV-9' }]);
  });
});

describe('linked sign-in rules', () => {
  it('keeps the last way in', () => {
    const one = [{ id: '1', provider: 'corp', provider_name: 'Corp', created_at: '' }];
    expect(isLastWayIn(one, false)).toBe(true);
    expect(isLastWayIn(one, true)).toBe(false);
    expect(isLastWayIn([...one, { ...one[0], id: '2' }], false)).toBe(false);
  });

  it('sends only the fields the kind uses', () => {
    const body = providerBody({ slug: ' gh ', kind: 'github', name: '', client_id: 'id', client_secret: 's', issuer: 'https://x', tenant: 't', link_by_email: false });
    expect(body).toEqual({ slug: 'gh', kind: 'github', name: undefined, client_id: 'id', client_secret: 's', issuer: undefined, tenant: undefined, link_by_email: false });
  });
});
