import { useState } from 'react';
import { Link } from 'react-router-dom';
import { useQuery } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { money, num } from '../../lib/format';
import { useT } from '../../i18n';
import { DataTable, ErrorText, Select } from '../../components/ui';
import { lastDays } from '../../components/DailyChart';
import { qk } from '../../lib/queryKeys';
import { errorRate, ms, type ChannelStat, type ChannelStats } from './requestLog';

/** Requests per day of one channel as small bars (errors in red on top), for the range. */
function DayBars({ stat, days }: { stat: ChannelStat; days: string[] }) {
  const t = useT();
  const by = new Map(stat.days.map((d) => [d.day, d]));
  const max = Math.max(1, ...stat.days.map((d) => d.requests));
  return (
    <svg viewBox={`0 0 ${days.length * 6} 24`} className="h-6 w-28" role="img" aria-label={t('stats.perDay')}>
      {days.map((day, i) => {
        const d = by.get(day);
        const h = d ? Math.max(1, (d.requests / max) * 24) : 0;
        const e = d ? (d.errors / max) * 24 : 0;
        return (
          <g key={day}>
            <title>{`${day}: ${d?.requests ?? 0} / ${d?.errors ?? 0}`}</title>
            <rect x={i * 6} y={24 - h} width={4} height={h} className="fill-primary/70" />
            {e > 0 && <rect x={i * 6} y={24 - h} width={4} height={e} className="fill-danger" />}
          </g>
        );
      })}
    </svg>
  );
}

/** Per-channel statistics for a chosen range: requests, errors, median and average latency,
 * time to first byte and cost, with the days as bars and a link to each channel's requests. */
export function ChannelStatsPanel() {
  const t = useT();
  const [days, setDays] = useState(7);
  const from = `${lastDays(days)[0]}T00:00:00Z`;
  const stats = useQuery({
    queryKey: qk.channelStats(days),
    queryFn: () => api<ChannelStats>(`admin/requests/channel-stats?from=${encodeURIComponent(from)}`),
  });
  const dates = lastDays(days);
  return (
    <section className="space-y-2" aria-labelledby="channel-stats-title">
      <div className="flex flex-wrap items-center justify-between gap-2">
        <h2 id="channel-stats-title" className="text-base font-semibold">{t('stats.title')}</h2>
        <label className="flex items-center gap-2 text-sm">
          <span className="text-muted-fg">{t('stats.range')}</span>
          <Select value={String(days)} onChange={(e) => setDays(Number(e.target.value))} aria-label={t('stats.range')}>
            <option value="1">{t('stats.days', { n: 1 })}</option>
            <option value="7">{t('stats.days', { n: 7 })}</option>
            <option value="30">{t('stats.days', { n: 30 })}</option>
          </Select>
        </label>
      </div>
      <ErrorText error={stats.error} />
      <DataTable
        rows={stats.data?.channels ?? []}
        rowKey={(c) => c.channel_id}
        empty={stats.isLoading ? t('common.loading') : t('stats.empty')}
        columns={[
          { header: t('common.name'), cell: (c) => <Link className="text-primary underline" to={`/admin/requests?channel_id=${encodeURIComponent(c.channel_id)}`}>{c.channel_name}</Link> },
          { header: t('stats.requests'), cell: (c) => num(c.totals.requests) },
          {
            header: t('stats.errors'),
            cell: (c) => (
              <span className={c.totals.errors > 0 ? 'text-danger' : undefined} data-testid="stat-errors">
                {num(c.totals.errors)} ({errorRate(c.totals.errors, c.totals.requests)})
              </span>
            ),
          },
          { header: t('stats.p50'), cell: (c) => ms(c.totals.latency_p50_ms) },
          { header: t('stats.avg'), cell: (c) => ms(c.totals.latency_avg_ms) },
          { header: t('stats.ttfb'), cell: (c) => ms(c.totals.ttfb_avg_ms) },
          { header: t('requests.cost'), cell: (c) => money(c.totals.cost) },
          { header: t('stats.perDay'), cell: (c) => <DayBars stat={c} days={dates} /> },
        ]}
      />
      <p className="text-xs text-muted-fg">{t('stats.note')}</p>
    </section>
  );
}
