import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api, download } from '../../lib/api';
import { money, when } from '../../lib/format';
import type { Page, RedemptionCode } from '../../lib/types';
import { useT, useValueName } from '../../i18n';
import { Badge, Button, CopyButton, DataTable, ErrorText, Field, Input, Pager } from '../../components/ui';
import { Dialog } from '../../components/ui/dialog';
import { qk } from '../../lib/queryKeys';

/** Redemption codes: batches, CSV export, disabling. */
export function Codes() {
  const t = useT();
  const v = useValueName();
  const queryClient = useQueryClient();
  const [page, setPage] = useState(1);
  const [batch, setBatch] = useState('');
  const [creating, setCreating] = useState(false);
  const [form, setForm] = useState({ name: '', amount: '', count: '10', expires_at: '' });
  const [created, setCreated] = useState<RedemptionCode[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const codes = useQuery({
    queryKey: qk.codes.page(batch, page),
    queryFn: () => api<Page<RedemptionCode>>(`admin/redemption-codes?page=${page}&per_page=20${batch ? `&name=${encodeURIComponent(batch)}` : ''}`),
  });
  const refresh = () => queryClient.invalidateQueries({ queryKey: qk.codes.all });
  return (
    <div className="space-y-3">
      <div className="flex flex-wrap items-end justify-between gap-2">
        <Input className="max-w-xs" type="search" placeholder={t('admin.batchName')} aria-label={t('admin.batchName')} value={batch} onChange={(e) => { setBatch(e.target.value); setPage(1); }} />
        <div className="flex gap-2">
          <Button variant="secondary" onClick={() => download(`admin/redemption-codes/export${batch ? `?name=${encodeURIComponent(batch)}` : ''}`, 'redemption-codes.csv').catch(setError)}>
            {t('common.export')}
          </Button>
          <Button onClick={() => { setError(null); setCreating(true); }}>+ {t('admin.newBatch')}</Button>
        </div>
      </div>
      <ErrorText error={codes.error ?? (creating ? null : error)} />
      <DataTable
        rows={codes.data?.items ?? []}
        rowKey={(c) => c.id}
        columns={[
          { header: t('usage.code'), cell: (c) => <code className="text-xs">{c.code}</code> },
          { header: t('admin.batchName'), cell: (c) => c.batch_name },
          { header: t('usage.amount'), cell: (c) => money(c.amount), className: 'text-right' },
          { header: t('common.status'), cell: (c) => <Badge tone={c.status === 'active' ? 'ok' : 'neutral'}>{v(c.status)}</Badge> },
          { header: t('keys.expiresAt'), cell: (c) => (c.expires_at ? when(c.expires_at) : t('common.never')) },
          {
            header: t('common.actions'),
            cell: (c) =>
              c.status !== 'redeemed' && (
                <Button
                  variant="secondary"
                  size="sm"
                  onClick={async () => {
                    await api(`admin/redemption-codes/${c.id}`, { method: 'PATCH', body: { disabled: c.status !== 'disabled' } }).catch(setError);
                    refresh();
                  }}
                >
                  {c.status === 'disabled' ? t('common.enable') : t('common.disable')}
                </Button>
              ),
          },
        ]}
      />
      <Pager page={page} perPage={20} total={codes.data?.total ?? 0} onPage={setPage} />
      <Dialog open={creating} onOpenChange={setCreating} title={t('admin.newBatch')}>
        <form
          className="space-y-3"
          onSubmit={async (e) => {
            e.preventDefault();
            setError(null);
            try {
              const r = await api<RedemptionCode[] | { items: RedemptionCode[]; codes?: RedemptionCode[] }>('admin/redemption-codes', {
                body: {
                  name: form.name.trim(),
                  amount: Number(form.amount),
                  count: Number(form.count),
                  expires_at: form.expires_at ? new Date(form.expires_at).toISOString() : undefined,
                },
              });
              setCreating(false);
              setCreated(Array.isArray(r) ? r : (r.items ?? r.codes ?? []));
              refresh();
            } catch (err) {
              setError(err);
            }
          }}
        >
          <Field label={t('admin.batchName')}>
            <Input required value={form.name} onChange={(e) => setForm({ ...form, name: e.target.value })} />
          </Field>
          <div className="grid grid-cols-2 gap-3">
            <Field label={t('usage.amount')} hint={form.amount ? money(Number(form.amount)) : undefined}>
              <Input type="number" min="1" required value={form.amount} onChange={(e) => setForm({ ...form, amount: e.target.value })} />
            </Field>
            <Field label={t('admin.count')}>
              <Input type="number" min="1" max="1000" required value={form.count} onChange={(e) => setForm({ ...form, count: e.target.value })} />
            </Field>
          </div>
          <Field label={`${t('keys.expiresAt')} (${t('common.optional')})`}>
            <Input type="datetime-local" value={form.expires_at} onChange={(e) => setForm({ ...form, expires_at: e.target.value })} />
          </Field>
          <ErrorText error={error} />
          <div className="flex justify-end gap-2">
            <Button variant="secondary" onClick={() => setCreating(false)}>{t('common.cancel')}</Button>
            <Button type="submit">{t('common.create')}</Button>
          </div>
        </form>
      </Dialog>
      <Dialog open={created !== null} onOpenChange={(o) => !o && setCreated(null)} title={t('admin.codesCreated', { n: created?.length ?? 0 })}>
        <pre className="max-h-64 overflow-auto rounded-md bg-muted p-2 text-xs">{created?.map((c) => c.code).join('\n')}</pre>
        <div className="mt-3 flex justify-end gap-2">
          <CopyButton text={created?.map((c) => c.code).join('\n') ?? ''} />
          <Button onClick={() => setCreated(null)}>{t('common.close')}</Button>
        </div>
      </Dialog>
    </div>
  );
}
