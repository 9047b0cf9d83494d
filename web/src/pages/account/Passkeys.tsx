import { useCallback, useEffect, useState } from 'react';
import { api } from '../../lib/api';
import { cancelled, createPasskey, passkeysSupported, type CreationOptionsJSON } from '../../lib/passkey';
import { useT } from '../../i18n';
import { Button, Card, ErrorText, Field, Input } from '../../components/ui';
import { toast } from '../../components/ui/toast';
import type { PasskeyView } from '../../lib/types';

/** Settings → Passkeys: the account's passkeys, adding one (the browser's dialog) and removing. */
export function PasskeysCard() {
  const t = useT();
  const [list, setList] = useState<{ items: PasskeyView[]; enabled: boolean } | null>(null);
  const [name, setName] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const load = useCallback(() => {
    api<{ items: PasskeyView[]; enabled: boolean }>('user/passkeys').then(setList, setError);
  }, []);
  useEffect(load, [load]);
  const supported = passkeysSupported();

  const add = async () => {
    setBusy(true);
    setError(null);
    try {
      const options = await api<CreationOptionsJSON>('user/passkeys/options', { method: 'POST', body: {} });
      const credential = await createPasskey(options);
      await api('user/passkeys', { method: 'POST', body: { name: name.trim() || undefined, credential } });
      setName('');
      toast(t('passkeys.added'));
      load();
    } catch (err) {
      if (!cancelled(err)) setError(err);
    } finally {
      setBusy(false);
    }
  };
  const remove = async (p: PasskeyView) => {
    if (!window.confirm(t('passkeys.confirmRemove', { name: p.name }))) return;
    setError(null);
    try {
      await api(`user/passkeys/${p.id}`, { method: 'DELETE' });
      load();
    } catch (err) {
      setError(err);
    }
  };

  return (
    <Card className="space-y-3" data-testid="passkeys">
      <h2 className="font-semibold">{t('passkeys.title')}</h2>
      <p className="text-sm text-muted-fg">{t('passkeys.hint')}</p>
      {list && list.items.length === 0 && <p className="text-sm text-muted-fg">{t('passkeys.none')}</p>}
      {list && list.items.length > 0 && (
        <ul className="divide-y divide-border rounded-md border border-border">
          {list.items.map((p) => (
            <li key={p.id} className="flex flex-wrap items-center justify-between gap-2 px-3 py-2 text-sm">
              <span className="min-w-0">
                <span className="block truncate font-medium">{p.name}</span>
                <span className="block text-xs text-muted-fg">
                  {t('passkeys.addedOn', { date: new Date(p.created_at).toLocaleDateString() })}
                  {' · '}
                  {p.last_used_at ? t('passkeys.lastUsed', { date: new Date(p.last_used_at).toLocaleString() }) : t('passkeys.neverUsed')}
                </span>
              </span>
              <Button variant="ghost" onClick={() => remove(p)} aria-label={t('passkeys.remove', { name: p.name })}>
                {t('passkeys.removeShort')}
              </Button>
            </li>
          ))}
        </ul>
      )}
      {list && !list.enabled && <p className="text-sm text-muted-fg">{t('passkeys.disabled')}</p>}
      {list?.enabled && !supported && <p className="text-sm text-muted-fg">{t('passkeys.unsupported')}</p>}
      {list?.enabled && supported && (
        <div className="flex flex-wrap items-end gap-2">
          <div className="min-w-0 flex-1">
            <Field label={`${t('passkeys.name')} (${t('common.optional')})`}>
              <Input name="passkey_name" maxLength={64} placeholder={t('passkeys.namePlaceholder')} value={name} onChange={(e) => setName(e.target.value)} />
            </Field>
          </div>
          <Button onClick={add} disabled={busy}>{t('passkeys.add')}</Button>
        </div>
      )}
      <ErrorText error={error} />
    </Card>
  );
}
