import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { money } from '../../lib/format';
import type { Plan } from '../../lib/types';
import { useT, useValueName } from '../../i18n';
import { Badge, Button, DataTable, ErrorText, Field, Input, Select } from '../../components/ui';
import { Dialog } from '../../components/ui/dialog';
import { qk } from '../../lib/queryKeys';
import { formatPrice, parsePrice } from '../account/TopUp';

const blank = { name_en: '', name_zh: '', price: '', period: 'month', quota_per_period: '', group_name: '', models: '' };

/** The request body for a new plan from the form (price typed as money, models comma-separated). */
export function planBody(form: typeof blank) {
  return {
    name_en: form.name_en.trim(),
    name_zh: form.name_zh.trim(),
    price: parsePrice(form.price) ?? -1,
    period: form.period,
    quota_per_period: Number(form.quota_per_period) || -1,
    group_name: form.group_name.trim() || undefined,
    models: form.models.split(',').map((m) => m.trim()).filter(Boolean),
  };
}

/** Subscription plans: defined here, offered or withdrawn. */
export function Plans() {
  const t = useT();
  const v = useValueName();
  const queryClient = useQueryClient();
  const [creating, setCreating] = useState(false);
  const [form, setForm] = useState(blank);
  const [error, setError] = useState<unknown>(null);
  const plans = useQuery({ queryKey: qk.plans.admin, queryFn: () => api<Plan[]>('admin/billing/plans') });
  const refresh = () => queryClient.invalidateQueries({ queryKey: qk.plans.all });
  return (
    <div className="space-y-3">
      <div className="flex justify-end">
        <Button onClick={() => { setError(null); setForm(blank); setCreating(true); }}>+ {t('plans.new')}</Button>
      </div>
      <ErrorText error={plans.error ?? (creating ? null : error)} />
      <DataTable
        rows={plans.data ?? []}
        rowKey={(p) => p.id}
        empty={t('plans.none')}
        columns={[
          { header: t('plans.nameEn'), cell: (p) => p.name_en },
          { header: t('plans.nameZh'), cell: (p) => p.name_zh },
          { header: t('plans.price'), cell: (p) => `${formatPrice(p.price_minor, p.currency)} / ${v(p.period)}`, className: 'text-right' },
          { header: t('plans.quota'), cell: (p) => money(p.quota_per_period), className: 'text-right' },
          { header: t('plans.groupField'), cell: (p) => p.group_name ?? '—' },
          { header: t('common.model'), cell: (p) => (p.models.length ? p.models.join(', ') : '—') },
          { header: t('common.status'), cell: (p) => <Badge tone={p.active ? 'ok' : 'neutral'}>{v(p.active ? 'active' : 'disabled')}</Badge> },
          {
            header: t('common.actions'),
            cell: (p) => (
              <Button
                variant="secondary"
                size="sm"
                onClick={async () => {
                  setError(null);
                  await api(`admin/billing/plans/${p.id}`, { method: 'PATCH', body: { active: !p.active } }).catch(setError);
                  refresh();
                }}
              >
                {p.active ? t('plans.withdraw') : t('plans.offer')}
              </Button>
            ),
          },
        ]}
      />
      <p className="text-xs text-muted-fg">{t('plans.entitlementsNote')}</p>
      <Dialog open={creating} onOpenChange={setCreating} title={t('plans.new')}>
        <form
          className="space-y-3"
          onSubmit={async (e) => {
            e.preventDefault();
            setError(null);
            try {
              await api<Plan>('admin/billing/plans', { body: planBody(form) });
              setCreating(false);
              refresh();
            } catch (err) {
              setError(err);
            }
          }}
        >
          <div className="grid grid-cols-1 gap-3 sm:grid-cols-2">
            <Field label={t('plans.nameEn')}>
              <Input required value={form.name_en} onChange={(e) => setForm({ ...form, name_en: e.target.value })} placeholder="Pro monthly" />
            </Field>
            <Field label={t('plans.nameZh')}>
              <Input required value={form.name_zh} onChange={(e) => setForm({ ...form, name_zh: e.target.value })} placeholder="专业版（月付）" />
            </Field>
            <Field label={t('plans.price')}>
              <Input required inputMode="decimal" value={form.price} onChange={(e) => setForm({ ...form, price: e.target.value })} placeholder="29.00" />
            </Field>
            <Field label={t('plans.period')}>
              <Select value={form.period} onChange={(e) => setForm({ ...form, period: e.target.value })}>
                <option value="month">{v('month')}</option>
                <option value="year">{v('year')}</option>
              </Select>
            </Field>
            <Field label={t('plans.quota')}>
              <Input required type="number" min="1" value={form.quota_per_period} onChange={(e) => setForm({ ...form, quota_per_period: e.target.value })} placeholder="1000000" />
            </Field>
            <Field label={`${t('plans.groupField')} (${t('common.optional')})`}>
              <Input value={form.group_name} onChange={(e) => setForm({ ...form, group_name: e.target.value })} />
            </Field>
          </div>
          <Field label={`${t('plans.modelsField')} (${t('common.optional')})`} hint={t('plans.entitlementsNote')}>
            <Input value={form.models} onChange={(e) => setForm({ ...form, models: e.target.value })} placeholder="gpt-4o, claude-sonnet-4" />
          </Field>
          <ErrorText error={error} />
          <div className="flex justify-end gap-2">
            <Button variant="secondary" onClick={() => setCreating(false)}>{t('common.cancel')}</Button>
            <Button type="submit">{t('common.create')}</Button>
          </div>
        </form>
      </Dialog>
    </div>
  );
}
