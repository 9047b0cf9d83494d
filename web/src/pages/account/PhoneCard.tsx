import { useState } from 'react';
import { api } from '../../lib/api';
import { authStore, setUser } from '../../lib/auth';
import { useStore } from '../../lib/store';
import type { Profile } from '../../lib/types';
import { useT } from '../../i18n';
import { Badge, Button, Card, ErrorText, Field, Input } from '../../components/ui';
import { normalizePhone, useCountdown, usePhoneSignIn } from '../auth/Phone';

/** The personal centre's phone card: the bound number, binding (or replacing) one with an SMS
 * code, and removing it. Hidden when the server sends no SMS and the account has no number. */
export function PhoneCard() {
  const t = useT();
  const state = usePhoneSignIn();
  const { user } = useStore(authStore);
  const [phone, setPhone] = useState('');
  const [code, setCode] = useState('');
  const [sent, setSent] = useState<string | null>(null);
  const [left, setLeft] = useCountdown();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const current = user?.phone ?? null;
  if (!state?.enabled && !current) return null;

  const run = async (step: () => Promise<void>) => {
    setError(null);
    setBusy(true);
    try {
      await step();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Card className="space-y-3" data-testid="phone-card">
      <h2 className="font-semibold">{t('phone.title')}</h2>
      {current ? (
        <div className="flex flex-wrap items-center justify-between gap-2 text-sm">
          <div className="flex items-center gap-2">
            <span className="break-all font-medium" data-testid="phone-current">{current}</span>
            <Badge tone="ok">{t('phone.verified')}</Badge>
          </div>
          <Button
            size="sm"
            variant="ghost"
            disabled={busy}
            onClick={() =>
              run(async () => {
                await api('user/phone', { method: 'DELETE' });
                setUser(await api<Profile>('user/profile'));
              })
            }
          >
            {t('phone.remove')}
          </Button>
        </div>
      ) : (
        <p className="text-sm text-muted-fg">{t('phone.none')}</p>
      )}
      {state?.enabled && (
        <form
          className="space-y-3"
          onSubmit={(e) => {
            e.preventDefault();
            run(async () => {
              const profile = await api<Profile>('user/phone', { method: 'PUT', body: { phone: normalizePhone(phone), code: code.trim() } });
              setUser(profile);
              setPhone('');
              setCode('');
              setSent(null);
            });
          }}
        >
          <div className="flex items-end gap-2">
            <div className="min-w-0 flex-1">
              <Field label={current ? t('phone.replace') : t('phone.bind')}>
                <Input name="phone" type="tel" autoComplete="tel" value={phone} onChange={(e) => setPhone(e.target.value)} placeholder="+86 138 0013 8000" />
              </Field>
            </div>
            <Button
              type="button"
              variant="secondary"
              disabled={busy || left > 0 || phone.trim() === ''}
              onClick={() =>
                run(async () => {
                  const r = await api<{ phone: string; resend_after: number }>('user/phone/code', { body: { phone: normalizePhone(phone) } });
                  setSent(r.phone);
                  setLeft(r.resend_after || state.resend_after);
                })
              }
            >
              {left > 0 ? t('phone.resendIn', { n: left }) : t('phone.sendCode')}
            </Button>
          </div>
          <p className="text-xs text-muted-fg">{t('phone.numberHint')}</p>
          {sent && (
            <>
              <p className="rounded-md bg-muted px-3 py-2 text-sm">{t('phone.sentTo', { phone: sent })}</p>
              <Field label={t('phone.code')}>
                <Input name="code" inputMode="numeric" autoComplete="one-time-code" maxLength={6} value={code} onChange={(e) => setCode(e.target.value)} />
              </Field>
              <Button type="submit" disabled={busy || code.trim().length !== 6}>
                {t('phone.confirm')}
              </Button>
            </>
          )}
        </form>
      )}
      <ErrorText error={error} />
    </Card>
  );
}
