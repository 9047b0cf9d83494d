import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { acceptTokens, authStore, clearSession, hasSession, refreshOnce, sessionMarker } from './auth';
import { adoptAccountSettings, browserLang, langStore, reloadSettings, setLang, setTheme, themeStore } from './settings';
import { createStore } from './store';
import { api, ApiError } from './api';
import type { TokenResponse } from './types';
import { en } from '../i18n/en';
import { zh } from '../i18n/zh';
import { translate, valueName } from '../i18n';
import { valueNames } from '../i18n/values';

const tokens = (n: number): TokenResponse => ({ access_token: `acc-${n}`, refresh_token: `ref-${n}`, token_type: 'Bearer', expires_in: 900 });

describe('createStore', () => {
  it('notifies subscribers on change only', () => {
    const s = createStore(1);
    const seen: number[] = [];
    const off = s.subscribe(() => seen.push(s.get()));
    s.set(2);
    s.set(2);
    s.set((v) => v + 1);
    off();
    s.set(10);
    expect(seen).toEqual([2, 3]);
  });
});

describe('auth store', () => {
  beforeEach(() => clearSession());

  it('keeps the access token in memory and no token in storage', () => {
    acceptTokens(tokens(1));
    expect(authStore.get().accessToken).toBe('acc-1');
    expect(hasSession()).toBe(true);
    const stored = JSON.stringify({ ...localStorage });
    expect(stored).not.toContain('acc-1');
    expect(stored).not.toContain('ref-1');
  });

  it('refreshes once for concurrent callers', async () => {
    acceptTokens(tokens(1));
    const exchange = vi.fn(async () => {
      await new Promise((r) => setTimeout(r, 5));
      return tokens(2);
    });
    const [a, b, c] = await Promise.all([refreshOnce(exchange), refreshOnce(exchange), refreshOnce(exchange)]);
    expect([a, b, c]).toEqual([true, true, true]);
    expect(exchange).toHaveBeenCalledTimes(1);
    expect(authStore.get().accessToken).toBe('acc-2');
  });

  it('ends the session as expired when the server refuses the cookie', async () => {
    acceptTokens(tokens(1));
    expect(await refreshOnce(async () => null)).toBe(false);
    expect(authStore.get()).toEqual({ accessToken: null, user: null, reason: 'expired' });
    expect(hasSession()).toBe(false);
  });

  it('retries once when another tab rotated the cookie meanwhile instead of giving up', async () => {
    acceptTokens(tokens(1));
    let calls = 0;
    const exchange = vi.fn(async () => {
      calls += 1;
      if (calls === 1) {
        localStorage.setItem('skein.session', 'other-tab');
        return null;
      }
      return tokens(3);
    });
    expect(await refreshOnce(exchange)).toBe(true);
    expect(exchange).toHaveBeenCalledTimes(2);
    expect(authStore.get().accessToken).toBe('acc-3');
    expect(sessionMarker()).not.toBe('other-tab');
  });

  it('does not try to refresh without a session', async () => {
    const exchange = vi.fn(async () => tokens(1));
    expect(await refreshOnce(exchange)).toBe(false);
    expect(exchange).not.toHaveBeenCalled();
  });
});

describe('api client', () => {
  afterEach(() => vi.unstubAllGlobals());

  it('refreshes silently on 401 with the cookie and the CSRF header, and retries', async () => {
    acceptTokens(tokens(1));
    const calls: Array<{ url: string; auth: string | undefined; lang: string | undefined; csrf: string | undefined; body: unknown }> = [];
    vi.stubGlobal('fetch', async (url: string, init: RequestInit) => {
      const headers = init.headers as Record<string, string>;
      calls.push({ url, auth: headers.authorization, lang: headers['accept-language'], csrf: headers['x-skein-csrf'], body: init.body });
      if (url === '/api/v1/auth/refresh') return new Response(JSON.stringify(tokens(2)), { status: 200 });
      if (headers.authorization === 'Bearer acc-1') return new Response('{"error":{"code":"token_expired","message":"x"}}', { status: 401 });
      return new Response('{"ok":true}', { status: 200 });
    });
    expect(await api('user/profile')).toEqual({ ok: true });
    expect(calls.map((c) => [c.url, c.auth])).toEqual([
      ['/api/v1/user/profile', 'Bearer acc-1'],
      ['/api/v1/auth/refresh', undefined],
      ['/api/v1/user/profile', 'Bearer acc-2'],
    ]);
    expect(calls[0].lang).toBe(langStore.get());
    expect(calls[1].csrf).toBe('1');
    expect(calls[1].body).toBe('{}');
  });

  it('turns the error envelope into an ApiError with the request id', async () => {
    vi.stubGlobal('fetch', async () =>
      new Response(JSON.stringify({ error: { code: 'email_taken', message: '邮箱已被使用' }, request_id: 'req-9' }), { status: 409 }),
    );
    const error = await api('auth/register', { body: {}, auth: false }).catch((e) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 409, code: 'email_taken', message: '邮箱已被使用', requestId: 'req-9' });
  });

  it('signs out as expired when the refresh is refused', async () => {
    acceptTokens(tokens(1));
    vi.stubGlobal('fetch', async () => new Response('{"error":{"code":"refresh_token_reused","message":"x"}}', { status: 401 }));
    await expect(api('user/profile')).rejects.toMatchObject({ status: 401 });
    expect(authStore.get().reason).toBe('expired');
  });
});

describe('settings store', () => {
  it('follows the browser language among the two the app speaks', () => {
    expect(browserLang(['zh-TW', 'en'])).toBe('zh-CN');
    expect(browserLang(['fr-FR', 'en-GB'])).toBe('en');
    expect(browserLang(['de'])).toBe('en');
  });

  it("takes the account's language and theme only where nothing was chosen on this device", () => {
    localStorage.clear();
    langStore.set('en');
    adoptAccountSettings({ language: 'zh-CN', theme: 'dark' });
    expect([langStore.get(), themeStore.get()]).toEqual(['zh-CN', 'dark']);
    setLang('en');
    setTheme('light');
    adoptAccountSettings({ language: 'zh-CN', theme: 'dark' });
    expect([langStore.get(), themeStore.get()]).toEqual(['en', 'light']);
  });

  it('remembers the chosen language and theme', () => {
    setLang('zh-CN');
    setTheme('dark');
    langStore.set('en');
    themeStore.set('light');
    reloadSettings();
    expect(langStore.get()).toBe('zh-CN');
    expect(themeStore.get()).toBe('dark');
  });
});

describe('translations', () => {
  it('has every English string in Chinese, with the same placeholders', () => {
    for (const key of Object.keys(en) as Array<keyof typeof en>) {
      expect(zh[key], key).toBeTruthy();
      const holes = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
      expect(holes(zh[key]), key).toEqual(holes(en[key]));
    }
  });

  it('names every server value in both languages, and passes unknown ones through', () => {
    expect(Object.keys(valueNames['zh-CN']).sort()).toEqual(Object.keys(valueNames.en).sort());
    expect(valueName('zh-CN', 'consume')).toBe('消费');
    expect(valueName('en', 'something_new')).toBe('something_new');
  });

  it('fills placeholders', () => {
    expect(translate('en', 'common.pageOf', { page: 2, pages: 5 })).toBe('Page 2 of 5');
    expect(translate('zh-CN', 'common.pageOf', { page: 2, pages: 5 })).toBe('第 2 / 5 页');
  });
});
