import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { money, when } from '../../lib/format';
import type { Page, PaymentOrder, Refund } from '../../lib/types';
import { useT, useValueName } from '../../i18n';
import { Badge, Button, DataTable, ErrorText, Field, Input, Pager, Select } from '../../components/ui';
import { Dialog } from '../../components/ui/dialog';
import { qk } from '../../lib/queryKeys';
import { formatPrice, parsePrice } from '../account/TopUp';

const statuses = ['', 'pending', 'paid', 'partially_refunded', 'refunded', 'expired', 'failed'];

/** Whether an order can take another refund. */
export const refundable = (status: string) => status === 'paid' || status === 'partially_refunded';

/** The refund dialog of a paid order: its refunds so far, and a new full or partial one. */
function RefundDialog({ order, onClose }: { order: PaymentOrder; onClose: () => void }) {
  const t = useT();
  const v = useValueName();
  const queryClient = useQueryClient();
  const [amount, setAmount] = useState('');
  const [reason, setReason] = useState('');
  const [manual, setManual] = useState(order.provider === 'epay');
  const [force, setForce] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  // One key per dialog: a second click (or a retry after a lost answer) is the same refund.
  const [key] = useState(() => crypto.randomUUID());
  const refunds = useQuery({ queryKey: qk.refunds.order(order.id), queryFn: () => api<Page<Refund>>(`admin/billing/refunds?order_id=${order.id}&per_page=100`) });
  const left = order.amount_minor - order.refunded_minor;
  const refresh = () => {
    queryClient.invalidateQueries({ queryKey: qk.refunds.all });
    queryClient.invalidateQueries({ queryKey: qk.orders.all });
  };
  return (
    <Dialog open onOpenChange={(open) => !open && onClose()} title={t('refunds.title', { id: order.id.slice(0, 8) })}>
      <div className="space-y-3">
        <p className="text-sm">{t('refunds.left', { amount: formatPrice(left, order.currency) })}</p>
        {order.plan_id && <p className="text-sm text-muted-fg" data-testid="plan-refund-rule">{t('refunds.planRule')}</p>}
        {(refunds.data?.items.length ?? 0) > 0 && (
          <DataTable
            rows={refunds.data?.items ?? []}
            rowKey={(r) => r.id}
            columns={[
              { header: t('common.time'), cell: (r) => when(r.created_at) },
              { header: t('topup.amount'), cell: (r) => formatPrice(r.amount_minor, order.currency), className: 'text-right' },
              { header: t('topup.quota'), cell: (r) => money(r.quota), className: 'text-right' },
              ...(order.plan_id ? [{ header: t('refunds.periods'), cell: (r: Refund) => (r.ended_subscription ? t('refunds.ended') : String(r.periods)), className: 'text-right' }] : []),
              { header: t('common.status'), cell: (r) => <span title={r.note ?? undefined}><Badge tone={r.status === 'succeeded' ? 'ok' : r.status === 'failed' ? 'danger' : 'neutral'}>{v(r.status)}</Badge></span> },
              {
                header: t('common.actions'),
                cell: (r) =>
                  r.status === 'pending' && !r.manual && (
                    <Button variant="secondary" size="sm" onClick={async () => { setError(null); await api(`admin/billing/refunds/${r.id}/reconcile`, { method: 'POST', body: {} }).catch(setError); refresh(); }}>
                      {t('refunds.check')}
                    </Button>
                  ),
              },
            ]}
          />
        )}
        {left > 0 && (
          <form
            className="space-y-3"
            onSubmit={async (e) => {
              e.preventDefault();
              setBusy(true);
              setError(null);
              try {
                const minor = amount.trim() ? (parsePrice(amount) ?? -1) : undefined;
                await api<Refund>(`admin/billing/orders/${order.id}/refunds`, { body: { amount: minor, reason: reason.trim(), manual, force }, headers: { 'Idempotency-Key': key } });
                refresh();
                onClose();
              } catch (err) {
                setError(err);
              } finally {
                setBusy(false);
              }
            }}
          >
            <Field label={t('refunds.amount')}>
              <Input inputMode="decimal" value={amount} onChange={(e) => setAmount(e.target.value)} placeholder={(left / 100).toFixed(2)} />
            </Field>
            <Field label={t('refunds.reason')}>
              <Input required maxLength={200} value={reason} onChange={(e) => setReason(e.target.value)} />
            </Field>
            <label className="flex min-h-11 items-center gap-2 text-sm">
              <input type="checkbox" checked={manual} onChange={(e) => setManual(e.target.checked)} />
              {t('refunds.manual')}
            </label>
            <label className="flex min-h-11 items-center gap-2 text-sm">
              <input type="checkbox" checked={force} onChange={(e) => setForce(e.target.checked)} />
              {t('refunds.force')}
            </label>
            <ErrorText error={error} />
            <div className="flex justify-end gap-2">
              <Button variant="secondary" onClick={onClose}>{t('common.cancel')}</Button>
              <Button type="submit" variant="danger" disabled={busy}>{t('refunds.submit')}</Button>
            </div>
          </form>
        )}
      </div>
    </Dialog>
  );
}

