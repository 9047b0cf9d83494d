import { useEffect, useState } from 'react';
import { api, ApiError } from '../../lib/api';
import { acceptTokens } from '../../lib/auth';
import { langStore } from '../../lib/settings';
import type { TokenResponse } from '../../lib/types';
import { useT } from '../../i18n';
import { Button, ErrorText, Field, Input } from '../../components/ui';

/** What `GET /auth/phone` answers. */
export interface PhoneState {
  enabled: boolean;
  resend_after: number;
  code_ttl: number;
}

/** Whether this server signs people in by SMS code (false until the server says). */
export function usePhoneSignIn(): PhoneState | null {
  const [state, setState] = useState<PhoneState | null>(null);
  useEffect(() => {
    let live = true;
    api<PhoneState>('auth/phone', { auth: false })
      .then((s) => live && setState(s))
      .catch(() => undefined);
    return () => {
      live = false;
    };
  }, []);
  return state;
}

/** What people type, made E.164 the way the server reads it: spaces, dashes, dots and
 * brackets dropped, a leading 00 read as +. Anything else is left for the server to refuse. */
export function normalizePhone(input: string): string {
  const cleaned = input.trim().replace(/[\s\-.()]/g, '');
  return cleaned.startsWith('00') ? `+${cleaned.slice(2)}` : cleaned;
}

/** Seconds left before another code may be asked, counting down once a second. */
export function useCountdown(): [number, (secs: number) => void] {
  const [left, setLeft] = useState(0);
  useEffect(() => {
    if (left <= 0) return;
    const id = setTimeout(() => setLeft((s) => s - 1), 1000);
    return () => clearTimeout(id);
  }, [left]);
  return [left, setLeft];
}

/** The sign-in page's phone tab: a number, "send code", the code, and (for a new account on
 * an invite-only server) an invite code. A two-factor account continues with `onChallenge`. */
export function PhoneSignInForm({
  mode,
  resendAfter,
  onChallenge,
  onDone,
}: {
  mode: 'login' | 'register';
  resendAfter: number;
  onChallenge: (challenge: string) => void;
  onDone: () => void;
}) {
  const t = useT();
  const [phone, setPhone] = useState('');
  const [code, setCode] = useState('');
  const [invite, setInvite] = useState('');
  const [showInvite, setShowInvite] = useState(mode === 'register');
  const [sent, setSent] = useState<string | null>(null);
  const [left, setLeft] = useCountdown();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const send = async () => {
    setError(null);
    setBusy(true);
    try {
      const r = await api<{ phone: string; resend_after: number }>('auth/phone/code', { auth: false, body: { phone: normalizePhone(phone) } });
      setSent(r.phone);
      setLeft(r.resend_after || resendAfter);
    } catch (err) {
      if (err instanceof ApiError && err.status === 429) setLeft(resendAfter);
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setError(null);
    setBusy(true);
    try {
      const answer = await api<TokenResponse | { two_factor_required: true; challenge: string }>('auth/phone/login', {
        auth: false,
        body: {
          phone: normalizePhone(phone),
          code: code.trim(),
          invite_code: invite.trim() || undefined,
          language: langStore.get(),
        },
      });
      if ('two_factor_required' in answer) {
        onChallenge(answer.challenge);
        return;
      }
      acceptTokens(answer);
      onDone();
    } catch (err) {
      if (err instanceof ApiError && (err.code === 'invite_code_required' || err.code === 'invalid_invite_code')) setShowInvite(true);
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="space-y-3" onSubmit={submit} data-testid="phone-form">
      <div className="flex items-end gap-2">
        <div className="min-w-0 flex-1">
          <Field label={t('phone.number')}>
            <Input name="phone" type="tel" autoComplete="tel" required value={phone} onChange={(e) => setPhone(e.target.value)} placeholder="+86 138 0013 8000" />
          </Field>
        </div>
        <Button type="button" variant="secondary" disabled={busy || left > 0 || phone.trim() === ''} onClick={send}>
          {left > 0 ? t('phone.resendIn', { n: left }) : sent ? t('phone.resend') : t('phone.sendCode')}
        </Button>
      </div>
      <p className="text-xs text-muted-fg">{t('phone.numberHint')}</p>
      {sent && <p className="rounded-md bg-muted px-3 py-2 text-sm" data-testid="phone-sent">{t('phone.sentTo', { phone: sent })}</p>}
      <Field label={t('phone.code')}>
        <Input name="code" inputMode="numeric" autoComplete="one-time-code" maxLength={6} required value={code} onChange={(e) => setCode(e.target.value)} />
      </Field>
      {showInvite ? (
        <Field label={`${t('auth.inviteCode')} (${t('phone.newAccountsOnly')})`}>
          <Input name="invite_code" value={invite} onChange={(e) => setInvite(e.target.value)} />
        </Field>
      ) : (
        <button type="button" className="text-sm text-primary hover:underline" onClick={() => setShowInvite(true)}>
          {t('auth.haveInvite')}
        </button>
      )}
      <p className="text-xs text-muted-fg">{t('phone.signUpHint')}</p>
      <ErrorText error={error} />
      <Button type="submit" className="w-full" disabled={busy || code.trim().length !== 6}>
        {mode === 'login' ? t('auth.signIn') : t('auth.register')}
      </Button>
    </form>
  );
}
