// Passkeys in the web app, with the API and navigator.credentials mocked: the base64url
// conversions, Settings → Passkeys (list, add through the browser's dialog, remove), "Sign in
// with a passkey", and a passkey answering the second sign-in step.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import { MemoryRouter, Route, Routes } from 'react-router-dom';
import { AuthPage } from './Auth';
import { PasskeysCard } from '../account/Passkeys';
import { creationOptions, fromB64url, requestOptions, toB64url } from '../../lib/passkey';
import { authStore, clearSession } from '../../lib/auth';
import { setLang } from '../../lib/settings';

const bytes = (...b: number[]) => new Uint8Array(b).buffer;

/** A credential as a browser hands it over (only what the app reads). */
function fakeCredential(kind: 'create' | 'get') {
  const response =
    kind === 'create'
      ? { clientDataJSON: bytes(1, 2), attestationObject: bytes(3, 4, 5) }
      : { clientDataJSON: bytes(1), authenticatorData: bytes(2), signature: bytes(255, 254), userHandle: bytes(9) };
  return { id: 'AQI', rawId: bytes(1, 2), type: 'public-key', response };
}

const publicSettings = (passkeys: boolean, password = true) =>
  JSON.stringify({
    registration_mode: 'open',
    announcement: null,
    currency: 'usd',
    cny_per_usd: 7.2,
    quota_per_usd: 500000,
    invite_reward_inviter: 0,
    invite_reward_invitee: 0,
    sign_in: { password, phone: false, passkeys, verified_email_for_login: false },
  });

const getOptions = { publicKey: { challenge: 'Y2hhbGxlbmdl', rpId: 'skein.test', timeout: 300000, userVerification: 'preferred', allowCredentials: [] } };

let credentials: { create: ReturnType<typeof vi.fn>; get: ReturnType<typeof vi.fn> };

beforeEach(() => {
  credentials = { create: vi.fn(async () => fakeCredential('create')), get: vi.fn(async () => fakeCredential('get')) };
  vi.stubGlobal('PublicKeyCredential', function PublicKeyCredential() {});
  Object.defineProperty(navigator, 'credentials', { value: credentials, configurable: true });
});

afterEach(() => {
  vi.unstubAllGlobals();
  clearSession();
  setLang('en');
});

describe('passkey conversions', () => {
  it('round-trips base64url and turns options into what the browser takes', () => {
    expect(toB64url(fromB64url('_-8AAQ'))).toBe('_-8AAQ');
    expect(Array.from(new Uint8Array(fromB64url('AQID')))).toEqual([1, 2, 3]);
    const create = creationOptions({
      publicKey: {
        challenge: 'AQID',
        rp: { id: 'skein.test', name: 'Skein' },
        user: { id: 'dXNlcg', name: 'ada', displayName: 'Ada' },
        pubKeyCredParams: [{ type: 'public-key', alg: -7 }],
        timeout: 1000,
        attestation: 'none',
        excludeCredentials: [{ type: 'public-key', id: 'BAU' }],
        authenticatorSelection: { residentKey: 'required' },
      },
    });
    expect(new TextDecoder().decode(create.publicKey!.user.id as ArrayBuffer)).toBe('user');
    expect(Array.from(new Uint8Array(create.publicKey!.excludeCredentials![0].id as ArrayBuffer))).toEqual([4, 5]);
    const get = requestOptions(getOptions as never);
    expect(new TextDecoder().decode(get.publicKey!.challenge as ArrayBuffer)).toBe('challenge');
  });
});

describe('settings: passkeys', () => {
  it('lists, adds through the browser, and removes', async () => {
    const calls: Array<{ method: string; path: string; body?: Record<string, unknown> }> = [];
    let items = [{ id: 'pk1', name: 'Phone', algorithm: 'ES256', created_at: '2026-01-02T00:00:00Z', last_used_at: null }];
    vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
      const method = init.method ?? 'GET';
      const body = init.body ? JSON.parse(String(init.body)) : undefined;
      calls.push({ method, path: url, body });
      if (url === '/api/v1/user/passkeys' && method === 'GET') return new Response(JSON.stringify({ items, enabled: true }));
      if (url === '/api/v1/user/passkeys/options')
        return new Response(JSON.stringify({ publicKey: { challenge: 'AQID', rp: { id: 'skein.test', name: 'Skein' }, user: { id: 'dQ', name: 'ada', displayName: 'Ada' }, pubKeyCredParams: [], timeout: 1, attestation: 'none', excludeCredentials: [], authenticatorSelection: {} } }));
      if (url === '/api/v1/user/passkeys' && method === 'POST') {
        items = [...items, { id: 'pk2', name: body.name, algorithm: 'ES256', created_at: '2026-01-03T00:00:00Z', last_used_at: null }];
        return new Response(JSON.stringify(items[1]), { status: 201 });
      }
      if (url === '/api/v1/user/passkeys/pk1' && method === 'DELETE') {
        items = items.filter((p) => p.id !== 'pk1');
        return new Response(null, { status: 204 });
      }
      return new Response('{}', { status: 404 });
    });
    vi.stubGlobal('confirm', () => true);
    render(<PasskeysCard />);
    expect(await screen.findByText('Phone')).toBeTruthy();
    fireEvent.change(screen.getByLabelText('Name (optional)'), { target: { value: 'Laptop' } });
    fireEvent.click(screen.getByRole('button', { name: 'Add a passkey' }));
    expect(await screen.findByText('Laptop')).toBeTruthy();
    expect(credentials.create).toHaveBeenCalledOnce();
    const added = calls.find((c) => c.method === 'POST' && c.path === '/api/v1/user/passkeys');
    expect(added?.body).toEqual({ name: 'Laptop', credential: { id: 'AQI', rawId: 'AQI', type: 'public-key', response: { clientDataJSON: 'AQI', attestationObject: 'AwQF' } } });
    fireEvent.click(screen.getByRole('button', { name: 'Remove Phone' }));
    await waitFor(() => expect(screen.queryByText('Phone')).toBeNull());
  });

  it('says nothing went wrong when the person cancels the dialog, in Chinese', async () => {
    setLang('zh-CN');
    credentials.create.mockRejectedValueOnce(new DOMException('cancelled', 'NotAllowedError'));
    vi.stubGlobal('fetch', async (url: string) => {
      if (url === '/api/v1/user/passkeys') return new Response(JSON.stringify({ items: [], enabled: true }));
      return new Response(JSON.stringify({ publicKey: { challenge: 'AQID', rp: { id: 'x', name: 'x' }, user: { id: 'dQ', name: 'a', displayName: 'a' }, pubKeyCredParams: [], timeout: 1, attestation: 'none', excludeCredentials: [], authenticatorSelection: {} } }));
    });
    render(<PasskeysCard />);
    expect(await screen.findByText('还没有通行密钥。')).toBeTruthy();
    fireEvent.click(screen.getByRole('button', { name: '添加通行密钥' }));
    await waitFor(() => expect(credentials.create).toHaveBeenCalledOnce());
    expect(screen.queryByRole('alert')).toBeNull();
  });
});

