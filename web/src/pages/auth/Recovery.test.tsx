import { afterEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import { MemoryRouter, Route, Routes } from 'react-router-dom';
import { AuthPage } from './Auth';
import { ForgotPasswordPage, ResetPasswordPage, VerifyEmailPage } from './Recovery';
import { deviceName } from '../account/Security';
import { authStore, clearSession } from '../../lib/auth';
import { setLang } from '../../lib/settings';

afterEach(() => {
  vi.unstubAllGlobals();
  clearSession();
  setLang('en');
});

function at(path: string, element: React.ReactNode, route = path.split('?')[0]) {
  return render(
    <MemoryRouter initialEntries={[path]}>
      <Routes>
        <Route path={route} element={element} />
        <Route path="/chat" element={<p>chat page</p>} />
      </Routes>
    </MemoryRouter>,
  );
}

describe('sign-in with a second factor', () => {
  it('asks for the code after the password, then signs in with the challenge', async () => {
    const bodies: Array<Record<string, unknown>> = [];
    vi.stubGlobal('fetch', async (url: string, init: RequestInit) => {
      if (url === '/api/v1/auth/setup') return new Response('{"needs_setup":false}', { status: 200 });
      bodies.push({ url, ...JSON.parse(String(init.body)) });
      if (url === '/api/v1/auth/login') {
        return new Response(JSON.stringify({ two_factor_required: true, challenge: 'skc_1', expires_in: 300 }), { status: 200 });
      }
      return new Response(JSON.stringify({ access_token: 'a', token_type: 'Bearer', expires_in: 900 }), { status: 200 });
    });
    at('/login', <AuthPage mode="login" />);
    fireEvent.change(screen.getByLabelText('Username or email'), { target: { value: 'ada' } });
    fireEvent.change(screen.getByLabelText('Password'), { target: { value: 'correct horse battery' } });
    fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    const code = await screen.findByLabelText('Two-factor sign-in');
    expect(authStore.get().accessToken).toBeNull();
    fireEvent.change(code, { target: { value: ' 123456 ' } });
    fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    await screen.findByText('chat page');
    expect(bodies[1]).toEqual({ url: '/api/v1/auth/login/2fa', challenge: 'skc_1', code: '123456' });
    await waitFor(() => expect(authStore.get().accessToken).toBe('a'));
  });

  it('links to the forgotten-password page', () => {
    vi.stubGlobal('fetch', async () => new Response('{"needs_setup":false}', { status: 200 }));
    at('/login', <AuthPage mode="login" />);
    expect(screen.getByRole('link', { name: 'Forgot password?' }).getAttribute('href')).toBe('/forgot-password');
  });
});

describe('password reset and verification pages', () => {
  it('answers the same whatever the address, in Chinese too', async () => {
    const sent: string[] = [];
    vi.stubGlobal('fetch', async (_url: string, init: RequestInit) => {
      sent.push(String(init.body));
      return new Response('{"accepted":true}', { status: 202 });
    });
    setLang('zh-CN');
    at('/forgot-password', <ForgotPasswordPage />);
    fireEvent.change(screen.getByLabelText('邮箱'), { target: { value: ' ada@example.com ' } });
    fireEvent.click(screen.getByRole('button', { name: '发送链接' }));
    expect((await screen.findByTestId('reset-sent')).textContent).toContain('如果有账号使用此地址');
    expect(JSON.parse(sent[0])).toEqual({ email: 'ada@example.com' });
  });

  it('sends the token from the link with the new password, and shows a used link as an error', async () => {
    vi.stubGlobal('fetch', async (_url: string, init: RequestInit) => {
      const body = JSON.parse(String(init.body));
      if (body.token !== 'skl_good') {
        return new Response(JSON.stringify({ error: { code: 'invalid_link', message: 'This link is unknown, already used or expired.' } }), { status: 400 });
      }
      return new Response('{"revoked_sessions":2}', { status: 200 });
    });
    at('/reset-password?token=skl_good', <ResetPasswordPage />);
    fireEvent.change(screen.getByLabelText('New password'), { target: { value: 'a brand new secret' } });
    fireEvent.click(screen.getByRole('button', { name: 'Set the new password' }));
    await screen.findByTestId('reset-done');
  });

  it('verifies once on opening and says when a link is used up', async () => {
    let calls = 0;
    vi.stubGlobal('fetch', async () => {
      calls += 1;
      return new Response(JSON.stringify({ error: { code: 'invalid_link', message: 'This link is unknown, already used or expired.' } }), { status: 400 });
    });
    at('/verify-email?token=skl_used', <VerifyEmailPage />);
    await screen.findByText(/already used or expired/);
    expect(calls).toBe(1);
  });
});

describe('device names', () => {
  it('reads the usual user agents and shortens the rest', () => {
    expect(deviceName('Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0 Mobile Safari/537.36')).toBe('Chrome · Android');
    expect(deviceName('Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15')).toBe('Safari · macOS');
    expect(deviceName('curl/8.5.0')).toBe('curl/8.5.0');
    expect(deviceName(null)).toBe('—');
  });
});
