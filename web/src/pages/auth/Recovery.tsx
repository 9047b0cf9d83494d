import { useEffect, useRef, useState } from 'react';
import { Link, useSearchParams } from 'react-router-dom';
import { api } from '../../lib/api';
import { useT } from '../../i18n';
import { Button, Card, ErrorText, Field, Input, PasswordInput } from '../../components/ui';
import { usePageTitle } from '../../lib/title';
import { LangThemePickers } from './Auth';

/** The frame of the public account pages: logo, one card, the pickers. */
function PublicCard({ title, children }: { title: string; children: React.ReactNode }) {
  const t = useT();
  usePageTitle(title, t('app.name'));
  return (
    <main className="flex min-h-full flex-col items-center justify-center gap-6 p-4">
      <div className="text-center">
        <img src="/favicon.svg" alt="" className="mx-auto mb-2 h-10 w-10" />
        <h1 className="text-2xl font-semibold">{t('app.name')}</h1>
      </div>
      <Card className="w-full max-w-sm p-6">
        <h2 className="mb-4 text-lg font-semibold">{title}</h2>
        {children}
        <p className="mt-4 text-center text-sm">
          <Link className="text-primary hover:underline" to="/login">
            {t('recovery.backToSignIn')}
          </Link>
        </p>
      </Card>
      <LangThemePickers />
    </main>
  );
}

/** "Forgot password": asks for the address and always answers the same (no enumeration). */
export function ForgotPasswordPage() {
  const t = useT();
  const [email, setEmail] = useState('');
  const [sent, setSent] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  return (
    <PublicCard title={t('recovery.forgotTitle')}>
      {sent ? (
        <p className="rounded-md bg-muted px-3 py-2 text-sm" data-testid="reset-sent">
          {t('recovery.sent')}
        </p>
      ) : (
        <form
          className="space-y-3"
          onSubmit={async (e) => {
            e.preventDefault();
            setBusy(true);
            setError(null);
            try {
              await api('auth/password/forgot', { auth: false, body: { email: email.trim() } });
              setSent(true);
            } catch (err) {
              setError(err);
            } finally {
              setBusy(false);
            }
          }}
        >
          <p className="text-sm text-muted-fg">{t('recovery.forgotHint')}</p>
          <Field label={t('auth.email')}>
            <Input name="email" type="email" autoComplete="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
          </Field>
          <ErrorText error={error} />
          <Button type="submit" className="w-full" disabled={busy}>
            {t('recovery.sendLink')}
          </Button>
        </form>
      )}
    </PublicCard>
  );
}

/** The page the reset mail links to: a new password for the token in the address. */
export function ResetPasswordPage() {
  const t = useT();
  const [params] = useSearchParams();
  const token = params.get('token') ?? '';
  const [password, setPassword] = useState('');
  const [done, setDone] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  return (
    <PublicCard title={t('recovery.resetTitle')}>
      {done ? (
        <p className="rounded-md bg-muted px-3 py-2 text-sm" data-testid="reset-done">
          {t('recovery.resetDone')}
        </p>
      ) : (
        <form
          className="space-y-3"
          onSubmit={async (e) => {
            e.preventDefault();
            setBusy(true);
            setError(null);
            try {
              await api('auth/password/reset', { auth: false, body: { token, new_password: password } });
              setDone(true);
            } catch (err) {
              setError(err);
            } finally {
              setBusy(false);
            }
          }}
        >
          <Field label={t('settings.newPassword')} hint={t('auth.passwordHint')}>
            <PasswordInput name="new_password" autoComplete="new-password" required value={password} onChange={(e) => setPassword(e.target.value)} />
          </Field>
          <p className="text-sm text-muted-fg">{t('recovery.resetHint')}</p>
          <ErrorText error={error} />
          <Button type="submit" className="w-full" disabled={busy || !token}>
            {t('recovery.setPassword')}
          </Button>
        </form>
      )}
    </PublicCard>
  );
}

/** The page the verification mail links to: posts the token once (a GET never verifies, so a
 * mail scanner opening the link changes nothing). */
export function VerifyEmailPage() {
  const t = useT();
  const [params] = useSearchParams();
  const token = params.get('token') ?? '';
  const [state, setState] = useState<{ email?: string; error?: unknown }>({});
  const asked = useRef(false);
  useEffect(() => {
    if (asked.current || !token) return;
    asked.current = true;
    api<{ email: string }>('auth/verify-email', { auth: false, body: { token } }).then(
      (r) => setState({ email: r.email }),
      (error) => setState({ error }),
    );
  }, [token]);
  return (
    <PublicCard title={t('recovery.verifyTitle')}>
      {state.email ? (
        <p className="rounded-md bg-muted px-3 py-2 text-sm" data-testid="verify-done">
          {t('recovery.verified', { email: state.email })}
        </p>
      ) : state.error || !token ? (
        <ErrorText error={state.error ?? new Error(t('recovery.noToken'))} />
      ) : (
        <p className="text-sm text-muted-fg">{t('common.loading')}</p>
      )}
    </PublicCard>
  );
}
