import { createStore, storage } from './store';
import type { Profile, TokenResponse } from './types';

/** A marker (not a secret) that this browser holds a session cookie; it changes on every
 * refresh, so a tab whose refresh was refused can tell another tab rotated the cookie. */
const SESSION_KEY = 'skein.session';
/** Where older versions kept the refresh token itself; removed on sight. */
const LEGACY_REFRESH_KEY = 'skein.refresh';

/** Who is signed in. The access token lives only in memory; the refresh token is an
 * `HttpOnly` cookie the server sets on `/api/v1/auth`, which no script here can read, so a
 * reload signs back in silently without any token in `localStorage`. */
export interface AuthState {
  accessToken: string | null;
  user: Profile | null;
  /** `expired` when a session ended on its own (the sign-in page says so), `signed-out` after
   * the user signed out (the next sign-in starts fresh instead of returning to the last page). */
  reason: 'expired' | 'signed-out' | null;
}

/** The session store. */
export const authStore = createStore<AuthState>({ accessToken: null, user: null, reason: null });

storage.set(LEGACY_REFRESH_KEY, null);

/** The current session marker, or null when this browser holds no session. */
export function sessionMarker(): string | null {
  return storage.get(SESSION_KEY);
}

/** Whether a silent refresh is worth trying (a session cookie was set here). */
export function hasSession(): boolean {
  return sessionMarker() !== null;
}

/** Takes the tokens of a sign-in, registration or refresh (the refresh token stays in its
 * cookie; the body carries none). */
export function acceptTokens(tokens: TokenResponse) {
  storage.set(SESSION_KEY, `${Date.now()}-${Math.random().toString(36).slice(2)}`);
  authStore.set((s) => ({ accessToken: tokens.access_token, user: tokens.user ?? s.user, reason: null }));
}

/** Replaces the signed-in user's profile (after an edit). */
export function setUser(user: Profile) {
  authStore.set((s) => ({ ...s, user }));
}

/** Forgets the session (sign-out, or a refresh the server refused). */
export function clearSession(reason: AuthState['reason'] = null) {
  storage.set(SESSION_KEY, null);
  authStore.set({ accessToken: null, user: null, reason });
}

let inflight: Promise<boolean> | null = null;

/**
 * Exchanges the refresh cookie for new tokens, once for all concurrent callers. `exchange` does
 * the HTTP call and answers null when the server refuses. Across tabs the Web Locks API
 * serialises refreshes; if another tab rotated the cookie meanwhile, one retry uses the new one.
 */
export function refreshOnce(exchange: () => Promise<TokenResponse | null>): Promise<boolean> {
  if (inflight) return inflight;
  const run = async (): Promise<boolean> => {
    for (let attempt = 0; attempt < 2; attempt++) {
      const marker = sessionMarker();
      if (!marker) return false;
      const tokens = await exchange();
      if (tokens) {
        acceptTokens(tokens);
        return true;
      }
      // Refused: unless another tab refreshed meanwhile, the session is over.
      if (sessionMarker() === marker) break;
    }
    clearSession('expired');
    return false;
  };
  const locks = globalThis.navigator?.locks;
  const started: Promise<boolean> = locks ? locks.request('skein-refresh', () => run()).then((ok) => ok) : run();
  const shared = started.finally(() => {
    inflight = null;
  });
  inflight = shared;
  return shared;
}
