import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { when } from '../../lib/format';
import type { Invoice, Page } from '../../lib/types';
import { useT, useValueName } from '../../i18n';
import { Badge, Button, DataTable, ErrorText, Field, Input, Pager, Select } from '../../components/ui';
import { Dialog } from '../../components/ui/dialog';
import { qk } from '../../lib/queryKeys';
import { formatPrice } from '../account/TopUp';

const statuses = ['requested', 'issued', 'rejected', ''];

/** Invoice requests: issue (a number, and the PDF uploaded through the File service) or reject with a reason. */
export function AdminInvoices() {
  const t = useT();
  const v = useValueName();
  const queryClient = useQueryClient();
  const [status, setStatus] = useState('requested');
  const [page, setPage] = useState(1);
  const [acting, setActing] = useState<{ invoice: Invoice; action: 'issue' | 'reject' } | null>(null);
  const [number, setNumber] = useState('');
  const [reason, setReason] = useState('');
  const [file, setFile] = useState<File | null>(null);
  const [error, setError] = useState<unknown>(null);
  const invoices = useQuery({
    queryKey: qk.invoices.admin(status, page),
    queryFn: () => api<Page<Invoice>>(`admin/billing/invoices?page=${page}&per_page=20${status ? `&status=${status}` : ''}`),
  });
  const start = (invoice: Invoice, action: 'issue' | 'reject') => {
    setError(null);
    setNumber('');
    setReason('');
    setFile(null);
    setActing({ invoice, action });
  };
  async function decide(e: React.FormEvent) {
    e.preventDefault();
    if (!acting) return;
    setError(null);
    try {
      if (acting.action === 'reject') {
        await api(`admin/billing/invoices/${acting.invoice.id}/reject`, { body: { reason: reason.trim() } });
      } else {
        let fileId: string | undefined;
        if (file) {
          const form = new FormData();
          form.append('purpose', 'chat');
          form.append('file', file);
          fileId = (await api<{ id: string }>('files', { body: form })).id;
        }
        await api(`admin/billing/invoices/${acting.invoice.id}/issue`, { body: { number: number.trim(), file_id: fileId } });
      }
      setActing(null);
      queryClient.invalidateQueries({ queryKey: qk.invoices.all });
    } catch (err) {
      setError(err);
    }
  }
  return (
    <div className="space-y-3">
      <Select className="max-w-xs" aria-label={t('common.status')} value={status} onChange={(e) => { setStatus(e.target.value); setPage(1); }}>
        {statuses.map((s) => (
          <option key={s} value={s}>{s ? v(`invoice_${s}`) : t('admin.allStatuses')}</option>
        ))}
      </Select>
      <ErrorText error={invoices.error} />
      <DataTable
        rows={invoices.data?.items ?? []}
        rowKey={(i) => i.id}
        empty={t('invoices.none')}
        columns={[
          { header: t('common.time'), cell: (i) => when(i.created_at) },
          { header: t('invoices.invoiceTitle'), cell: (i) => <>{i.title}<span className="block text-xs text-muted-fg">{v(`invoice_kind_${i.kind}`)} {i.tax_id}</span></> },
          { header: t('invoices.email'), cell: (i) => i.email },
          { header: t('topup.amount'), cell: (i) => <>{formatPrice(i.amount_minor, i.currency)}<span className="block text-xs text-muted-fg">{t('invoices.orderCount', { n: i.order_ids.length })}</span></>, className: 'text-right' },
          { header: t('common.status'), cell: (i) => <Badge tone={i.status === 'issued' ? 'ok' : i.status === 'rejected' ? 'danger' : 'neutral'}>{v(`invoice_${i.status}`)}</Badge> },
          {
            header: t('common.actions'),
            cell: (i) =>
              i.status === 'requested' && (
                <div className="flex gap-2">
                  <Button size="sm" onClick={() => start(i, 'issue')}>{t('invoices.issue')}</Button>
                  <Button size="sm" variant="secondary" onClick={() => start(i, 'reject')}>{t('invoices.reject')}</Button>
                </div>
              ),
          },
        ]}
      />
      <Pager page={page} perPage={20} total={invoices.data?.total ?? 0} onPage={setPage} />
      <Dialog open={acting !== null} onOpenChange={(o) => !o && setActing(null)} title={acting?.action === 'reject' ? t('invoices.reject') : t('invoices.issue')}>
        <form className="space-y-3" onSubmit={decide}>
          {acting?.action === 'reject' ? (
            <Field label={t('invoices.reason')}>
              <Input required value={reason} onChange={(e) => setReason(e.target.value)} />
            </Field>
          ) : (
            <>
              <Field label={t('invoices.number')}>
                <Input required value={number} onChange={(e) => setNumber(e.target.value)} />
              </Field>
              <Field label={`${t('invoices.pdf')} (${t('common.optional')})`}>
                <input type="file" accept="application/pdf" className="text-sm" onChange={(e) => setFile(e.target.files?.[0] ?? null)} />
              </Field>
            </>
          )}
          <ErrorText error={error} />
          <div className="flex justify-end gap-2">
            <Button variant="secondary" onClick={() => setActing(null)}>{t('common.cancel')}</Button>
            <Button type="submit">{acting?.action === 'reject' ? t('invoices.reject') : t('invoices.issue')}</Button>
          </div>
        </form>
      </Dialog>
    </div>
  );
}
