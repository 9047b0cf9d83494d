import { useEffect, useState } from 'react';
import { Link, Navigate, useNavigate, useSearchParams } from 'react-router-dom';
import { api, ApiError, signIn, signInSecondFactor } from '../../lib/api';
import { acceptTokens, authStore } from '../../lib/auth';
import { langStore, setLang, setTheme, themeStore, type Lang, type Theme } from '../../lib/settings';
import { useStore } from '../../lib/store';
import type { PublicSettings, TokenResponse } from '../../lib/types';
import { useT } from '../../i18n';
import { Button, Card, ErrorText, Field, Input, PasswordInput, Select } from '../../components/ui';
import { usePageTitle } from '../../lib/title';
import { registrationProblems } from '../../lib/validate';
import { OAuthButtons } from './OAuth';
import { PhoneSignInForm, usePhoneSignIn } from './Phone';
import { PasskeySecondFactorButton, PasskeySignInButton } from './Passkey';

/** Language and theme pickers (also on the sign-in page, before any account exists). */
export function LangThemePickers() {
  const t = useT();
  const lang = useStore(langStore);
  const theme = useStore(themeStore);
  return (
    <div className="flex gap-2">
      <Select aria-label={t('settings.language')} value={lang} onChange={(e) => setLang(e.target.value as Lang)}>
        <option value="en">English</option>
        <option value="zh-CN">简体中文</option>
      </Select>
      <Select aria-label={t('settings.theme')} value={theme} onChange={(e) => setTheme(e.target.value as Theme)}>
        <option value="system">{t('theme.system')}</option>
        <option value="light">{t('theme.light')}</option>
        <option value="dark">{t('theme.dark')}</option>
      </Select>
    </div>
  );
}

/** Only same-origin app paths are followed after sign-in. */
function safeNext(next: string | null) {
  return next && next.startsWith('/') && !next.startsWith('//') ? next : '/chat';
}

