import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import type { GroupRouting } from '../../lib/types';
import { useT } from '../../i18n';
import type { MessageKey } from '../../i18n';
import { Button, Card, DataTable, ErrorText, Input, Select } from '../../components/ui';
import { qk } from '../../lib/queryKeys';

/** The routing strategies the relay knows, in the order an admin reads them. */
export const STRATEGIES = ['priority', 'latency', 'errors', 'cost', 'balance', 'balanced'] as const;

/** One group's row: its strategy, exploration share and stickiness, saved together. */
function GroupRow({ row, onSaved }: { row: GroupRouting; onSaved: () => void }) {
  const t = useT();
  const [strategy, setStrategy] = useState<string>(row.strategy);
  const [explore, setExplore] = useState(String(row.explore_percent));
  const [sticky, setSticky] = useState(row.sticky);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  const dirty = strategy !== row.strategy || explore !== String(row.explore_percent) || sticky !== row.sticky;
  const save = async () => {
    setError(null);
    setSaved(false);
    try {
      await api(`admin/routing/${encodeURIComponent(row.group)}`, { method: 'PUT', body: { strategy, explore_percent: Number(explore), sticky } });
      setSaved(true);
      onSaved();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <span className="flex flex-wrap items-center justify-end gap-2">
      <Select aria-label={`${t('routing.strategy')} ${row.group}`} className="h-8 text-xs" value={strategy} onChange={(e) => setStrategy(e.target.value)}>
        {STRATEGIES.map((s) => (
          <option key={s} value={s}>{t(`routing.s_${s}` as MessageKey)}</option>
        ))}
      </Select>
      <span className="flex items-center gap-1 text-xs text-muted-fg">
        <span aria-hidden>{t('routing.explore')}</span>
        <span className="w-20">
          <Input aria-label={`${t('routing.explore')} ${row.group}`} className="h-8 text-xs" type="number" min="0" max="50" value={explore} onChange={(e) => setExplore(e.target.value)} />
        </span>
      </span>
      <label className="flex items-center gap-1 text-xs" title={t('routing.stickyHint')}>
        <input type="checkbox" className="h-4 w-4" checked={sticky} onChange={(e) => setSticky(e.target.checked)} aria-label={`${t('routing.sticky')} ${row.group}`} />
        {t('routing.sticky')}
      </label>
      <Button size="sm" onClick={save} disabled={!dirty}>{t('common.save')}</Button>
      {saved && !dirty && <span className="text-xs text-muted-fg" role="status">{t('routing.saved')}</span>}
      <ErrorText error={error} />
    </span>
  );
}

/** Admin → Channels: each group's routing strategy (priority, latency, errors, cost, balance, balanced) and stickiness. */
export function RoutingPanel() {
  const t = useT();
  const queryClient = useQueryClient();
  const routing = useQuery({ queryKey: qk.routing, queryFn: () => api<GroupRouting[]>('admin/routing') });
  return (
    <Card className="space-y-3" data-testid="routing-panel">
      <div>
        <h2 className="text-sm font-semibold">{t('routing.title')}</h2>
        <p className="text-sm text-muted-fg">{t('routing.hint')}</p>
      </div>
      <ErrorText error={routing.error} />
      <DataTable
        rows={routing.data ?? []}
        rowKey={(r) => r.group}
        columns={[
          { header: t('routing.group'), cell: (r) => <span className="font-medium">{r.group}</span> },
          {
            header: t('routing.strategy'),
            cell: (r) => <GroupRow key={`${r.strategy}-${r.explore_percent}-${r.sticky}`} row={r} onSaved={() => queryClient.invalidateQueries({ queryKey: qk.routing })} />,
          },
        ]}
      />
    </Card>
  );
}
