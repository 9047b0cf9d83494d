// Admin → Sign-in → Company directory: the form sends every field (group lists one DN a
// line), an empty password is left out so the stored one is kept and is never shown, and the
// connection test posts the form as it stands and shows what the directory answered.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { LdapSettingsCard, ldapFormOf, ldapUpdateOf, type LdapView } from './LdapSettings';
import { setLang } from '../../lib/settings';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  setLang('en');
});

const view: LdapView = {
  source: 'admin',
  enabled: true,
  url: 'ldaps://ldap.example.com',
  starttls: false,
  ca_pem: null,
  bind_dn: 'cn=svc,dc=example,dc=com',
  bind_password_set: true,
  base_dn: 'ou=people,dc=example,dc=com',
  user_filter: '(uid={login})',
  username_attribute: 'uid',
  email_attribute: 'mail',
  name_attribute: 'cn',
  group_base_dn: 'ou=groups,dc=example,dc=com',
  group_filter: '(member={dn})',
  admin_groups: ['cn=admins,ou=groups,dc=example,dc=com'],
  allowed_groups: [],
  timeout_secs: 10,
};

describe('LDAP settings', () => {
  it('turns the view into a form and back, the password left out when empty', () => {
    const form = ldapFormOf(view);
    expect(form.bind_password).toBe('');
    expect(form.admin_groups).toBe('cn=admins,ou=groups,dc=example,dc=com');
    const update = ldapUpdateOf({ ...form, allowed_groups: ' cn=a \n\n cn=b ', ca_pem: '  ', group_base_dn: '' });
    expect(update).toMatchObject({
      url: 'ldaps://ldap.example.com',
      bind_dn: 'cn=svc,dc=example,dc=com',
      allowed_groups: ['cn=a', 'cn=b'],
      ca_pem: null,
      group_base_dn: null,
      timeout_secs: 10,
    });
    expect('bind_password' in update).toBe(false);
    expect(ldapUpdateOf({ ...form, bind_password: 'new secret' }).bind_password).toBe('new secret');
  });

  it('saves, says the password is set without showing it, and tests the connection', async () => {
    const calls: Array<{ path: string; body: Record<string, unknown> }> = [];
    vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
      const body = init.body ? JSON.parse(String(init.body)) : {};
      calls.push({ path: url.split('?')[0], body });
      return new Response(
        JSON.stringify({
          result: 'found',
          person: { dn: 'uid=ada,ou=people,dc=example,dc=com', username: 'ada', email: 'ada@example.com', display_name: 'Ada', groups: [], role: 'admin', allowed: true },
          matches: 1,
          error: null,
        }),
      );
    });
    const apply = vi.fn(async () => {});
    render(<LdapSettingsCard view={view} origin={null} busy={false} apply={apply} />);
    const password = document.querySelector('input[name="ldap_bind_password"]') as HTMLInputElement;
    expect(password.value).toBe('');
    expect(password.type).toBe('password');
    expect(screen.getByTestId('ldap-password-set').textContent).toContain('Password set');
    fireEvent.change(document.querySelector('input[name="ldap_url"]') as HTMLInputElement, { target: { value: 'ldap://dir:389' } });
    fireEvent.click(document.querySelector('input[name="ldap_starttls"]') as HTMLInputElement);
    fireEvent.click(screen.getByRole('button', { name: 'Save' }));
    expect(apply).toHaveBeenCalledTimes(1);
    const saved = (apply.mock.calls[0] as unknown as [Record<string, Record<string, unknown>>])[0].ldap;
    expect(saved).toMatchObject({ url: 'ldap://dir:389', starttls: true });
    expect('bind_password' in saved).toBe(false);

    const testButton = screen.getByTestId('ldap-test') as HTMLButtonElement;
    expect(testButton.disabled).toBe(true);
    fireEvent.change(screen.getByRole('textbox', { name: 'Login to look up' }), { target: { value: 'ada' } });
    fireEvent.click(testButton);
    const result = await screen.findByTestId('ldap-test-result');
    expect(result.dataset.result).toBe('found');
    expect(result.textContent).toContain('ada@example.com');
    expect(calls[0].path).toBe('/api/v1/admin/sign-in/ldap/test');
    expect(calls[0].body).toMatchObject({ login: 'ada', settings: { url: 'ldap://dir:389', starttls: true } });
  });

  it('shows the directory error in Chinese', async () => {
    setLang('zh-CN');
    vi.stubGlobal('fetch', async () =>
      new Response(JSON.stringify({ result: 'tls_error', person: null, matches: null, error: 'TLS: invalid peer certificate: UnknownIssuer' })),
    );
    render(<LdapSettingsCard view={{ ...view, bind_password_set: false }} origin={null} busy={false} apply={async () => {}} />);
    expect(screen.queryByTestId('ldap-password-set')).toBeNull();
    fireEvent.change(screen.getByRole('textbox', { name: '要查找的登录名' }), { target: { value: 'ada' } });
    fireEvent.click(screen.getByTestId('ldap-test'));
    await waitFor(() => expect(screen.getByTestId('ldap-test-result').textContent).toContain('TLS 连接失败'));
    expect(screen.getByTestId('ldap-test-result').textContent).toContain('UnknownIssuer');
  });
});