function renderLogin() {
  return render(
    <MemoryRouter initialEntries={['/login?next=/keys']}>
      <Routes>
        <Route path="/login" element={<AuthPage mode="login" />} />
        <Route path="/keys" element={<p>keys page</p>} />
      </Routes>
    </MemoryRouter>,
  );
}

describe('sign-in with a passkey', () => {
  it('signs in without a username when the server offers passkeys', async () => {
    const bodies: Record<string, unknown>[] = [];
    vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
      if (url === '/api/v1/auth/setup') return new Response('{"needs_setup":false}');
      if (url === '/api/v1/settings/public') return new Response(publicSettings(true));
      if (url === '/api/v1/auth/phone') return new Response('{"enabled":false,"resend_after":60,"code_ttl":300}');
      if (url === '/api/v1/auth/oauth/providers') return new Response('{"items":[]}');
      if (url === '/api/v1/auth/passkey/options') return new Response(JSON.stringify(getOptions));
      if (url === '/api/v1/auth/passkey/login') {
        bodies.push(JSON.parse(String(init.body)));
        return new Response(JSON.stringify({ access_token: 'pk-access', token_type: 'Bearer', expires_in: 900 }));
      }
      return new Response('{}', { status: 404 });
    });
    renderLogin();
    fireEvent.click(await screen.findByRole('button', { name: 'Sign in with a passkey' }));
    await screen.findByText('keys page');
    expect(authStore.get().accessToken).toBe('pk-access');
    expect(credentials.get).toHaveBeenCalledOnce();
    expect(bodies[0]).toEqual({ credential: { id: 'AQI', rawId: 'AQI', type: 'public-key', response: { clientDataJSON: 'AQ', authenticatorData: 'Ag', signature: '__4', userHandle: 'CQ' } } });
  });

  it('hides the button when passkeys are off, and answers the second step with a passkey', async () => {
    vi.stubGlobal('fetch', async (url: string) => {
      if (url === '/api/v1/auth/setup') return new Response('{"needs_setup":false}');
      if (url === '/api/v1/settings/public') return new Response(publicSettings(false));
      if (url === '/api/v1/auth/phone') return new Response('{"enabled":false,"resend_after":60,"code_ttl":300}');
      if (url === '/api/v1/auth/oauth/providers') return new Response('{"items":[]}');
      if (url === '/api/v1/auth/login') return new Response(JSON.stringify({ two_factor_required: true, challenge: 'skc_1', expires_in: 300, methods: ['passkey'] }));
      if (url === '/api/v1/auth/login/2fa/passkey/options') return new Response(JSON.stringify(getOptions));
      if (url === '/api/v1/auth/login/2fa/passkey') return new Response(JSON.stringify({ access_token: 'step-access', token_type: 'Bearer', expires_in: 900 }));
      return new Response('{}', { status: 404 });
    });
    renderLogin();
    await screen.findByLabelText('Password');
    await waitFor(() => expect(screen.queryByRole('button', { name: 'Sign in with a passkey' })).toBeNull());
    fireEvent.change(screen.getByLabelText('Username or email'), { target: { value: 'ada' } });
    fireEvent.change(screen.getByLabelText('Password'), { target: { value: 'correct horse battery' } });
    fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    // Only a passkey answers this account's step: no code field.
    fireEvent.click(await screen.findByRole('button', { name: 'Use a passkey' }));
    await screen.findByText('keys page');
    expect(screen.queryByLabelText('Two-factor sign-in')).toBeNull();
    expect(authStore.get().accessToken).toBe('step-access');
  });
});