/** Sign-in and registration. */
export function AuthPage({ mode }: { mode: 'login' | 'register' }) {
  const t = useT();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const { accessToken, reason } = useStore(authStore);
  usePageTitle(mode === 'login' ? t('auth.signIn') : t('auth.register'), t('app.name'));
  // An invite link (`/register?invite=CODE`) fills the code in.
  const [form, setForm] = useState({ login: '', username: '', email: '', password: '', invite: params.get('invite') ?? '', setup: '' });
  const [showInvite, setShowInvite] = useState(() => !!params.get('invite'));
  // The registration mode an admin set: invite-only asks for the code up front; closed says so.
  // (A plain effect, as for the setup state: this page runs before the app's query cache matters.)
  const [registration, setRegistration] = useState<PublicSettings['registration_mode'] | null>(null);
  // The sign-in methods an admin turned on (Admin → Sign-in); unknown until the server says.
  const [methods, setMethods] = useState<PublicSettings['sign_in'] | null>(null);
  useEffect(() => {
    let live = true;
    api<PublicSettings>('settings/public', { auth: false })
      .then((r) => {
        if (!live) return;
        setRegistration(r.registration_mode);
        setMethods(r.sign_in ?? null);
      })
      .catch(() => undefined);
    return () => {
      live = false;
    };
  }, []);
  // While the server has no account, the first registration needs the setup token it logged.
  const [needsSetup, setNeedsSetup] = useState(false);
  useEffect(() => {
    let live = true;
    api<{ needs_setup: boolean }>('auth/setup', { auth: false })
      .then((r) => live && setNeedsSetup(r.needs_setup))
      .catch(() => undefined);
    return () => {
      live = false;
    };
  }, [mode]);
  const [error, setError] = useState<unknown>(null);
  // Each field's problem: from the browser's check (after a first submit, live as the user
  // types) and from the server's `details.errors`, which names every field that failed.
  const [checked, setChecked] = useState(false);
  const [serverFields, setServerFields] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  // After a right password on an account with two-factor sign-in: the code step.
  const [challenge, setChallenge] = useState<string | null>(null);
  // What answers that step (`totp`, `passkey`), when the answer said; unknown: both offered.
  const [stepMethods, setStepMethods] = useState<string[] | null>(null);
  const [code, setCode] = useState('');
  // Registration on a server that verifies addresses first: the mail is on its way.
  const [pendingEmail, setPendingEmail] = useState<string | null>(null);
  // Password or SMS code, when the server sends SMS codes.
  const phoneState = usePhoneSignIn();
  const [chosen, setMethod] = useState<'password' | 'phone' | 'ldap' | null>(null);
  // Sign-in with the company directory, when the server has one.
  const [ldapEnabled, setLdapEnabled] = useState(false);
  useEffect(() => {
    let live = true;
    if (mode !== 'login') return;
    api<{ enabled: boolean }>('auth/ldap', { auth: false })
      .then((r) => live && setLdapEnabled(r.enabled))
      .catch(() => undefined);
    return () => {
      live = false;
    };
  }, [mode]);
  // With passwords off for plain users, the phone tab comes first (admins still have theirs).
  const passwordOff = methods?.password === false;
  const method = chosen ?? (passwordOff && phoneState?.enabled ? 'phone' : 'password');
  const next = safeNext(params.get('next'));
  if (accessToken) return <Navigate to={next} replace />;

  const set = (k: keyof typeof form) => (e: React.ChangeEvent<HTMLInputElement>) => {
    setForm({ ...form, [k]: e.target.value });
    if (k in serverFields) setServerFields(Object.fromEntries(Object.entries(serverFields).filter(([f]) => f !== k)));
  };
  const problems = mode === 'register' ? registrationProblems(form) : {};
  const fieldError = (field: 'username' | 'email' | 'password') => {
    const p = checked ? problems[field] : undefined;
    return p ? t(p.key, p.vars) : serverFields[field];
  };

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    if (mode === 'register') {
      setChecked(true);
      if (Object.keys(problems).length > 0) return;
    }
    setBusy(true);
    setError(null);
    setServerFields({});
    try {
      if (mode === 'login' && challenge) {
        await signInSecondFactor(challenge, code);
      } else if (mode === 'login' && method === 'ldap') {
        const answer = await api<TokenResponse | { two_factor_required: true; challenge: string; methods?: string[] }>('auth/ldap/login', {
          auth: false,
          body: { login: form.login.trim(), password: form.password },
        });
        if ('two_factor_required' in answer) {
          setStepMethods(answer.methods ?? null);
          setChallenge(answer.challenge);
          return;
        }
        acceptTokens(answer);
      } else if (mode === 'login') {
        const answer = await signIn(form.login.trim(), form.password);
        if ('two_factor_required' in answer) {
          setStepMethods((answer as { methods?: string[] }).methods ?? null);
          setChallenge(answer.challenge);
          return;
        }
      } else {
        const tokens = await api<TokenResponse | { verification_required: true }>('auth/register', {
          auth: false,
          body: {
            username: form.username.trim() || undefined,
            email: form.email.trim() || undefined,
            password: form.password,
            invite_code: form.invite.trim() || undefined,
            setup_token: form.setup.trim() || undefined,
            language: langStore.get(),
          },
        });
        if ('verification_required' in tokens) {
          setPendingEmail(form.email.trim());
          return;
        }
        acceptTokens(tokens);
      }
      navigate(next, { replace: true });
    } catch (err) {
      if (err instanceof ApiError && (err.code === 'invite_code_required' || err.code === 'invalid_invite_code')) {
        setShowInvite(true);
      }
      if (err instanceof ApiError && err.code === 'setup_token_required') setNeedsSetup(true);
      // A dead challenge (expired, used, too many wrong codes) starts sign-in over.
      if (err instanceof ApiError && err.code === 'invalid_challenge') setChallenge(null);
      const listed = err instanceof ApiError && Array.isArray(err.details?.errors) ? (err.details.errors as Array<{ field?: string; message?: string }>) : [];
      const byField = Object.fromEntries(listed.filter((f) => f.field && f.message).map((f) => [f.field, f.message]));
      setServerFields(byField as Record<string, string>);
      // Errors shown at their fields are not repeated above the button.
      setError(Object.keys(byField).length > 0 ? null : err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="flex min-h-full flex-col items-center justify-center gap-6 p-4">
      <div className="text-center">
        <img src="/favicon.svg" alt="" className="mx-auto mb-2 h-10 w-10" />
        <h1 className="text-2xl font-semibold">{t('app.name')}</h1>
        <p className="text-sm text-muted-fg">{t('auth.tagline')}</p>
      </div>
      <Card className="w-full max-w-sm p-6">
        <h2 className="mb-4 text-lg font-semibold">{mode === 'login' ? t('auth.signIn') : t('auth.register')}</h2>
        {reason === 'expired' && mode === 'login' && (
          <p className="mb-3 rounded-md bg-muted px-3 py-2 text-sm">{t('auth.expired')}</p>
        )}
        {needsSetup && mode === 'login' && (
          <p className="mb-3 rounded-md bg-muted px-3 py-2 text-sm" data-testid="setup-hint">
            {t('auth.noAccountYet')}{' '}
            <Link className="text-primary underline underline-offset-2" to={`/register?next=${encodeURIComponent(next)}`}>
              {t('auth.register')}
            </Link>
          </p>
        )}
        {pendingEmail && (
          <p className="mb-3 rounded-md bg-muted px-3 py-2 text-sm" data-testid="verify-pending">
            {t('auth.verifyFirst', { email: pendingEmail })}
          </p>
        )}
        {!challenge && !needsSetup && (phoneState?.enabled || (ldapEnabled && mode === 'login')) && (
          <div className={`mb-3 grid gap-1 rounded-md bg-muted p-1 text-sm ${phoneState?.enabled && ldapEnabled && mode === 'login' ? 'grid-cols-3' : 'grid-cols-2'}`} role="tablist" data-testid="method-tabs">
            {(['password', 'phone', 'ldap'] as const)
              .filter((m) => m === 'password' || (m === 'phone' ? !!phoneState?.enabled : ldapEnabled && mode === 'login'))
              .map((m) => (
              <button
                key={m}
                type="button"
                role="tab"
                aria-selected={method === m}
                className={`rounded px-3 py-1.5 ${method === m ? 'bg-card font-medium shadow-sm' : 'text-muted-fg'}`}
                onClick={() => setMethod(m)}
              >
                {m === 'password' ? t(passwordOff ? 'auth.withPasswordAdmins' : 'auth.withPassword') : m === 'phone' ? t('auth.withPhone') : t('auth.withDirectory')}
              </button>
            ))}
          </div>
        )}
        {challenge ? (
          <div className="space-y-3">
            {(!stepMethods || stepMethods.includes('totp')) && (
              <form className="space-y-3" onSubmit={submit}>
                <p className="text-sm text-muted-fg">{t('auth.twoFactorHint')}</p>
                <Field label={t('auth.twoFactorTitle')}>
                  <Input name="code" inputMode="numeric" autoComplete="one-time-code" autoFocus required value={code} onChange={(e) => setCode(e.target.value)} />
                </Field>
                <ErrorText error={error} />
                <Button type="submit" className="w-full" disabled={busy}>
                  {t('auth.signIn')}
                </Button>
              </form>
            )}
            {(!stepMethods || stepMethods.includes('passkey')) && (
              <>
                {stepMethods && !stepMethods.includes('totp') && <p className="text-sm text-muted-fg">{t('passkeys.stepHint')}</p>}
                <PasskeySecondFactorButton challenge={challenge} onDone={() => navigate(next, { replace: true })} />
              </>
            )}
          </div>
        ) : method === 'phone' && phoneState?.enabled && !needsSetup ? (
          <PhoneSignInForm
            mode={mode}
            resendAfter={phoneState.resend_after}
            onChallenge={setChallenge}
            onDone={() => navigate(next, { replace: true })}
          />
        ) : mode === 'register' && passwordOff && !needsSetup ? null : (
        <form className="space-y-3" onSubmit={submit} noValidate={mode === 'register'}>
          {mode === 'login' ? (
            <Field label={t('auth.login')}>
              <Input name="login" autoComplete="username" required value={form.login} onChange={set('login')} />
            </Field>
          ) : (
            <>
              <Field label={t('auth.username')} error={fieldError('username')}>
                <Input name="username" autoComplete="username" aria-invalid={!!fieldError('username')} value={form.username} onChange={set('username')} />
              </Field>
              <Field label={`${t('auth.email')} (${t('common.optional')})`} error={fieldError('email')}>
                <Input name="email" type="email" autoComplete="email" aria-invalid={!!fieldError('email')} value={form.email} onChange={set('email')} />
              </Field>
            </>
          )}
          <Field label={t('auth.password')} hint={mode === 'register' ? t('auth.passwordHint') : undefined} error={mode === 'register' ? fieldError('password') : undefined}>
            <PasswordInput
              name="password"
              aria-invalid={mode === 'register' && !!fieldError('password')}
              autoComplete={mode === 'login' ? 'current-password' : 'new-password'}
              required
              value={form.password}
              onChange={set('password')}
            />
          </Field>
          {mode === 'register' && needsSetup && (
            <>
              <p className="rounded-md bg-muted px-3 py-2 text-sm" data-testid="setup-hint">
                {t('auth.setupHint')}
              </p>
              <Field label={t('auth.setupToken')}>
                <Input name="setup_token" autoComplete="off" required value={form.setup} onChange={set('setup')} />
              </Field>
            </>
          )}
          {mode === 'register' && !needsSetup && registration === 'closed' && (
            <p className="rounded-md bg-muted px-3 py-2 text-sm" role="status" data-testid="registration-closed">
              {t('auth.registrationClosed')}
            </p>
          )}
          {mode === 'register' &&
            !needsSetup &&
            (showInvite || registration === 'invite_only' ? (
              <Field label={t('auth.inviteCode')}>
                <Input name="invite_code" value={form.invite} onChange={set('invite')} autoFocus required={registration === 'invite_only'} />
              </Field>
            ) : (
              <button type="button" className="text-sm text-primary hover:underline" onClick={() => setShowInvite(true)}>
                {t('auth.haveInvite')}
              </button>
            ))}
          <ErrorText error={error} />
          <Button type="submit" className="w-full" disabled={busy || (mode === 'register' && !needsSetup && registration === 'closed')}>
            {mode === 'login' ? t('auth.signIn') : t('auth.register')}
          </Button>
          {mode === 'login' && method !== 'ldap' && (
            <p className="text-right text-sm">
              <Link className="text-primary hover:underline" to="/forgot-password">
                {t('auth.forgot')}
              </Link>
            </p>
          )}
        </form>
        )}
        {mode === 'login' && !challenge && !needsSetup && methods?.passkeys && (
          <PasskeySignInButton
            onChallenge={(c) => {
              setStepMethods(['totp']);
              setChallenge(c);
            }}
            onDone={() => navigate(next, { replace: true })}
          />
        )}
        {mode === 'register' && passwordOff && !needsSetup && (
          <p className="mt-3 rounded-md bg-muted px-3 py-2 text-sm" data-testid="password-off">
            {t('auth.passwordRegistrationOff')}
          </p>
        )}
        {!challenge && !needsSetup && <OAuthButtons invite={mode === 'register' ? form.invite : undefined} />}
        <p className="mt-4 text-center text-sm text-muted-fg">
          {mode === 'login' ? t('auth.noAccount') : t('auth.haveAccount')}{' '}
          <Link className="text-primary underline underline-offset-2" to={`${mode === 'login' ? '/register' : '/login'}?next=${encodeURIComponent(next)}`}>
            {mode === 'login' ? t('auth.register') : t('auth.signIn')}
          </Link>
        </p>
      </Card>
      <LangThemePickers />
    </main>
  );
}
