import { useQuery } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { money, num } from '../../lib/format';
import type { DailyUsage, Page, Profile } from '../../lib/types';
import { useT } from '../../i18n';
import { Card, ErrorText } from '../../components/ui';
import { DailyChart, lastDays } from '../../components/DailyChart';
import { SetupChecklist } from '../../components/SetupChecklist';
import { qk } from '../../lib/queryKeys';

/** Sums rows by their key (model or user), largest spend first. */
export function topKeys(rows: DailyUsage[], n = 5) {
  const sums = new Map<string, { cost: number; requests: number }>();
  for (const r of rows) {
    const s = sums.get(r.key) ?? { cost: 0, requests: 0 };
    s.cost += r.cost;
    s.requests += r.requests;
    sums.set(r.key, s);
  }
  return [...sums.entries()].sort((a, b) => b[1].cost - a[1].cost).slice(0, n);
}

/** Totals over all rows: spend, requests, tokens, and how often and how far costs went
 * beyond their holds (how good the estimates are). */
export function totals(rows: DailyUsage[]) {
  const t = { cost: 0, requests: 0, tokens: 0, overrunRequests: 0, overrun: 0, uncollected: 0 };
  for (const r of rows) {
    t.cost += r.cost;
    t.requests += r.requests;
    t.tokens += r.prompt_tokens + r.completion_tokens;
    t.overrunRequests += r.overrun_requests ?? 0;
    t.overrun += r.overrun ?? 0;
    t.uncollected += r.uncollected ?? 0;
  }
  return t;
}

/** Spend, requests and tokens over 30 days, per model and per user. */
export function Dashboard() {
  const t = useT();
  const from = `${lastDays(30)[0]}T00:00:00Z`;
  const byModel = useQuery({ queryKey: qk.adminDaily('model', from), queryFn: () => api<DailyUsage[]>(`admin/billing/usage/daily?from=${from}`) });
  const byUser = useQuery({ queryKey: qk.adminDaily('user', from), queryFn: () => api<DailyUsage[]>(`admin/billing/usage/daily?group=user&from=${from}`) });
  // Names for the top users (ids otherwise); the first 100 users cover small teams.
  const users = useQuery({ queryKey: qk.adminUsers.names, queryFn: () => api<Page<Profile>>('admin/users?per_page=100') });
  const names = new Map((users.data?.items ?? []).map((u) => [u.id, u.display_name || u.username || u.id]));
  const rows = byModel.data ?? [];
  const total = totals(rows);
  return (
    <div className="space-y-4">
      <SetupChecklist />
      <ErrorText error={byModel.error ?? byUser.error} />
      <div className="grid grid-cols-1 gap-3 sm:grid-cols-3">
        <Card><div className="text-xs text-muted-fg">{t('admin.totalCost')}</div><div className="text-lg font-semibold" data-testid="admin-total-cost">{money(total.cost)}</div></Card>
        <Card><div className="text-xs text-muted-fg">{t('admin.totalRequests')}</div><div className="text-lg font-semibold">{num(total.requests)}</div></Card>
        <Card><div className="text-xs text-muted-fg">{t('admin.totalTokens')}</div><div className="text-lg font-semibold">{num(total.tokens)}</div></Card>
      </div>
      <div className="grid grid-cols-1 gap-3 sm:grid-cols-3">
        <Card><div className="text-xs text-muted-fg">{t('admin.overrunRequests')}</div><div className="text-lg font-semibold" data-testid="admin-overrun-requests">{num(total.overrunRequests)}</div></Card>
        <Card><div className="text-xs text-muted-fg">{t('admin.overrun')}</div><div className="text-lg font-semibold">{money(total.overrun)}</div></Card>
        <Card><div className="text-xs text-muted-fg">{t('admin.uncollected')}</div><div className="text-lg font-semibold">{money(total.uncollected)}</div></Card>
      </div>
      <Card>
        <DailyChart rows={rows} label={t('usage.daily')} />
      </Card>
      <div className="grid gap-4 md:grid-cols-2">
        {[
          { title: t('admin.topModels'), data: byModel.data, name: (k: string) => k },
          { title: t('admin.topUsers'), data: byUser.data, name: (k: string) => names.get(k) ?? k },
        ].map((block) => (
          <Card key={block.title}>
            <h2 className="mb-2 font-semibold">{block.title}</h2>
            <ul className="space-y-1 text-sm">
              {topKeys(block.data ?? []).map(([key, s]) => (
                <li key={key} className="flex justify-between gap-2">
                  <span className="truncate">{block.name(key)}</span>
                  <span className="text-muted-fg">{num(s.requests)} · {money(s.cost)}</span>
                </li>
              ))}
              {(block.data ?? []).length === 0 && <li className="text-muted-fg">{t('usage.noData')}</li>}
            </ul>
          </Card>
        ))}
      </div>
    </div>
  );
}
