import { useCallback, useEffect, useState } from 'react';
import { api } from '../../lib/api';
import { authStore, setUser } from '../../lib/auth';
import { useStore } from '../../lib/store';
import type { Profile, SessionView } from '../../lib/types';
import { useT } from '../../i18n';
import { Badge, Button, Card, CopyButton, ErrorText, Field, Input, PasswordInput } from '../../components/ui';
import { toast } from '../../components/ui/toast';

/** A short, readable name for a user agent ("Chrome on Android"), or the raw text. */
export function deviceName(ua: string | null | undefined): string {
  if (!ua) return '—';
  const browser = /Edg\//.test(ua)
    ? 'Edge'
    : /Firefox\//.test(ua)
      ? 'Firefox'
      : /Chrome\//.test(ua)
        ? 'Chrome'
        : /Safari\//.test(ua)
          ? 'Safari'
          : null;
  const os = /Android/.test(ua)
    ? 'Android'
    : /iPhone|iPad/.test(ua)
      ? 'iOS'
      : /Windows/.test(ua)
        ? 'Windows'
        : /Mac OS X/.test(ua)
          ? 'macOS'
          : /Linux/.test(ua)
            ? 'Linux'
            : null;
  if (browser && os) return `${browser} · ${os}`;
  return ua.length > 48 ? `${ua.slice(0, 48)}…` : ua;
}

/** The account's email: verification state, resend, and a change of address. */
export function EmailCard() {
  const t = useT();
  const { user } = useStore(authStore);
  const [form, setForm] = useState({ email: '', password: '' });
  const [error, setError] = useState<unknown>(null);
  const [changing, setChanging] = useState(false);
  return (
    <Card className="space-y-3">
      <h2 className="font-semibold">{t('security.email')}</h2>
      <div className="flex flex-wrap items-center gap-2 text-sm">
        <span className="break-all">{user?.email ?? t('security.noEmail')}</span>
        {user?.email &&
          (user.email_verified ? (
            <Badge tone="ok">{t('security.verified')}</Badge>
          ) : (
            <Badge tone="danger">{t('security.unverified')}</Badge>
          ))}
        {user?.email && !user.email_verified && (
          <Button
            size="sm"
            variant="secondary"
            onClick={async () => {
              setError(null);
              try {
                await api('user/email/verification', { method: 'POST', body: {} });
                toast(t('security.verificationSent'));
              } catch (err) {
                setError(err);
              }
            }}
          >
            {t('security.resend')}
          </Button>
        )}
        {!changing && (
          <Button size="sm" variant="ghost" onClick={() => setChanging(true)}>
            {t('security.changeEmail')}
          </Button>
        )}
      </div>
      {changing && (
        <form
          className="space-y-3"
          onSubmit={async (e) => {
            e.preventDefault();
            setError(null);
            try {
              await api('user/email', { method: 'PUT', body: { email: form.email.trim(), current_password: form.password } });
              setForm({ email: '', password: '' });
              setChanging(false);
              toast(t('security.changeSent'));
            } catch (err) {
              setError(err);
            }
          }}
        >
          <Field label={t('security.newEmail')} hint={t('security.changeHint')}>
            <Input type="email" autoComplete="email" required value={form.email} onChange={(e) => setForm({ ...form, email: e.target.value })} />
          </Field>
          <Field label={t('settings.currentPassword')}>
            <PasswordInput autoComplete="current-password" required value={form.password} onChange={(e) => setForm({ ...form, password: e.target.value })} />
          </Field>
          <div className="flex gap-2">
            <Button type="submit">{t('security.sendLink')}</Button>
            <Button variant="ghost" onClick={() => setChanging(false)}>
              {t('common.cancel')}
            </Button>
          </div>
        </form>
      )}
      <ErrorText error={error} />
    </Card>
  );
}

