import { useEffect, useRef, useState } from 'react';
import { Link, useNavigate, useParams, useSearchParams } from 'react-router-dom';
import { api, ApiError, signInSecondFactor, type TwoFactorChallenge } from '../../lib/api';
import { acceptTokens } from '../../lib/auth';
import type { OAuthProvider, TokenResponse } from '../../lib/types';
import { useT } from '../../i18n';
import { Button, Card, ErrorText, Field, Input } from '../../components/ui';
import { usePageTitle } from '../../lib/title';

/** The enabled providers (an empty list when the server has none or cannot be reached). */
export function useOAuthProviders(): OAuthProvider[] {
  const [items, setItems] = useState<OAuthProvider[]>([]);
  useEffect(() => {
    let live = true;
    api<{ items: OAuthProvider[] }>('auth/oauth/providers', { auth: false })
      .then((r) => live && setItems(Array.isArray(r?.items) ? r.items : []))
      .catch(() => undefined);
    return () => {
      live = false;
    };
  }, []);
  return items;
}

/** Starts a sign-in (or, with `link`, linking to the signed-in account) and leaves for the
 * provider's page. The server binds the attempt to this browser with a cookie. */
export async function startOAuth(slug: string, opts: { link?: boolean; invite?: string } = {}) {
  const r = await api<{ authorize_url: string }>(`auth/oauth/${encodeURIComponent(slug)}/start`, {
    auth: !!opts.link,
    body: { link: !!opts.link, invite_code: opts.invite?.trim() || undefined },
  });
  // Only the provider's http(s) page is followed.
  if (/^https?:\/\//.test(r.authorize_url)) window.location.assign(r.authorize_url);
}

/** "Sign in with …" buttons for every configured provider; `invite` is carried through the
 * flow so a first sign-in on an invite-only server can create the account. */
export function OAuthButtons({ invite }: { invite?: string }) {
  const t = useT();
  const providers = useOAuthProviders();
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState<string | null>(null);
  if (providers.length === 0) return null;
  return (
    <div className="mt-4 space-y-2" data-testid="oauth-buttons">
      <div className="flex items-center gap-2 text-xs text-muted-fg">
        <span className="h-px flex-1 bg-border" />
        {t('oauth.or')}
        <span className="h-px flex-1 bg-border" />
      </div>
      {providers.map((p) => (
        <Button
          key={p.slug}
          variant="secondary"
          className="w-full"
          disabled={busy !== null}
          onClick={async () => {
            setBusy(p.slug);
            setError(null);
            try {
              await startOAuth(p.slug, { invite });
            } catch (err) {
              setError(err);
              setBusy(null);
            }
          }}
        >
          {t('oauth.signInWith', { name: p.name })}
        </Button>
      ))}
      <ErrorText error={error} />
    </div>
  );
}

type CallbackAnswer = TokenResponse | TwoFactorChallenge | { linked: { provider_name: string } };

/** `/oauth/callback/:slug`: where the provider sends the browser back. Posts the code and
 * state to the server, then signs in, asks for the second factor, or reports the link. */
export function OAuthCallbackPage() {
  const t = useT();
  const navigate = useNavigate();
  const { slug = '' } = useParams();
  const [params] = useSearchParams();
  const [error, setError] = useState<unknown>(null);
  const [challenge, setChallenge] = useState<string | null>(null);
  const [code, setCode] = useState('');
  const [busy, setBusy] = useState(false);
  const sent = useRef(false);
  usePageTitle(t('oauth.finishing'), t('app.name'));
  useEffect(() => {
    // The code works once: never post it twice (React's development double effects).
    if (sent.current) return;
    sent.current = true;
    (async () => {
      try {
        const answer = await api<CallbackAnswer>(`auth/oauth/${encodeURIComponent(slug)}/callback`, {
          auth: false,
          body: {
            state: params.get('state') ?? '',
            code: params.get('code') ?? undefined,
            error: params.get('error') ?? undefined,
          },
        });
        if ('linked' in answer) {
          navigate('/settings?linked=1', { replace: true });
        } else if ('two_factor_required' in answer) {
          setChallenge(answer.challenge);
        } else {
          acceptTokens(answer);
          navigate('/chat', { replace: true });
        }
      } catch (err) {
        setError(err);
      }
    })();
  }, [slug, params, navigate]);
  const needsInvite = error instanceof ApiError && (error.code === 'invite_code_required' || error.code === 'invalid_invite_code');
  return (
    <main className="flex min-h-full flex-col items-center justify-center gap-6 p-4">
      <Card className="w-full max-w-sm space-y-3 p-6" data-testid="oauth-callback">
        <h1 className="text-lg font-semibold">{t('oauth.finishing')}</h1>
        {challenge ? (
          <form
            className="space-y-3"
            onSubmit={async (e) => {
              e.preventDefault();
              setBusy(true);
              setError(null);
              try {
                await signInSecondFactor(challenge, code);
                navigate('/chat', { replace: true });
              } catch (err) {
                if (err instanceof ApiError && err.code === 'invalid_challenge') setChallenge(null);
                setError(err);
              } finally {
                setBusy(false);
              }
            }}
          >
            <p className="text-sm text-muted-fg">{t('auth.twoFactorHint')}</p>
            <Field label={t('auth.twoFactorTitle')}>
              <Input name="code" inputMode="numeric" autoComplete="one-time-code" autoFocus required value={code} onChange={(e) => setCode(e.target.value)} />
            </Field>
            <ErrorText error={error} />
            <Button type="submit" className="w-full" disabled={busy}>
              {t('auth.signIn')}
            </Button>
          </form>
        ) : error ? (
          <>
            <ErrorText error={error} />
            {needsInvite && <p className="text-sm text-muted-fg">{t('oauth.inviteHint')}</p>}
            <Link className="text-sm text-primary hover:underline" to={needsInvite ? '/register' : '/login'}>
              {t('oauth.back')}
            </Link>
          </>
        ) : (
          <p className="text-sm text-muted-fg">{t('common.loading')}</p>
        )}
      </Card>
    </main>
  );
}
