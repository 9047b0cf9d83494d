import { createStore, storage } from './store';
import type { Profile, TokenResponse } from './types';

const REFRESH_KEY = 'skein.refresh';

/** Who is signed in. The access token lives only in memory; the refresh token is kept so a
 * reload can sign back in silently (it rotates on every use). */
export interface AuthState {
  accessToken: string | null;
  user: Profile | null;
  /** `expired` when a session ended on its own (the sign-in page says so), `signed-out` after
   * the user signed out (the next sign-in starts fresh instead of returning to the last page). */
  reason: 'expired' | 'signed-out' | null;
}

/** The session store. */
export const authStore = createStore<AuthState>({ accessToken: null, user: null, reason: null });

/** The stored refresh token, if any. */
export function refreshToken(): string | null {
  return storage.get(REFRESH_KEY);
}

/** Takes the tokens of a sign-in, registration or refresh. */
export function acceptTokens(tokens: TokenResponse) {
  storage.set(REFRESH_KEY, tokens.refresh_token);
  authStore.set((s) => ({ accessToken: tokens.access_token, user: tokens.user ?? s.user, reason: null }));
}

/** Replaces the signed-in user's profile (after an edit). */
export function setUser(user: Profile) {
  authStore.set((s) => ({ ...s, user }));
}

/** Forgets the session (sign-out, or a refresh the server refused). */
export function clearSession(reason: AuthState['reason'] = null) {
  storage.set(REFRESH_KEY, null);
  authStore.set({ accessToken: null, user: null, reason });
}

let inflight: Promise<boolean> | null = null;

/**
 * Exchanges the refresh token for new tokens, once for all concurrent callers. `exchange` does
 * the HTTP call and answers null when the server refuses the token. Across tabs the Web Locks
 * API serialises refreshes; a token another tab rotated meanwhile is re-read, not reused.
 */
export function refreshOnce(exchange: (token: string) => Promise<TokenResponse | null>): Promise<boolean> {
  if (inflight) return inflight;
  const run = async (): Promise<boolean> => {
    for (let attempt = 0; attempt < 2; attempt++) {
      const token = refreshToken();
      if (!token) return false;
      const tokens = await exchange(token);
      if (tokens) {
        acceptTokens(tokens);
        return true;
      }
      // Refused: unless another tab stored a newer token meanwhile, the session is over.
      if (refreshToken() === token) break;
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
