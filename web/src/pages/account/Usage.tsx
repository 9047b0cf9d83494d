import { useState } from 'react';
import { Link } from 'react-router-dom';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { money, num, when } from '../../lib/format';
import type { DailyUsage, LedgerEntry, Page, PaymentOptions, Quota, UsageRecord } from '../../lib/types';
import { useT, useValueName } from '../../i18n';
import { Badge, Button, Card, DataTable, ErrorText, Field, Input, PageHeader, Pager } from '../../components/ui';
import { DailyChart, lastDays } from '../../components/DailyChart';
import { qk } from '../../lib/queryKeys';

function Stat({ label, value, testId }: { label: string; value: string; testId?: string }) {
  return (
    <Card className="p-3">
      <div className="text-xs text-muted-fg">{label}</div>
      <div className="mt-1 text-lg font-semibold" data-testid={testId}>
        {value}
      </div>
    </Card>
  );
}

/** A redemption code as the server issues it: codes are upper-case letters and digits, so
 * what was typed in lower case, or pasted with spaces, still redeems. */
export function normalizeCode(typed: string): string {
  return typed.replace(/\s+/g, '').toUpperCase();
}

/** Balance, redeeming codes, the daily chart, requests with filters, and the ledger. */
export default function UsagePage() {
  const t = useT();
  const v = useValueName();
  const queryClient = useQueryClient();
  const [code, setCode] = useState('');
  const [redeemMsg, setRedeemMsg] = useState<string | null>(null);
  const [redeemError, setRedeemError] = useState<unknown>(null);
  const [filters, setFilters] = useState({ model: '', from: '', to: '' });
  const [page, setPage] = useState(1);
  const [ledgerPage, setLedgerPage] = useState(1);
  const quota = useQuery({ queryKey: qk.quota, queryFn: () => api<Quota>('billing/quota') });
  const perUsd = quota.data?.quota_per_usd;
  const payOptions = useQuery({ queryKey: qk.paymentOptions, queryFn: () => api<PaymentOptions>('billing/payment/options') });
  const from30 = lastDays(30)[0];
  const daily = useQuery({ queryKey: qk.daily(from30), queryFn: () => api<DailyUsage[]>(`billing/usage/daily?from=${from30}T00:00:00Z`) });
  const qs = new URLSearchParams({ page: String(page), per_page: '20' });
  if (filters.model) qs.set('model', filters.model);
  if (filters.from) qs.set('from', `${filters.from}T00:00:00Z`);
  if (filters.to) qs.set('to', `${filters.to}T23:59:59Z`);
  const records = useQuery({ queryKey: qk.usage(qs.toString()), queryFn: () => api<Page<UsageRecord>>(`billing/usage?${qs}`) });
  const ledger = useQuery({ queryKey: qk.ledger.page(ledgerPage), queryFn: () => api<Page<LedgerEntry>>(`billing/ledger?page=${ledgerPage}&per_page=10`) });

  return (
    <div className="mx-auto max-w-5xl space-y-4 p-4">
      <PageHeader title={t('usage.title')}>
        <Link to="/billing/statements" className="inline-flex h-9 items-center rounded-md border border-border px-3.5 text-sm font-medium hover:bg-muted">
          {t('nav.bills')}
        </Link>
        {payOptions.data?.enabled && <Link to="/billing/plans" className="inline-flex h-9 items-center rounded-md border border-border px-3.5 text-sm font-medium hover:bg-muted">
          {t('plans.action')}
        </Link>}
        {payOptions.data?.enabled && <Link to="/billing/topup" className="inline-flex h-9 items-center rounded-md bg-primary px-3.5 text-sm font-medium text-primary-fg hover:bg-primary/90">
          {t('topup.action')}
        </Link>}
      </PageHeader>
      <ErrorText error={quota.error} />
      <div className="grid grid-cols-2 gap-3 md:grid-cols-4">
        <Stat label={t('usage.balance')} value={quota.data ? money(quota.data.balance, perUsd) : '…'} testId="balance" />
        <Stat label={t('usage.available')} value={quota.data ? money(quota.data.available, perUsd) : '…'} />
        <Stat label={t('usage.reserved')} value={quota.data ? money(quota.data.reserved, perUsd) : '…'} />
        <Stat label={t('usage.used')} value={quota.data ? money(quota.data.used, perUsd) : '…'} testId="used" />
      </div>
      <div className="grid gap-4 md:grid-cols-3">
        <Card className="md:col-span-2">
          <h2 className="mb-2 font-semibold">{t('usage.daily')}</h2>
          <ErrorText error={daily.error} />
          <DailyChart rows={daily.data ?? []} label={t('usage.daily')} />
        </Card>
        <Card>
          <h2 className="mb-2 font-semibold">{t('usage.redeem')}</h2>
          <form
            className="space-y-2"
            onSubmit={async (e) => {
              e.preventDefault();
              setRedeemError(null);
              setRedeemMsg(null);
              try {
                const r = await api<{ amount: number; balance: number }>('billing/redeem', { body: { code: normalizeCode(code) } });
                setRedeemMsg(t('usage.redeemed', { amount: money(r.amount, perUsd), balance: money(r.balance, perUsd) }));
                setCode('');
                queryClient.invalidateQueries({ queryKey: qk.quota });
                queryClient.invalidateQueries({ queryKey: qk.ledger.all });
              } catch (err) {
                setRedeemError(err);
              }
            }}
          >
            <Input aria-label={t('usage.code')} placeholder={t('usage.code')} autoCapitalize="characters" autoComplete="off" spellCheck={false} className="font-mono uppercase" value={code} onChange={(e) => setCode(e.target.value)} required />
            <Button type="submit" className="w-full">
              {t('usage.redeemAction')}
            </Button>
            {redeemMsg && <p className="text-sm text-ok">{redeemMsg}</p>}
            <ErrorText error={redeemError} />
          </form>
        </Card>
      </div>
      <Card>
        <h2 className="mb-3 font-semibold">{t('usage.records')}</h2>
        <div className="mb-3 grid grid-cols-2 gap-2 sm:grid-cols-4">
          <Field label={t('common.model')}>
            <Input value={filters.model} onChange={(e) => { setFilters({ ...filters, model: e.target.value }); setPage(1); }} />
          </Field>
          <Field label={t('usage.from')}>
            <Input type="date" value={filters.from} onChange={(e) => { setFilters({ ...filters, from: e.target.value }); setPage(1); }} />
          </Field>
          <Field label={t('usage.to')}>
            <Input type="date" value={filters.to} onChange={(e) => { setFilters({ ...filters, to: e.target.value }); setPage(1); }} />
          </Field>
        </div>
        <ErrorText error={records.error} />
        <DataTable
          rows={records.data?.items ?? []}
          rowKey={(r) => r.id}
          empty={t('usage.noData')}
          columns={[
            { header: t('common.time'), cell: (r) => when(r.created_at) },
            { header: t('common.model'), cell: (r) => r.model },
            { header: t('usage.tokensIn'), cell: (r) => num(r.prompt_tokens), className: 'text-right' },
            { header: t('usage.tokensOut'), cell: (r) => num(r.completion_tokens), className: 'text-right' },
            { header: t('usage.cost'), cell: (r) => <span data-testid="record-cost">{money(r.cost, perUsd)}</span>, className: 'text-right' },
            { header: t('usage.duration'), cell: (r) => `${num(r.duration_ms)} ms`, className: 'text-right' },
            { header: t('common.status'), cell: (r) => <Badge tone={r.status === 'ok' ? 'ok' : 'neutral'}>{v(r.status)}</Badge> },
          ]}
        />
        <Pager page={page} perPage={20} total={records.data?.total ?? 0} onPage={setPage} />
      </Card>
      <Card>
        <h2 className="mb-3 font-semibold">{t('usage.ledger')}</h2>
        <ErrorText error={ledger.error} />
        <DataTable
          rows={ledger.data?.items ?? []}
          rowKey={(r) => r.id}
          columns={[
            { header: t('common.time'), cell: (r) => when(r.created_at) },
            { header: t('usage.kind'), cell: (r) => <Badge>{v(r.kind)}</Badge> },
            { header: t('usage.amount'), cell: (r) => <span className={r.amount < 0 ? 'text-danger' : 'text-ok'}>{money(r.amount, perUsd)}</span>, className: 'text-right' },
            { header: t('usage.balanceAfter'), cell: (r) => money(r.balance_after, perUsd), className: 'text-right' },
            { header: t('usage.memo'), cell: (r) => r.memo ?? '' },
          ]}
        />
        <Pager page={ledgerPage} perPage={10} total={ledger.data?.total ?? 0} onPage={setLedgerPage} />
      </Card>
    </div>
  );
}
