// Admin → Sign-in: methods switch on and off with one PUT each, the SMS form sends only what
// was typed (an empty secret keeps the stored one), the secret is never shown, verification
// is locked without mail, and the page reads in both languages.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { SignInSettingsPage, smsFormOf, smsUpdateOf, type AdminSignIn } from './SignInSettings';
import { setLang } from '../../lib/settings';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  setLang('en');
});

const methods = { password: true, verified_email_for_login: false, verified_email_for_relay: false, passkeys: true };
const base: AdminSignIn = {
  values: methods,
  defaults: methods,
  overridden: ['sign_in.sms'],
  sms: {
    provider: 'twilio',
    source: 'admin',
    settings: { account_sid: 'AC0000', from: '+15005550006', brand: 'Skein', endpoint: 'https://api.twilio.com' },
    secret_set: true,
    secret_field: 'auth_token',
  },
  mail_enabled: false,
  ldap: {
    source: 'config',
    enabled: false,
    url: '',
    starttls: false,
    ca_pem: null,
    bind_dn: null,
    bind_password_set: false,
    base_dn: '',
    user_filter: '(&(objectClass=inetOrgPerson)(|(uid={login})(mail={login})))',
    username_attribute: 'uid',
    email_attribute: 'mail',
    name_attribute: 'cn',
    group_base_dn: null,
    group_filter: '(&(objectClass=groupOfNames)(member={dn}))',
    admin_groups: [],
    allowed_groups: [],
    timeout_secs: 10,
  },
};

type Call = { method: string; path: string; body: Record<string, unknown> | undefined };

function stub(data: AdminSignIn) {
  const calls: Call[] = [];
  vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
    const method = init.method ?? 'GET';
    const path = url.split('?')[0];
    const body = init.body ? JSON.parse(String(init.body)) : undefined;
    calls.push({ method, path, body });
    if (path === '/api/v1/admin/sign-in' && method === 'PUT') {
      const next = { ...data, values: { ...data.values, ...(body ?? {}) } };
      delete (next.values as Record<string, unknown>).sms;
      return new Response(JSON.stringify(next));
    }
    if (path === '/api/v1/admin/sign-in') return new Response(JSON.stringify(data));
    if (path === '/api/v1/admin/oauth/providers') return new Response(JSON.stringify({ items: [] }));
    return new Response('{}', { status: 404 });
  });
  return calls;
}

function show() {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <QueryClientProvider client={client}>
      <SignInSettingsPage />
    </QueryClientProvider>,
  );
}

describe('sign-in settings', () => {
  it('builds the SMS update from what was typed', () => {
    expect(smsUpdateOf('', {})).toEqual({ provider: null });
    // Empty secret and optional fields are left out: the server keeps the secret, defaults the rest.
    expect(smsUpdateOf('twilio', { account_sid: ' AC1 ', auth_token: '', from: '+1', brand: '', stray: 'x' })).toEqual({
      provider: 'twilio',
      settings: { account_sid: 'AC1', from: '+1' },
    });
    expect(smsUpdateOf('log', { account_sid: 'AC1' })).toEqual({ provider: 'log', settings: {} });
    expect(smsFormOf(base.sms)).toEqual({ provider: 'twilio', fields: base.sms.settings });
  });

  it('switches a method with one PUT, never shows the secret, and saves the vendor', async () => {
    const calls = stub(base);
    show();
    const password = (await screen.findByRole('checkbox', { name: /Password/ })) as HTMLInputElement;
    expect(password.checked).toBe(true);
    fireEvent.click(password);
    await waitFor(() => expect(calls.some((c) => c.method === 'PUT')).toBe(true));
    expect(calls.find((c) => c.method === 'PUT')?.body).toEqual({ password: false });

    // Verification needs mail: locked, and says why.
    expect((screen.getByRole('checkbox', { name: /to sign in/ }) as HTMLInputElement).disabled).toBe(true);
    expect(screen.getAllByText(/configure \[mail\]/).length).toBe(2);

    // The secret field is empty (never shown) and says the saved one is kept.
    const token = document.querySelector('input[name="auth_token"]') as HTMLInputElement;
    expect(token.value).toBe('');
    expect(token.type).toBe('password');
    expect(screen.getByText(/Leave empty to keep it/)).toBeTruthy();
    fireEvent.change(document.querySelector('input[name="from"]') as HTMLInputElement, { target: { value: '+15005550007' } });
    const smsForm = within(screen.getByTestId('sms-settings'));
    fireEvent.click(smsForm.getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(calls.filter((c) => c.method === 'PUT').length).toBe(2));
    expect(calls.filter((c) => c.method === 'PUT')[1].body).toEqual({
      sms: { provider: 'twilio', settings: { account_sid: 'AC0000', from: '+15005550007', brand: 'Skein', endpoint: 'https://api.twilio.com' } },
    });
    // "Reset" for the stored vendor.
    fireEvent.click(smsForm.getByRole('button', { name: 'Reset' }));
    await waitFor(() => expect(calls.filter((c) => c.method === 'PUT').length).toBe(3));
    expect(calls.filter((c) => c.method === 'PUT')[2].body).toEqual({ reset: ['sign_in.sms'] });
  });

  it('warns about the log vendor and shows each vendor its own fields, in Chinese', async () => {
    setLang('zh-CN');
    stub({ ...base, sms: { provider: null, source: 'config', settings: null, secret_set: false, secret_field: null } });
    show();
    const vendor = (await screen.findByRole('combobox', { name: '短信服务商' })) as HTMLSelectElement;
    expect(vendor.value).toBe('');
    fireEvent.change(vendor, { target: { value: 'aliyun' } });
    expect(document.querySelector('input[name="access_key_secret"]')).toBeTruthy();
    expect(document.querySelector('input[name="auth_token"]')).toBeNull();
    fireEvent.change(vendor, { target: { value: 'log' } });
    expect(screen.getByText(/切勿用于生产环境/)).toBeTruthy();
    expect(screen.getByText('登录方式')).toBeTruthy();
  });
});
