import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { money, UNITS_PER_USD } from '../../lib/format';
import type { ModelPrice } from '../../lib/types';
import { useT } from '../../i18n';
import { Button, DataTable, ErrorText, Field, Input } from '../../components/ui';
import { Dialog } from '../../components/ui/dialog';
import { qk } from '../../lib/queryKeys';

const fields = ['input_per_mtok', 'output_per_mtok', 'cache_read_per_mtok', 'cache_write_per_mtok', 'per_call'] as const;
const blank = { model: '', input_per_mtok: '0', output_per_mtok: '0', cache_read_per_mtok: '0', cache_write_per_mtok: '0', per_call: '0' };

/** The pricing table: per-model rates in quota units. */
export function Pricing() {
  const t = useT();
  const queryClient = useQueryClient();
  const [editing, setEditing] = useState<boolean>(false);
  const [form, setForm] = useState(blank);
  const [error, setError] = useState<unknown>(null);
  const prices = useQuery({ queryKey: qk.pricing, queryFn: () => api<ModelPrice[]>('pricing') });
  const refresh = () => queryClient.invalidateQueries({ queryKey: qk.pricing });
  const labels = [t('admin.input'), t('admin.output'), t('admin.cacheRead'), t('admin.cacheWrite'), t('admin.perCall')];
  return (
    <div className="space-y-3">
      <div className="flex flex-wrap items-center justify-between gap-2">
        <p className="text-sm text-muted-fg">{t('admin.priceUnits', { perUsd: UNITS_PER_USD.toLocaleString() })}</p>
        <Button onClick={() => { setForm(blank); setError(null); setEditing(true); }}>+ {t('admin.setPrice')}</Button>
      </div>
      <ErrorText error={prices.error ?? (editing ? null : error)} />
      <DataTable
        rows={prices.data ?? []}
        rowKey={(p) => p.model}
        columns={[
          { header: t('common.model'), cell: (p) => <span className="font-medium">{p.model}</span> },
          ...fields.map((f, i) => ({ header: labels[i], cell: (p: ModelPrice) => <span title={String(p[f])}>{money(p[f])}</span>, className: 'text-right' })),
          {
            header: t('common.actions'),
            cell: (p: ModelPrice) => (
              <span className="flex justify-end gap-1">
                <Button
                  variant="secondary"
                  size="sm"
                  onClick={() => {
                    setForm({ model: p.model, ...Object.fromEntries(fields.map((f) => [f, String(p[f])])) } as typeof blank);
                    setError(null);
                    setEditing(true);
                  }}
                >
                  {t('common.edit')}
                </Button>
                <Button
                  variant="danger"
                  size="sm"
                  onClick={async () => {
                    await api(`admin/pricing/${encodeURIComponent(p.model)}`, { method: 'DELETE' }).catch(setError);
                    refresh();
                  }}
                >
                  {t('common.delete')}
                </Button>
              </span>
            ),
          },
        ]}
      />
      <Dialog open={editing} onOpenChange={setEditing} title={t('admin.setPrice')}>
        <form
          className="space-y-3"
          onSubmit={async (e) => {
            e.preventDefault();
            setError(null);
            try {
              await api(`admin/pricing/${encodeURIComponent(form.model.trim())}`, {
                method: 'PUT',
                body: Object.fromEntries(fields.map((f) => [f, Number(form[f]) || 0])),
              });
              setEditing(false);
              refresh();
            } catch (err) {
              setError(err);
            }
          }}
        >
          <Field label={t('common.model')}>
            <Input name="price-model" required value={form.model} onChange={(e) => setForm({ ...form, model: e.target.value })} />
          </Field>
          <div className="grid grid-cols-2 gap-3">
            {fields.map((f, i) => (
              <Field key={f} label={labels[i]} hint={money(Number(form[f]) || 0)}>
                <Input name={f} type="number" min="0" value={form[f]} onChange={(e) => setForm({ ...form, [f]: e.target.value })} />
              </Field>
            ))}
          </div>
          <ErrorText error={error} />
          <div className="flex justify-end gap-2">
            <Button variant="secondary" onClick={() => setEditing(false)}>{t('common.cancel')}</Button>
            <Button type="submit">{t('common.save')}</Button>
          </div>
        </form>
      </Dialog>
    </div>
  );
}
