import { useState } from 'react';
import { Link, useSearchParams } from 'react-router-dom';
import { useQuery } from '@tanstack/react-query';
import { api, download } from '../../lib/api';
import { money, when } from '../../lib/format';
import type { ApiKey, Page, Statement } from '../../lib/types';
import { useT, useValueName } from '../../i18n';
import { langStore } from '../../lib/settings';
import { useStore } from '../../lib/store';
import { Button, Card, DataTable, ErrorText, Field, Input, PageHeader } from '../../components/ui';
import { qk } from '../../lib/queryKeys';
import { formatPrice } from './TopUp';

/** `YYYY-MM` of a date in local time. */
export function monthOf(d: Date): string {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}`;
}

/** The browser's UTC offset in minutes (480 in China), so months start at local midnight. */
export function localOffset(d: Date = new Date()): number {
  return -d.getTimezoneOffset();
}

function Line({ label, value, strong, testId }: { label: string; value: string; strong?: boolean; testId?: string }) {
  return (
    <div className="flex justify-between gap-4 py-1 text-sm">
      <span className={strong ? 'font-semibold' : 'text-muted-fg'}>{label}</span>
      <span className={strong ? 'font-semibold' : ''} data-testid={testId}>{value}</span>
    </div>
  );
}

/** Monthly statements: opening and closing balance, what came in and went out, usage by model and by key, orders paid; CSV download. */
export default function BillsPage() {
  const t = useT();
  const v = useValueName();
  const lang = useStore(langStore);
  const [params] = useSearchParams();
  // The statement mail links here with its month.
  const [month, setMonth] = useState(() => {
    const asked = params.get('month');
    return asked && /^\d{4}-\d{2}$/.test(asked) ? asked : monthOf(new Date());
  });
  const [error, setError] = useState<unknown>(null);
  const [mailed, setMailed] = useState<boolean | null>(null);
  const offset = localOffset();
  const valid = /^\d{4}-\d{2}$/.test(month);
  const statement = useQuery({
    queryKey: qk.statement(month, offset),
    queryFn: () => api<Statement>(`billing/statements/${month}?utc_offset_minutes=${offset}`),
    enabled: valid,
  });
  const keys = useQuery({ queryKey: qk.keys.page(1), queryFn: () => api<Page<ApiKey>>('keys?page=1&per_page=20') });
  const keyName = (id: string | null | undefined) => (id ? (keys.data?.items.find((k) => k.id === id)?.name ?? id) : t('bills.noKey'));
  const s = statement.data;
  return (
    <div className="mx-auto max-w-3xl space-y-4 p-4">
      <PageHeader title={t('bills.title')}>
        <Link className="text-sm text-primary underline" to="/billing/invoices">{t('invoices.title')}</Link>
        <Button variant="secondary" disabled={!s} onClick={() => download(`billing/statements/${month}/csv?utc_offset_minutes=${offset}`, `statement-${month}.csv`).catch(setError)}>
          {t('bills.csv')}
        </Button>
        <Button variant="secondary" disabled={!s} onClick={() => download(`billing/statements/${month}/pdf?utc_offset_minutes=${offset}&lang=${lang}`, `statement-${month}.pdf`).catch(setError)}>
          {t('bills.pdf')}
        </Button>
        <Button
          variant="secondary"
          disabled={!s}
          onClick={async () => {
            setError(null);
            setMailed(null);
            try {
              const r = await api<{ queued: boolean }>(`billing/statements/${month}/email?utc_offset_minutes=${offset}`, { method: 'POST', body: {} });
              setMailed(r.queued);
            } catch (err) {
              setError(err);
            }
          }}
        >
          {t('bills.email')}
        </Button>
      </PageHeader>
      {mailed !== null && (
        <p className={mailed ? 'text-sm text-ok' : 'text-sm text-danger'} role="status" data-testid="bill-mailed">
          {mailed ? t('bills.mailed') : t('bills.noAddress')}
        </p>
      )}
      <Field label={t('bills.month')}>
        <Input type="month" className="max-w-xs" value={month} onChange={(e) => setMonth(e.target.value)} />
      </Field>
      <ErrorText error={statement.error ?? error} />
      {s && (
        <>
          <Card className="p-4">
            <Line label={t('bills.opening')} value={money(s.opening_balance)} />
            <Line label={t('bills.credits')} value={`+${money(s.credits)}`} />
            <Line label={t('bills.topUps')} value={money(s.top_ups)} />
            <Line label={t('bills.consumption')} value={`−${money(s.consumption)}`} />
            <Line label={t('bills.debits')} value={`−${money(s.debits)}`} />
            <Line label={t('bills.refunds')} value={`−${money(s.refunds)}`} />
            <Line label={t('bills.closing')} value={money(s.closing_balance)} strong testId="bill-closing" />
            <p className="mt-2 text-xs text-muted-fg">{t('bills.period', { start: when(s.period_start), end: when(s.period_end) })}</p>
          </Card>
          <Card className="p-4">
            <h2 className="mb-2 font-semibold">{t('bills.byKind')}</h2>
            <DataTable rows={s.by_kind} rowKey={(r) => r.kind} empty={t('bills.empty')} columns={[
              { header: t('bills.kind'), cell: (r) => v(r.kind) },
              { header: t('bills.entries'), cell: (r) => r.entries, className: 'text-right' },
              { header: t('bills.amount'), cell: (r) => money(r.amount), className: 'text-right' },
            ]} />
          </Card>
          <Card className="p-4">
            <h2 className="mb-2 font-semibold">{t('bills.byModel')}</h2>
            <DataTable rows={s.by_model} rowKey={(r) => r.name ?? ''} empty={t('bills.empty')} columns={[
              { header: t('bills.model'), cell: (r) => r.name ?? '—' },
              { header: t('bills.requests'), cell: (r) => r.requests, className: 'text-right' },
              { header: t('bills.amount'), cell: (r) => money(r.amount), className: 'text-right' },
            ]} />
          </Card>
          <Card className="p-4">
            <h2 className="mb-2 font-semibold">{t('bills.byKey')}</h2>
            <DataTable rows={s.by_key} rowKey={(r) => r.name ?? ''} empty={t('bills.empty')} columns={[
              { header: t('bills.key'), cell: (r) => keyName(r.name) },
              { header: t('bills.requests'), cell: (r) => r.requests, className: 'text-right' },
              { header: t('bills.amount'), cell: (r) => money(r.amount), className: 'text-right' },
            ]} />
          </Card>
          <Card className="p-4">
            <h2 className="mb-2 font-semibold">{t('bills.orders')}</h2>
            <DataTable rows={s.orders} rowKey={(r) => r.id} empty={t('bills.empty')} columns={[
              { header: t('common.time'), cell: (r) => when(r.paid_at) },
              { header: t('topup.method'), cell: (r) => v(`pay_${r.provider}`) },
              { header: t('topup.amount'), cell: (r) => formatPrice(r.amount_minor, r.currency), className: 'text-right' },
              { header: t('topup.quota'), cell: (r) => money(r.quota), className: 'text-right' },
            ]} />
          </Card>
        </>
      )}
    </div>
  );
}
