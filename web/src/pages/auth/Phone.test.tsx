import { afterEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import { MemoryRouter, Route, Routes } from 'react-router-dom';
import { AuthPage } from './Auth';
import { normalizePhone } from './Phone';
import { authStore, clearSession } from '../../lib/auth';
import { setLang } from '../../lib/settings';

afterEach(() => {
  vi.unstubAllGlobals();
  clearSession();
  setLang('en');
});

describe('normalizePhone', () => {
  it('drops separators and reads 00 as +', () => {
    expect(normalizePhone(' +86 138-0013.8000 ')).toBe('+8613800138000');
    expect(normalizePhone('0044 (20) 7946 0958')).toBe('+442079460958');
    expect(normalizePhone('13800138000')).toBe('13800138000');
  });
});

describe('the phone tab', () => {
  it('sends a code, signs in with it and goes on, in Chinese', async () => {
    const calls: Array<{ url: string; body: unknown }> = [];
    vi.stubGlobal('fetch', async (url: string, init: RequestInit) => {
      if (url === '/api/v1/auth/setup') return new Response('{"needs_setup":false}', { status: 200 });
      if (url === '/api/v1/auth/phone') return new Response('{"enabled":true,"resend_after":60,"code_ttl":300}', { status: 200 });
      calls.push({ url, body: JSON.parse(String(init.body)) });
      if (url === '/api/v1/auth/phone/code') {
        return new Response('{"sent":true,"phone":"+86*******8000","expires_in":300,"resend_after":60}', { status: 202 });
      }
      return new Response(JSON.stringify({ access_token: 'p1', token_type: 'Bearer', expires_in: 900 }), { status: 201 });
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
    fireEvent.click(await screen.findByRole('tab', { name: '手机号' }));
    fireEvent.change(screen.getByLabelText('手机号'), { target: { value: '+86 138 0013 8000' } });
    fireEvent.click(screen.getByRole('button', { name: '获取验证码' }));
    await screen.findByText('已向 +86*******8000 发送 6 位验证码。');
    expect((screen.getByRole('button', { name: /秒后重发/ }) as HTMLButtonElement).disabled).toBe(true);
    fireEvent.change(screen.getByLabelText('短信验证码'), { target: { value: '123456' } });
    fireEvent.click(screen.getByRole('button', { name: '登录' }));
    await screen.findByText('keys page');
    expect(calls).toEqual([
      { url: '/api/v1/auth/phone/code', body: { phone: '+8613800138000' } },
      { url: '/api/v1/auth/phone/login', body: { phone: '+8613800138000', code: '123456', language: 'zh-CN' } },
    ]);
    await waitFor(() => expect(authStore.get().accessToken).toBe('p1'));
  });

  it('is not offered when the server sends no SMS', async () => {
    vi.stubGlobal('fetch', async (url: string) => {
      if (url === '/api/v1/auth/phone') return new Response('{"enabled":false,"resend_after":60,"code_ttl":300}', { status: 200 });
      return new Response('{"needs_setup":false}', { status: 200 });
    });
    render(
      <MemoryRouter initialEntries={['/login']}>
        <Routes>
          <Route path="/login" element={<AuthPage mode="login" />} />
        </Routes>
      </MemoryRouter>,
    );
    await screen.findByLabelText('Username or email');
    await new Promise((r) => setTimeout(r, 20));
    expect(screen.queryByRole('tab', { name: 'Phone' })).toBeNull();
  });
});
