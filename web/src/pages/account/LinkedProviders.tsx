import { useCallback, useEffect, useState } from 'react';
import { useSearchParams } from 'react-router-dom';
import { api } from '../../lib/api';
import { useT } from '../../i18n';
import { Badge, Button, Card, ErrorText } from '../../components/ui';
import { startOAuth, useOAuthProviders } from '../auth/OAuth';
import type { LinkedIdentity } from '../../lib/types';

/** Whether unlinking `identity` would leave the account without a way to sign in (the server
 * refuses it too; the button is disabled so nobody has to try). */
export function isLastWayIn(identities: LinkedIdentity[], passwordLogin: boolean): boolean {
  return !passwordLogin && identities.length <= 1;
}

/** The personal centre's "Linked sign-in" card: linked providers, unlink, and link buttons for
 * the configured providers not linked yet. */
export function LinkedProvidersCard() {
  const t = useT();
  const providers = useOAuthProviders();
  const [params] = useSearchParams();
  const [data, setData] = useState<{ items: LinkedIdentity[]; password_login: boolean } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const load = useCallback(() => {
    api<{ items: LinkedIdentity[]; password_login: boolean }>('user/oauth/identities').then(setData, setError);
  }, []);
  useEffect(load, [load]);
  if (providers.length === 0 && (data?.items.length ?? 0) === 0) return null;
  const items = data?.items ?? [];
  const lastWayIn = isLastWayIn(items, data?.password_login ?? true);
  // Until the identities load, nothing is said about what is linked (or offered to link).
  const unlinked = data ? providers.filter((p) => !items.some((i) => i.provider === p.slug)) : [];
  return (
    <Card className="space-y-3" data-testid="linked-providers">
      <h2 className="font-semibold">{t('oauth.linked')}</h2>
      {params.get('linked') && <p className="rounded-md bg-muted px-3 py-2 text-sm">{t('oauth.linkedDone')}</p>}
      <ul className="divide-y divide-border">
        {items.map((i) => (
          <li key={i.id} className="flex flex-wrap items-center justify-between gap-2 py-2 text-sm">
            <div className="min-w-0">
              <div className="flex items-center gap-2 font-medium">
                <span>{i.provider_name}</span>
                <Badge tone="ok">{t('oauth.isLinked')}</Badge>
              </div>
              <div className="break-all text-muted-fg">{i.email ?? i.display_name ?? '—'}</div>
            </div>
            <Button
              size="sm"
              variant="ghost"
              disabled={lastWayIn}
              title={lastWayIn ? t('oauth.lastWayIn') : undefined}
              onClick={async () => {
                setError(null);
                try {
                  await api(`user/oauth/identities/${encodeURIComponent(i.id)}`, { method: 'DELETE' });
                  load();
                } catch (err) {
                  setError(err);
                }
              }}
            >
              {t('oauth.unlink')}
            </Button>
          </li>
        ))}
      </ul>
      {data && items.length === 0 && <p className="text-sm text-muted-fg">{t('oauth.noneLinked')}</p>}
      {lastWayIn && items.length > 0 && <p className="text-sm text-muted-fg">{t('oauth.lastWayIn')}</p>}
      {unlinked.length > 0 && (
        <div className="flex flex-wrap gap-2">
          {unlinked.map((p) => (
            <Button
              key={p.slug}
              size="sm"
              variant="secondary"
              onClick={async () => {
                setError(null);
                try {
                  await startOAuth(p.slug, { link: true });
                } catch (err) {
                  setError(err);
                }
              }}
            >
              {t('oauth.link', { name: p.name })}
            </Button>
          ))}
        </div>
      )}
      <ErrorText error={error} />
    </Card>
  );
}