/** Two-factor sign-in: set-up (secret and otpauth URI), confirmation, recovery codes, off. */
export function TwoFactorCard() {
  const t = useT();
  const { user } = useStore(authStore);
  const [status, setStatus] = useState<{ enabled: boolean; recovery_codes_left: number; required: boolean } | null>(null);
  const [setup, setSetup] = useState<{ secret: string; otpauth_uri: string } | null>(null);
  const [codes, setCodes] = useState<string[] | null>(null);
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [error, setError] = useState<unknown>(null);
  const load = useCallback(() => {
    api<{ enabled: boolean; recovery_codes_left: number; required: boolean }>('user/2fa').then(setStatus, setError);
  }, []);
  useEffect(load, [load]);
  const refreshProfile = () => api<Profile>('user/profile').then(setUser, () => undefined);
  const run = async (fn: () => Promise<void>) => {
    setError(null);
    try {
      await fn();
    } catch (err) {
      setError(err);
    }
  };
  const enabled = status?.enabled ?? user?.two_factor_enabled ?? false;
  return (
    <Card className="space-y-3" data-testid="two-factor">
      <div className="flex flex-wrap items-center gap-2">
        <h2 className="font-semibold">{t('security.twoFactor')}</h2>
        <Badge tone={enabled ? 'ok' : 'neutral'}>{enabled ? t('security.on') : t('security.off')}</Badge>
        {status?.required && !enabled && <Badge tone="danger">{t('security.requiredForAdmins')}</Badge>}
      </div>
      <p className="text-sm text-muted-fg">{t('security.twoFactorHint')}</p>
      {codes && (
        <div className="space-y-2 rounded-md border border-border p-3">
          <p className="text-sm font-medium">{t('security.recoveryCodes')}</p>
          <p className="text-sm text-muted-fg">{t('security.recoveryHint')}</p>
          <ul className="grid grid-cols-2 gap-1 font-mono text-sm" data-testid="recovery-codes">
            {codes.map((c) => (
              <li key={c}>{c}</li>
            ))}
          </ul>
          <div className="flex gap-2">
            <CopyButton text={codes.join('\n')} />
            <Button size="sm" variant="ghost" onClick={() => setCodes(null)}>
              {t('security.savedCodes')}
            </Button>
          </div>
        </div>
      )}
      {!enabled && !setup && (
        <form
          className="flex flex-wrap items-end gap-2"
          onSubmit={(e) => {
            e.preventDefault();
            run(async () => {
              setSetup(await api<{ secret: string; otpauth_uri: string }>('user/2fa/totp/setup', { body: { password } }));
              setPassword('');
            });
          }}
        >
          <div className="min-w-0 flex-1">
            <Field label={t('auth.password')}>
              <PasswordInput autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />
            </Field>
          </div>
          <Button type="submit">{t('security.setUp')}</Button>
        </form>
      )}
      {!enabled && setup && (
        <form
          className="space-y-3"
          onSubmit={(e) => {
            e.preventDefault();
            run(async () => {
              const r = await api<{ recovery_codes: string[] }>('user/2fa/totp/enable', { body: { code } });
              setCodes(r.recovery_codes);
              setSetup(null);
              setCode('');
              load();
              refreshProfile();
            });
          }}
        >
          <p className="text-sm">{t('security.scanHint')}</p>
          <Field label={t('security.secret')}>
            <div className="flex gap-2">
              <Input readOnly className="font-mono" value={setup.secret} data-testid="totp-secret" />
              <CopyButton text={setup.secret} />
            </div>
          </Field>
          <Field label={t('security.uri')}>
            <div className="flex gap-2">
              <Input readOnly className="font-mono text-xs" value={setup.otpauth_uri} />
              <CopyButton text={setup.otpauth_uri} />
            </div>
          </Field>
          <Field label={t('security.code')}>
            <Input inputMode="numeric" autoComplete="one-time-code" required value={code} onChange={(e) => setCode(e.target.value)} />
          </Field>
          <Button type="submit">{t('security.confirm')}</Button>
        </form>
      )}
      {enabled && (
        <form
          className="space-y-3"
          onSubmit={(e) => {
            e.preventDefault();
            run(async () => {
              await api('user/2fa/totp/disable', { body: { password, code } });
              setPassword('');
              setCode('');
              load();
              refreshProfile();
              toast(t('security.turnedOff'));
            });
          }}
        >
          <p className="text-sm text-muted-fg">{t('security.codesLeft', { n: status?.recovery_codes_left ?? 0 })}</p>
          <div className="grid gap-2 sm:grid-cols-2">
            <Field label={t('auth.password')}>
              <PasswordInput autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />
            </Field>
            <Field label={t('security.codeOrRecovery')}>
              <Input autoComplete="one-time-code" required value={code} onChange={(e) => setCode(e.target.value)} />
            </Field>
          </div>
          <Button type="submit" variant="danger">
            {t('security.turnOff')}
          </Button>
        </form>
      )}
      <ErrorText error={error} />
    </Card>
  );
}

/** The account's signed-in devices, with revoke and "sign out everywhere else". */
export function SessionsCard() {
  const t = useT();
  const [items, setItems] = useState<SessionView[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const load = useCallback(() => {
    api<{ items: SessionView[] }>('user/sessions').then((r) => setItems(r.items), setError);
  }, []);
  useEffect(load, [load]);
  return (
    <Card className="space-y-3" data-testid="sessions">
      <div className="flex flex-wrap items-center justify-between gap-2">
        <h2 className="font-semibold">{t('security.sessions')}</h2>
        <Button
          size="sm"
          variant="secondary"
          disabled={!items || items.length < 2}
          onClick={async () => {
            setError(null);
            try {
              const r = await api<{ revoked_sessions: number }>('user/sessions/revoke-others', { body: {} });
              toast(t('security.revokedOthers', { n: r.revoked_sessions }));
              load();
            } catch (err) {
              setError(err);
            }
          }}
        >
          {t('security.revokeOthers')}
        </Button>
      </div>
      <ul className="divide-y divide-border">
        {(items ?? []).map((s) => (
          <li key={s.id} className="flex flex-wrap items-center justify-between gap-2 py-2 text-sm">
            <div className="min-w-0">
              <div className="flex items-center gap-2 font-medium">
                <span className="truncate" title={s.user_agent ?? ''}>
                  {deviceName(s.user_agent)}
                </span>
                {s.current && <Badge tone="primary">{t('security.thisDevice')}</Badge>}
              </div>
              <div className="text-muted-fg">
                {s.ip ?? '—'} · {t('security.lastSeen', { time: new Date(s.last_seen_at).toLocaleString() })}
              </div>
            </div>
            {!s.current && (
              <Button
                size="sm"
                variant="ghost"
                onClick={async () => {
                  setError(null);
                  try {
                    await api(`user/sessions/${encodeURIComponent(s.id)}`, { method: 'DELETE' });
                    load();
                  } catch (err) {
                    setError(err);
                  }
                }}
              >
                {t('security.revoke')}
              </Button>
            )}
          </li>
        ))}
      </ul>
      <ErrorText error={error} />
    </Card>
  );
}
