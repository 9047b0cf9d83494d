import { afterEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import { MemoryRouter, Route, Routes } from 'react-router-dom';
import { AuthPage } from './Auth';
import { authStore, clearSession } from '../../lib/auth';
import { setLang } from '../../lib/settings';

afterEach(() => {
  vi.unstubAllGlobals();
  clearSession();
  setLang('en');
});

function renderRegister() {
  return render(
    <MemoryRouter initialEntries={['/register?next=/keys']}>
      <Routes>
        <Route path="/register" element={<AuthPage mode="register" />} />
        <Route path="/keys" element={<p>keys page</p>} />
      </Routes>
    </MemoryRouter>,
  );
}

describe('registration', () => {
  it('asks for an invite code when the server requires one, then signs in and goes on', async () => {
    const bodies: Array<Record<string, unknown>> = [];
    vi.stubGlobal('fetch', async (url: string, init: RequestInit) => {
      if (url === '/api/v1/auth/setup') return new Response('{"needs_setup":false}', { status: 200 });
      const body = JSON.parse(String(init.body));
      bodies.push(body);
      if (!body.invite_code) {
        return new Response(
          JSON.stringify({ error: { code: 'invite_code_required', message: '注册需要邀请码。', details: { field: 'invite_code' } }, request_id: 'req-1' }),
          { status: 422 },
        );
      }
      return new Response(JSON.stringify({ access_token: 'a', refresh_token: 'r', token_type: 'Bearer', expires_in: 900 }), { status: 201 });
    });
    setLang('zh-CN');
    renderRegister();
    expect(screen.queryByLabelText('邀请码')).toBeNull();
    fireEvent.change(screen.getByLabelText('用户名'), { target: { value: 'ada' } });
    fireEvent.change(screen.getByLabelText('密码'), { target: { value: 'correct horse battery' } });
    fireEvent.click(screen.getByRole('button', { name: '注册账号' }));
    await screen.findByText('注册需要邀请码。');
    // A refusal the user can fix quotes no request id (that is for server failures).
    expect(screen.queryByText('请求 ID：req-1')).toBeNull();
    fireEvent.change(screen.getByLabelText('邀请码'), { target: { value: 'INV-123' } });
    fireEvent.click(screen.getByRole('button', { name: '注册账号' }));
    await screen.findByText('keys page');
    expect(bodies[1]).toMatchObject({ username: 'ada', invite_code: 'INV-123', language: 'zh-CN' });
    expect(bodies[0].email).toBeUndefined();
    await waitFor(() => expect(authStore.get().accessToken).toBe('a'));
  });
});

describe('registration checks', () => {
  it('names every problem at once, before anything is sent', async () => {
    const sent: string[] = [];
    vi.stubGlobal('fetch', async (url: string) => {
      sent.push(url);
      return new Response('{"needs_setup":false}', { status: 200 });
    });
    renderRegister();
    fireEvent.change(screen.getByLabelText('Username'), { target: { value: 'ab' } });
    fireEvent.change(screen.getByLabelText('Email (optional)'), { target: { value: 'nope' } });
    fireEvent.change(screen.getByLabelText('Password'), { target: { value: 'short' } });
    fireEvent.click(screen.getByRole('button', { name: 'Create account' }));
    const errors = (await screen.findAllByTestId('field-error')).map((e) => e.textContent);
    expect(errors).toEqual([
      'The username must be 3 to 32 characters long.',
      'The email address is not valid.',
      'The password must be 8 to 128 characters long.',
    ]);
    expect(sent.filter((u) => u.includes('auth/register'))).toEqual([]);
    // Fixed as the user types: the errors go away field by field.
    fireEvent.change(screen.getByLabelText('Email (optional)'), { target: { value: 'ada@example.com' } });
    expect(screen.getAllByTestId('field-error')).toHaveLength(2);
  });

  it('shows each field the server refused at that field', async () => {
    vi.stubGlobal('fetch', async (url: string) => {
      if (url === '/api/v1/auth/setup') return new Response('{"needs_setup":false}', { status: 200 });
      return new Response(
        JSON.stringify({
          error: {
            code: 'validation_failed',
            message: '用户名只能包含字母、数字、“_”、“.”和“-”。',
            details: { field: 'username', errors: [{ field: 'username', message: '用户名只能包含字母、数字、“_”、“.”和“-”。' }, { field: 'email', message: '邮箱地址格式不正确。' }] },
          },
          request_id: 'r',
        }),
        { status: 422 },
      );
    });
    setLang('zh-CN');
    renderRegister();
    fireEvent.change(screen.getByLabelText('用户名'), { target: { value: 'ada' } });
    fireEvent.change(screen.getByLabelText('密码'), { target: { value: 'correct horse battery' } });
    fireEvent.click(screen.getByRole('button', { name: '注册账号' }));
    await waitFor(() => expect(screen.getAllByTestId('field-error').map((e) => e.textContent)).toEqual(['用户名只能包含字母、数字、“_”、“.”和“-”。', '邮箱地址格式不正确。']));
    // Not repeated as one error above the button.
    expect(screen.queryByRole('alert')).toBeNull();
  });
});

describe('first run', () => {
  it('the sign-in page points to registration while the server has no account', async () => {
    vi.stubGlobal('fetch', async (url: string) =>
      url === '/api/v1/auth/setup' ? new Response('{"needs_setup":true}', { status: 200 }) : new Response('{}', { status: 500 }),
    );
    render(
      <MemoryRouter initialEntries={['/login']}>
        <Routes>
          <Route path="/login" element={<AuthPage mode="login" />} />
        </Routes>
      </MemoryRouter>,
    );
    const hint = await screen.findByTestId('setup-hint');
    expect(hint.textContent).toContain('no account yet');
    expect(hint.querySelector('a')?.getAttribute('href')).toContain('/register');
  });

  it('asks for the setup token while the server has no account, and sends it', async () => {
    const bodies: Array<Record<string, unknown>> = [];
    vi.stubGlobal('fetch', async (url: string, init: RequestInit) => {
      if (url === '/api/v1/auth/setup') return new Response('{"needs_setup":true}', { status: 200 });
      const body = JSON.parse(String(init.body));
      bodies.push(body);
      expect((init.headers as Record<string, string>)['x-skein-csrf']).toBe('1');
      return new Response(JSON.stringify({ access_token: 'a', token_type: 'Bearer', expires_in: 900 }), { status: 201 });
    });
    renderRegister();
    await screen.findByTestId('setup-hint');
    expect(screen.getByText(/setup token: …/)).toBeTruthy();
    fireEvent.change(screen.getByLabelText('Username'), { target: { value: 'owner' } });
    fireEvent.change(screen.getByLabelText('Password'), { target: { value: 'correct horse battery' } });
    fireEvent.change(screen.getByLabelText('Setup token'), { target: { value: ' sks_abc ' } });
    fireEvent.click(screen.getByRole('button', { name: 'Create account' }));
    await screen.findByText('keys page');
    expect(bodies[0]).toMatchObject({ username: 'owner', setup_token: 'sks_abc' });
    expect(JSON.stringify({ ...localStorage })).not.toContain('sks_abc');
  });
});

describe('registration mode', () => {
  it('says registration is closed and does not offer to submit', async () => {
    vi.stubGlobal('fetch', async (url: string) => {
      if (url === '/api/v1/auth/setup') return new Response('{"needs_setup":false}', { status: 200 });
      if (url === '/api/v1/settings/public') return new Response('{"registration_mode":"closed","announcement":null,"currency":"usd","cny_per_usd":7.2,"quota_per_usd":500000,"invite_reward_inviter":0,"invite_reward_invitee":0}', { status: 200 });
      return new Response('{}', { status: 500 });
    });
    renderRegister();
    expect((await screen.findByTestId('registration-closed')).textContent).toContain('Registration is closed');
    expect((screen.getByRole('button', { name: 'Create account' }) as HTMLButtonElement).disabled).toBe(true);
  });

  it('invite-only asks for the code up front; an invite link fills it in', async () => {
    vi.stubGlobal('fetch', async (url: string) => {
      if (url === '/api/v1/auth/setup') return new Response('{"needs_setup":false}', { status: 200 });
      if (url === '/api/v1/settings/public') return new Response('{"registration_mode":"invite_only","announcement":null,"currency":"usd","cny_per_usd":7.2,"quota_per_usd":500000,"invite_reward_inviter":0,"invite_reward_invitee":0}', { status: 200 });
      return new Response('{}', { status: 500 });
    });
    render(
      <MemoryRouter initialEntries={['/register?invite=ABCD-1234']}>
        <Routes>
          <Route path="/register" element={<AuthPage mode="register" />} />
        </Routes>
      </MemoryRouter>,
    );
    const field = (await screen.findByLabelText('Invite code')) as HTMLInputElement;
    expect(field.value).toBe('ABCD-1234');
    await waitFor(() => expect(field.required).toBe(true));
  });
});

describe('company directory', () => {
  it('offers the directory tab when the server has LDAP, and signs in through it', async () => {
    const bodies: Array<{ url: string; body: unknown }> = [];
    vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
      if (url === '/api/v1/auth/setup') return new Response('{"needs_setup":false}');
      if (url === '/api/v1/auth/ldap') return new Response('{"enabled":true}');
      if (url === '/api/v1/auth/phone') return new Response('{"enabled":false,"resend_after":60,"code_ttl":300}');
      if (url === '/api/v1/auth/ldap/login') {
        bodies.push({ url, body: JSON.parse(String(init.body)) });
        return new Response(JSON.stringify({ access_token: 'ldap-access', token_type: 'Bearer', expires_in: 900 }));
      }
      return new Response('{}', { status: 404 });
    });
    setLang('zh-CN');
    render(
      <MemoryRouter initialEntries={['/login?next=/keys']}>
        <Routes>
          <Route path="/login" element={<AuthPage mode="login" />} />
          <Route path="/keys" element={<p>keys page</p>} />
        </Routes>
      </MemoryRouter>,
    );
    fireEvent.click(await screen.findByRole('tab', { name: '企业账号' }));
    // A directory password is reset in the directory, not here.
    expect(screen.queryByText('忘记密码？')).toBeNull();
    fireEvent.change(screen.getByLabelText('用户名或邮箱'), { target: { value: 'ada' } });
    fireEvent.change(screen.getByLabelText('密码'), { target: { value: 'correct horse battery' } });
    fireEvent.click(screen.getByRole('button', { name: '登录' }));
    await screen.findByText('keys page');
    expect(bodies).toEqual([{ url: '/api/v1/auth/ldap/login', body: { login: 'ada', password: 'correct horse battery' } }]);
    expect(authStore.get().accessToken).toBe('ldap-access');
  });
});
