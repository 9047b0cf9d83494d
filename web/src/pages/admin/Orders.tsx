import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { money, when } from '../../lib/format';
import type { Page, PaymentOrder } from '../../lib/types';
import { useT, useValueName } from '../../i18n';
import { Badge, Button, DataTable, ErrorText, Pager, Select } from '../../components/ui';
import { qk } from '../../lib/queryKeys';
import { formatPrice } from '../account/TopUp';

const statuses = ['', 'pending', 'paid', 'expired', 'failed'];

/** Everyone's top-up orders, with a check against the provider for those still open. */
export function Orders() {
  const t = useT();
  const v = useValueName();
  const queryClient = useQueryClient();
  const [status, setStatus] = useState('');
  const [page, setPage] = useState(1);
  const [error, setError] = useState<unknown>(null);
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
          { header: t('topup.amount'), cell: (o) => formatPrice(o.amount_minor, o.currency), className: 'text-right' },
          { header: t('topup.quota'), cell: (o) => money(o.quota), className: 'text-right' },
          { header: t('topup.method'), cell: (o) => v(`pay_${o.method ?? o.provider}`) },
          { header: t('common.status'), cell: (o) => <span title={o.note ?? undefined}><Badge tone={o.status === 'paid' ? 'ok' : o.status === 'failed' ? 'danger' : 'neutral'}>{v(o.status)}</Badge></span> },
          {
            header: t('common.actions'),
            cell: (o) =>
              (o.status === 'pending' || o.status === 'expired') && (
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
    </div>
  );
}