/** Everyone's top-up orders, with a check against the provider for those still open. */
export function Orders() {
  const t = useT();
  const v = useValueName();
  const queryClient = useQueryClient();
  const [status, setStatus] = useState('');
  const [page, setPage] = useState(1);
  const [error, setError] = useState<unknown>(null);
  const [refunding, setRefunding] = useState<PaymentOrder | null>(null);
  const orders = useQuery({
    queryKey: qk.adminOrders(status, page),
    queryFn: () => api<Page<PaymentOrder>>(`admin/billing/orders?page=${page}&per_page=20${status ? `&status=${status}` : ''}`),
  });
  return (
    <div className="space-y-3">
      <Select className="max-w-xs" aria-label={t('common.status')} value={status} onChange={(e) => { setStatus(e.target.value); setPage(1); }}>
        {statuses.map((s) => (
          <option key={s} value={s}>{s ? v(s) : t('admin.allStatuses')}</option>
        ))}
      </Select>
      <ErrorText error={orders.error ?? error} />
      <DataTable
        rows={orders.data?.items ?? []}
        rowKey={(o) => o.id}
        empty={t('topup.noOrders')}
        columns={[
          { header: t('common.time'), cell: (o) => when(o.created_at) },
          { header: t('admin.user'), cell: (o) => <code className="text-xs">{o.user_id}</code> },
          {
            header: t('topup.amount'),
            cell: (o) => (
              <>
                {formatPrice(o.amount_minor, o.currency)}
                {o.refunded_minor > 0 && <span className="block text-xs text-danger">{t('refunds.refunded', { amount: formatPrice(o.refunded_minor, o.currency) })}</span>}
              </>
            ),
            className: 'text-right',
          },
          { header: t('topup.quota'), cell: (o) => money(o.quota), className: 'text-right' },
          { header: t('topup.method'), cell: (o) => v(`pay_${o.method ?? o.provider}`) },
          { header: t('common.status'), cell: (o) => <span title={o.note ?? undefined}><Badge tone={o.status === 'paid' ? 'ok' : o.status === 'failed' ? 'danger' : o.status === 'partially_refunded' ? 'primary' : 'neutral'}>{v(o.status)}</Badge></span> },
          {
            header: t('common.actions'),
            cell: (o) =>
              refundable(o.status) ? (
                <Button variant="secondary" size="sm" onClick={() => setRefunding(o)}>
                  {t('refunds.action')}
                </Button>
              ) : (o.status === 'pending' || o.status === 'expired') && (
                <Button
                  variant="secondary"
                  size="sm"
                  onClick={async () => {
                    setError(null);
                    await api(`admin/billing/orders/${o.id}/reconcile`, { method: 'POST', body: {} }).catch(setError);
                    queryClient.invalidateQueries({ queryKey: qk.orders.all });
                  }}
                >
                  {t('admin.checkOrder')}
                </Button>
              ),
          },
        ]}
      />
      <Pager page={page} perPage={20} total={orders.data?.total ?? 0} onPage={setPage} />
      {refunding && <RefundDialog order={refunding} onClose={() => setRefunding(null)} />}
    </div>
  );
}
