import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api, download } from '../../lib/api';
import { when } from '../../lib/format';
import type { Invoice, Page, PaymentOrder } from '../../lib/types';
import { useT, useValueName } from '../../i18n';
import { Badge, Button, Card, DataTable, ErrorText, Field, Input, PageHeader, Pager, cx } from '../../components/ui';
import { qk } from '../../lib/queryKeys';
import { formatPrice } from './TopUp';

/** Paid orders not on a live invoice (requested or issued), which may be asked for. */
export function invoiceable(orders: PaymentOrder[], invoices: Invoice[]): PaymentOrder[] {
  const taken = new Set(invoices.filter((i) => i.status !== 'rejected').flatMap((i) => i.order_ids));
  return orders.filter((o) => o.status === 'paid' && !taken.has(o.id));
}

const blank = { kind: 'normal', title: '', tax_id: '', address: '', bank_account: '', email: '' };

/** Invoices: ask for one over paid orders, follow its review, download the PDF once issued. */
export default function InvoicesPage() {
  const t = useT();
  const v = useValueName();
  const queryClient = useQueryClient();
  const [page, setPage] = useState(1);
  const [chosen, setChosen] = useState<string[]>([]);
  const [form, setForm] = useState(blank);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const invoices = useQuery({ queryKey: qk.invoices.page(page), queryFn: () => api<Page<Invoice>>(`billing/invoices?page=${page}&per_page=20`) });
  // Every live invoice, to leave out their orders (a user has few).
  const live = useQuery({ queryKey: qk.invoices.page(0), queryFn: () => api<Page<Invoice>>('billing/invoices?page=1&per_page=100') });
  const paid = useQuery({ queryKey: qk.orders.paid, queryFn: () => api<Page<PaymentOrder>>('billing/orders?status=paid&page=1&per_page=100') });
  const open = invoiceable(paid.data?.items ?? [], live.data?.items ?? []);
  const total = open.filter((o) => chosen.includes(o.id)).reduce((s, o) => s + o.amount_minor, 0);
  const special = form.kind === 'special';

  async function submit(e: React.FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const optional = (s: string) => s.trim() || undefined;
      await api<Invoice>('billing/invoices', {
        body: { order_ids: chosen, kind: form.kind, title: form.title.trim(), tax_id: optional(form.tax_id), address: optional(form.address), bank_account: optional(form.bank_account), email: form.email.trim() },
      });
      setChosen([]);
      setForm(blank);
      queryClient.invalidateQueries({ queryKey: qk.invoices.all });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="mx-auto max-w-3xl space-y-4 p-4">
      <PageHeader title={t('invoices.title')} />
      <Card className="p-4">
        <h2 className="mb-2 font-semibold">{t('invoices.request')}</h2>
        <ErrorText error={paid.error} />
        {open.length === 0 ? (
          <p className="text-sm text-muted-fg">{t('invoices.nothingToInvoice')}</p>
        ) : (
          <form className="space-y-3" onSubmit={submit}>
            <fieldset className="space-y-1">
              <legend className="mb-1 text-sm font-medium">{t('invoices.orders')}</legend>
              {open.map((o) => (
                <label key={o.id} className="flex min-h-11 items-center gap-2 text-sm">
                  <input type="checkbox" checked={chosen.includes(o.id)} onChange={(e) => setChosen(e.target.checked ? [...chosen, o.id] : chosen.filter((x) => x !== o.id))} />
                  <span>{o.paid_at ? when(o.paid_at) : ''}</span>
                  <span className="ml-auto font-medium">{formatPrice(o.amount_minor, o.currency)}</span>
                </label>
              ))}
            </fieldset>
            <Field label={t('invoices.kind')}>
              <div className="flex min-h-11 flex-wrap items-center gap-4 text-sm">
                {(['normal', 'special'] as const).map((k) => (
                  <label key={k} className="flex items-center gap-2">
                    <input type="radio" name="kind" checked={form.kind === k} onChange={() => setForm({ ...form, kind: k })} />
                    {t(k === 'normal' ? 'invoices.normal' : 'invoices.special')}
                  </label>
                ))}
              </div>
            </Field>
            <div className="grid grid-cols-1 gap-3 sm:grid-cols-2">
              <Field label={t('invoices.invoiceTitle')}>
                <Input required value={form.title} onChange={(e) => setForm({ ...form, title: e.target.value })} />
              </Field>
              <Field label={special ? t('invoices.taxId') : `${t('invoices.taxId')} (${t('common.optional')})`}>
                <Input required={special} value={form.tax_id} onChange={(e) => setForm({ ...form, tax_id: e.target.value.toUpperCase() })} />
              </Field>
              <Field label={special ? t('invoices.address') : `${t('invoices.address')} (${t('common.optional')})`}>
                <Input required={special} value={form.address} onChange={(e) => setForm({ ...form, address: e.target.value })} />
              </Field>
              <Field label={special ? t('invoices.bank') : `${t('invoices.bank')} (${t('common.optional')})`}>
                <Input required={special} value={form.bank_account} onChange={(e) => setForm({ ...form, bank_account: e.target.value })} />
              </Field>
              <Field label={t('invoices.email')}>
                <Input required type="email" value={form.email} onChange={(e) => setForm({ ...form, email: e.target.value })} />
              </Field>
            </div>
            <ErrorText error={error} />
            <Button type="submit" disabled={busy || chosen.length === 0} className="w-full sm:w-auto">
              {t('invoices.submit', { amount: formatPrice(total, open[0]?.currency) })}
            </Button>
          </form>
        )}
      </Card>
      <Card className="p-4">
        <h2 className="mb-2 font-semibold">{t('invoices.mine')}</h2>
        <ErrorText error={invoices.error} />
        <DataTable
          rows={invoices.data?.items ?? []}
          rowKey={(i) => i.id}
          empty={t('invoices.none')}
          columns={[
            { header: t('common.time'), cell: (i) => when(i.created_at) },
            { header: t('invoices.invoiceTitle'), cell: (i) => i.title },
            { header: t('topup.amount'), cell: (i) => formatPrice(i.amount_minor, i.currency), className: 'text-right' },
            {
              header: t('common.status'),
              cell: (i) => (
                <span className={cx(i.status === 'rejected' && 'text-danger')}>
                  <Badge tone={i.status === 'issued' ? 'ok' : i.status === 'rejected' ? 'danger' : 'neutral'}>{v(`invoice_${i.status}`)}</Badge>
                  {i.reason && <span className="block text-xs">{i.reason}</span>}
                  {i.number && <span className="block text-xs text-muted-fg">{t('invoices.number')}: {i.number}</span>}
                </span>
              ),
            },
            {
              header: t('common.actions'),
              cell: (i) => i.has_pdf && (
                <Button size="sm" variant="secondary" onClick={() => download(`billing/invoices/${i.id}/pdf`, `invoice-${i.number ?? i.id}.pdf`).catch(setError)}>
                  {t('invoices.pdf')}
                </Button>
              ),
            },
          ]}
        />
        <Pager page={page} perPage={20} total={invoices.data?.total ?? 0} onPage={setPage} />
      </Card>
    </div>
  );
}
