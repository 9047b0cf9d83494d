import { acceptTokens, authStore, clearSession, refreshOnce } from './auth';
import { langStore } from './settings';
import type { components } from './api-types';
import type { TokenResponse } from './types';

/** The server's error answer, as its OpenAPI document describes it (fields may be missing from
 * a proxy's or an older server's answer, hence `Partial`). */
type ErrorEnvelope = Partial<Omit<components['schemas']['ErrorEnvelope'], 'error'>> & {
  error?: Partial<Omit<components['schemas']['ErrorBody'], 'details'>> & { details?: Record<string, unknown>; request_id?: string };
};

/** An error answer from the server (or a network failure, with status 0). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly requestId: string | null,
    readonly details: Record<string, unknown> | null = null,
  ) {
    super(message);
  }
}

/** Options of [`api`]. */
export interface ApiOptions {
  method?: string;
  /** JSON-encoded, except a FormData, sent as multipart (the browser sets the boundary). */
  body?: unknown;
  /** Send the access token (default true). */
  auth?: boolean;
  signal?: AbortSignal;
  /** Return the raw Response instead of parsed JSON (streams, downloads). */
  raw?: boolean;
  /** Extra request headers (an `Idempotency-Key`). */
  headers?: Record<string, string>;
}

/** Turns a non-2xx response into an [`ApiError`], reading the error envelope. */
export async function errorFrom(res: Response): Promise<ApiError> {
  const headerId = res.headers.get('x-request-id');
  try {
    const body = (await res.json()) as ErrorEnvelope | null;
    const e = body?.error ?? {};
    return new ApiError(
      res.status,
      String(e.code ?? `http_${res.status}`),
      String(e.message ?? res.statusText),
      body?.request_id ?? e.request_id ?? headerId,
      e.details ?? null,
    );
  } catch {
    return new ApiError(res.status, `http_${res.status}`, res.statusText || `HTTP ${res.status}`, headerId);
  }
}

/** Sent on every call: the server then keeps the refresh token in its `HttpOnly` cookie (never
 * in a body a script could read), and accepts the cookie only from requests that carry it,
 * which a cross-site form cannot. */
const CSRF = { 'x-skein-csrf': '1' } as const;

async function exchange(): Promise<TokenResponse | null> {
  const res = await fetch('/api/v1/auth/refresh', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'accept-language': langStore.get(), ...CSRF },
    body: '{}',
    credentials: 'same-origin',
  });
  if (res.ok) return (await res.json()) as TokenResponse;
  if (res.status === 401 || res.status === 403 || res.status === 422) return null;
  throw await errorFrom(res);
}

/** Refreshes the session (used at start-up and after a 401). */
export function refreshSession(): Promise<boolean> {
  return refreshOnce(exchange);
}

async function send(path: string, opts: ApiOptions): Promise<Response> {
  const headers: Record<string, string> = { ...opts.headers, 'accept-language': langStore.get(), ...CSRF };
  const form = typeof FormData !== 'undefined' && opts.body instanceof FormData;
  if (opts.body !== undefined && !form) headers['content-type'] = 'application/json';
  const token = authStore.get().accessToken;
  if (opts.auth !== false && token) headers.authorization = `Bearer ${token}`;
  try {
    return await fetch(path.startsWith('/') ? path : `/api/v1/${path}`, {
      method: opts.method ?? (opts.body === undefined ? 'GET' : 'POST'),
      headers,
      body: opts.body === undefined ? undefined : form ? (opts.body as FormData) : JSON.stringify(opts.body),
      signal: opts.signal,
    });
  } catch (e) {
    if ((e as Error)?.name === 'AbortError') throw e;
    throw new ApiError(0, 'network_error', String((e as Error)?.message ?? e), null);
  }
}

/**
 * Calls the API. `path` is relative to `/api/v1/` unless it starts with `/`. A 401 triggers
 * one silent refresh and a retry; if the refresh is refused the session ends (the app then
 * shows the sign-in page, keeping drafts, which live in localStorage).
 */
export async function api<T = unknown>(path: string, opts: ApiOptions = {}): Promise<T> {
  let res = await send(path, opts);
  if (res.status === 401 && opts.auth !== false) {
    const refreshed = await refreshSession().catch(() => false);
    if (refreshed) res = await send(path, opts);
    else if (authStore.get().accessToken) clearSession('expired');
  }
  if (!res.ok) throw await errorFrom(res);
  if (opts.raw) return res as unknown as T;
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

/** What a right password answers when the account has two-factor sign-in on. */
export interface TwoFactorChallenge {
  two_factor_required: true;
  challenge: string;
  expires_in: number;
}

/** Signs in with a login and password; answers the challenge instead when a second factor is
 * needed (then [`signInSecondFactor`] finishes). */
export async function signIn(login: string, password: string): Promise<TokenResponse | TwoFactorChallenge> {
  const answer = await api<TokenResponse | TwoFactorChallenge>('auth/login', { body: { login, password }, auth: false });
  if ('two_factor_required' in answer && answer.two_factor_required) return answer;
  acceptTokens(answer as TokenResponse);
  return answer;
}

/** The second sign-in step: the challenge and a TOTP or recovery code. */
export async function signInSecondFactor(challenge: string, code: string) {
  const tokens = await api<TokenResponse>('auth/login/2fa', { body: { challenge, code: code.trim() }, auth: false });
  acceptTokens(tokens);
  return tokens;
}

/** Downloads an authenticated URL as a file. */
export async function download(path: string, filename: string) {
  const res = await api<Response>(path, { raw: true });
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
