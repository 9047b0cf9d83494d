import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import type { CacheView, GroupCache } from '../../lib/types';
import { useT } from '../../i18n';
import { Button, Card, DataTable, ErrorText, Input } from '../../components/ui';
import { qk } from '../../lib/queryKeys';

/** The longest TTL the relay takes, in seconds (a day). */
export const MAX_TTL_SECS = 86_400;

/** The body the API takes for a group's row as typed, or the field that is out of range. */
export function cacheBody(
  enabled: boolean,
  ttl: string,
  share: boolean,
  price: string,
): { body: { enabled: boolean; ttl_secs: number; share_across_users: boolean; price_percent: number } } | { invalid: 'ttl' | 'price' } {
  const ttlSecs = Number(ttl);
  const pricePercent = Number(price);
  if (!Number.isInteger(ttlSecs) || ttlSecs < 1 || ttlSecs > MAX_TTL_SECS) return { invalid: 'ttl' };
  if (!Number.isInteger(pricePercent) || pricePercent < 0 || pricePercent > 100) return { invalid: 'price' };
  return { body: { enabled, ttl_secs: ttlSecs, share_across_users: share, price_percent: pricePercent } };
}

/** One group's row: on/off, TTL, sharing and the price of a hit, saved together. */
function GroupRow({ row, onSaved }: { row: GroupCache; onSaved: () => void }) {
  const t = useT();
  const [enabled, setEnabled] = useState(row.enabled);
  const [ttl, setTtl] = useState(String(row.ttl_secs));
  const [share, setShare] = useState(row.share_across_users);
  const [price, setPrice] = useState(String(row.price_percent));
  const [error, setError] = useState<unknown>(null);
  const [invalid, setInvalid] = useState<'ttl' | 'price' | null>(null);
  const [saved, setSaved] = useState(false);
  const dirty =
    enabled !== row.enabled || ttl !== String(row.ttl_secs) || share !== row.share_across_users || price !== String(row.price_percent);
  const save = async () => {
    setError(null);
    setSaved(false);
    const checked = cacheBody(enabled, ttl, share, price);
    if ('invalid' in checked) {
      setInvalid(checked.invalid);
      return;
    }
    setInvalid(null);
    try {
      await api(`admin/cache/${encodeURIComponent(row.group)}`, { method: 'PUT', body: checked.body });
      setSaved(true);
      onSaved();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <span className="flex flex-wrap items-center justify-end gap-2">
      <label className="flex items-center gap-1 text-xs">
        <input type="checkbox" aria-label={`${t('cache.enabled')} ${row.group}`} checked={enabled} onChange={(e) => setEnabled(e.target.checked)} />
        {t('cache.enabled')}
      </label>
      <Input aria-label={`${t('cache.ttl')} ${row.group}`} className="h-8 w-24 text-xs" type="number" min="1" max={MAX_TTL_SECS} value={ttl} onChange={(e) => setTtl(e.target.value)} />
      <label className="flex items-center gap-1 text-xs">
        <input type="checkbox" aria-label={`${t('cache.share')} ${row.group}`} checked={share} onChange={(e) => setShare(e.target.checked)} />
        {t('cache.share')}
      </label>
      <Input aria-label={`${t('cache.price')} ${row.group}`} className="h-8 w-20 text-xs" type="number" min="0" max="100" value={price} onChange={(e) => setPrice(e.target.value)} />
      <Button size="sm" onClick={save} disabled={!dirty}>{t('common.save')}</Button>
      {saved && !dirty && <span className="text-xs text-muted-fg" role="status">{t('routing.saved')}</span>}
      {invalid && (
        <span className="text-xs text-danger" role="alert">
          {invalid === 'ttl' ? t('cache.badTtl') : t('cache.badPrice')}
        </span>
      )}
      <ErrorText error={error} />
    </span>
  );
}

/** Admin → Pricing: each group's response cache (exact repeats of deterministic chat
 * requests answered from memory), and how many answers this instance keeps. */
export function CachePanel() {
  const t = useT();
  const queryClient = useQueryClient();
  const cache = useQuery({ queryKey: qk.responseCache, queryFn: () => api<CacheView>('admin/cache') });
  return (
    <Card className="space-y-3" data-testid="cache-panel">
      <div>
        <h2 className="text-sm font-semibold">{t('cache.title')}</h2>
        <p className="text-sm text-muted-fg">{t('cache.hint')}</p>
        {cache.data && (
          <p className="text-xs text-muted-fg" data-testid="cache-entries">
            {t('cache.entries', { count: cache.data.entries })}
          </p>
        )}
      </div>
      <ErrorText error={cache.error} />
      <DataTable
        rows={cache.data?.groups ?? []}
        rowKey={(r) => r.group}
        columns={[
          { header: t('routing.group'), cell: (r) => <span className="font-medium">{r.group}</span> },
          {
            header: t('cache.settings'),
            cell: (r) => (
              <GroupRow
                key={`${r.enabled}-${r.ttl_secs}-${r.share_across_users}-${r.price_percent}`}
                row={r}
                onSaved={() => queryClient.invalidateQueries({ queryKey: qk.responseCache })}
              />
            ),
          },
        ]}
      />
    </Card>
  );
}
