import { useState } from 'react';
import { api } from '../../lib/api';
import { acceptTokens } from '../../lib/auth';
import { cancelled, getPasskey, passkeysSupported, type RequestOptionsJSON } from '../../lib/passkey';
import type { TokenResponse } from '../../lib/types';
import { useT } from '../../i18n';
import { Button, ErrorText } from '../../components/ui';

type Answer = TokenResponse | { two_factor_required: true; challenge: string };

/** "Sign in with a passkey": the browser offers this site's passkeys, no username needed. An
 * account with TOTP whose passkey did not verify the person continues with `onChallenge`. */
export function PasskeySignInButton({ onChallenge, onDone }: { onChallenge: (challenge: string) => void; onDone: () => void }) {
  const t = useT();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  if (!passkeysSupported()) return null;
  const go = async () => {
    setBusy(true);
    setError(null);
    try {
      const options = await api<RequestOptionsJSON>('auth/passkey/options', { method: 'POST', body: {}, auth: false });
      const credential = await getPasskey(options);
      const answer = await api<Answer>('auth/passkey/login', { body: { credential }, auth: false });
      if ('two_factor_required' in answer) {
        onChallenge(answer.challenge);
        return;
      }
      acceptTokens(answer);
      onDone();
    } catch (err) {
      if (!cancelled(err)) setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="mt-3 space-y-2">
      <Button type="button" variant="secondary" className="w-full" onClick={go} disabled={busy} data-testid="passkey-sign-in">
        {t('passkeys.signIn')}
      </Button>
      <ErrorText error={error} />
    </div>
  );
}

/** The second sign-in step answered with one of the account's passkeys. */
export function PasskeySecondFactorButton({ challenge, onDone }: { challenge: string; onDone: () => void }) {
  const t = useT();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  if (!passkeysSupported()) return null;
  const go = async () => {
    setBusy(true);
    setError(null);
    try {
      const options = await api<RequestOptionsJSON>('auth/login/2fa/passkey/options', { body: { challenge }, auth: false });
      const credential = await getPasskey(options);
      const tokens = await api<TokenResponse>('auth/login/2fa/passkey', { body: { challenge, credential }, auth: false });
      acceptTokens(tokens);
      onDone();
    } catch (err) {
      if (!cancelled(err)) setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="space-y-2">
      <Button type="button" variant="secondary" className="w-full" onClick={go} disabled={busy} data-testid="passkey-second-factor">
        {t('passkeys.useForStep')}
      </Button>
      <ErrorText error={error} />
    </div>
  );
}
