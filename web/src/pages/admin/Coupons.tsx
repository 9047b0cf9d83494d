import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { when } from '../../lib/format';
import type { Coupon, Page, Plan } from '../../lib/types';
import { useT, useValueName } from '../../i18n';
import { Badge, Button, DataTable, ErrorText, Field, Input, Pager } from '../../components/ui';
import { Dialog } from '../../components/ui/dialog';
import { qk } from '../../lib/queryKeys';
import { formatPrice, parsePrice } from '../account/TopUp';
import { planName } from '../account/Plans';
import { langStore } from '../../lib/settings';
import { useStore } from '../../lib/store';

/** What a coupon takes off, as admins read it: `20%` or `¥5.00`. */
export function couponValue(c: Pick<Coupon, 'kind' | 'percent_off' | 'amount_off' | 'currency'>): string {
  return c.kind === 'percent' ? `${c.percent_off}%` : formatPrice(c.amount_off, c.currency);
}

const blank = { code: '', name: '', kind: 'percent', value: '', min_spend: '', starts_at: '', ends_at: '', total_limit: '', per_user_limit: '1', first_purchase_only: false, scope: 'all', plan_ids: [] as string[] };

/** The request body for a new coupon from the form (amounts typed as money, limits as counts). */
export function couponBody(form: typeof blank) {
  const optional = (s: string) => (s.trim() ? Number(s) : undefined);
  const time = (s: string) => (s ? new Date(s).toISOString() : undefined);
  return {
    code: form.code.trim(),
    name: form.name.trim(),
    percent_off: form.kind === 'percent' ? Number(form.value) : undefined,
    amount_off: form.kind === 'fixed' ? (parsePrice(form.value) ?? -1) : undefined,
    min_spend: form.min_spend.trim() ? (parsePrice(form.min_spend) ?? -1) : 0,
    starts_at: time(form.starts_at),
    ends_at: time(form.ends_at),
    total_limit: optional(form.total_limit),
    per_user_limit: optional(form.per_user_limit),
    first_purchase_only: form.first_purchase_only,
    scope: form.scope,
    // A top-up coupon names no plans.
    plan_ids: form.scope === 'topup' ? [] : form.plan_ids,
  };
}

const scopeLabel = { all: 'coupons.scopeAll', topup: 'coupons.scopeTopup', plan: 'coupons.scopePlan' } as const;

/** Coupons: discounts at checkout with limits; made here, switched off and on. */
export function Coupons() {
  const t = useT();
  const v = useValueName();
  const queryClient = useQueryClient();
  const [page, setPage] = useState(1);
  const [creating, setCreating] = useState(false);
  const [form, setForm] = useState(blank);
  const [error, setError] = useState<unknown>(null);
  const coupons = useQuery({ queryKey: qk.coupons.page(page), queryFn: () => api<Page<Coupon>>(`admin/billing/coupons?page=${page}&per_page=20`) });
  const refresh = () => queryClient.invalidateQueries({ queryKey: qk.coupons.all });
  const lang = useStore(langStore);
  const plans = useQuery({ queryKey: qk.plans.admin, queryFn: () => api<Plan[]>('admin/billing/plans'), enabled: creating });
  return (
    <div className="space-y-3">
      <div className="flex justify-end">
        <Button onClick={() => { setError(null); setForm(blank); setCreating(true); }}>+ {t('coupons.new')}</Button>
      </div>
      <ErrorText error={coupons.error ?? (creating ? null : error)} />
      <DataTable
        rows={coupons.data?.items ?? []}
        rowKey={(c) => c.id}
        empty={t('coupons.none')}
        columns={[
          { header: t('coupons.code'), cell: (c) => <code className="text-xs">{c.code}</code> },
          { header: t('coupons.name'), cell: (c) => c.name },
          { header: t('coupons.off'), cell: (c) => couponValue(c), className: 'text-right' },
          { header: t('coupons.minSpend'), cell: (c) => (c.min_spend ? formatPrice(c.min_spend, c.currency) : '—'), className: 'text-right' },
          { header: t('coupons.taken'), cell: (c) => `${c.taken} / ${c.total_limit ?? '∞'}`, className: 'text-right' },
          { header: t('coupons.perUser'), cell: (c) => c.per_user_limit ?? '∞', className: 'text-right' },
          { header: t('coupons.scope'), cell: (c) => `${t(scopeLabel[c.scope])}${c.plan_ids.length ? ` (${c.plan_ids.length})` : ''}` },
          { header: t('coupons.valid'), cell: (c) => `${c.starts_at ? when(c.starts_at) : '…'} – ${c.ends_at ? when(c.ends_at) : t('common.never')}` },
          { header: t('common.status'), cell: (c) => <>{c.first_purchase_only && <Badge tone="primary">{t('coupons.firstOnly')}</Badge>} <Badge tone={c.disabled ? 'neutral' : 'ok'}>{v(c.disabled ? 'disabled' : 'active')}</Badge></> },
          {
            header: t('common.actions'),
            cell: (c) => (
              <Button
                variant="secondary"
                size="sm"
                onClick={async () => {
                  await api(`admin/billing/coupons/${c.id}`, { method: 'PATCH', body: { disabled: !c.disabled } }).catch(setError);
                  refresh();
                }}
              >
                {c.disabled ? t('common.enable') : t('common.disable')}
              </Button>
            ),
          },
        ]}
      />
      <Pager page={page} perPage={20} total={coupons.data?.total ?? 0} onPage={setPage} />
      <Dialog open={creating} onOpenChange={setCreating} title={t('coupons.new')}>
        <form
          className="space-y-3"
          onSubmit={async (e) => {
            e.preventDefault();
            setError(null);
            try {
              await api<Coupon>('admin/billing/coupons', { body: couponBody(form) });
              setCreating(false);
              refresh();
            } catch (err) {
              setError(err);
            }
          }}
        >
          <div className="grid grid-cols-1 gap-3 sm:grid-cols-2">
            <Field label={t('coupons.code')}>
              <Input required value={form.code} onChange={(e) => setForm({ ...form, code: e.target.value.toUpperCase() })} placeholder="SPRING20" />
            </Field>
            <Field label={t('coupons.name')}>
              <Input required value={form.name} onChange={(e) => setForm({ ...form, name: e.target.value })} />
            </Field>
            <Field label={t('coupons.kind')}>
              <div className="flex min-h-11 items-center gap-4 text-sm">
                {(['percent', 'fixed'] as const).map((k) => (
                  <label key={k} className="flex items-center gap-2">
                    <input type="radio" name="kind" checked={form.kind === k} onChange={() => setForm({ ...form, kind: k })} />
                    {t(k === 'percent' ? 'coupons.percent' : 'coupons.fixed')}
                  </label>
                ))}
              </div>
            </Field>
            <Field label={form.kind === 'percent' ? t('coupons.percentOff') : t('coupons.amountOff')}>
              <Input required inputMode="decimal" value={form.value} onChange={(e) => setForm({ ...form, value: e.target.value })} placeholder={form.kind === 'percent' ? '20' : '5.00'} />
            </Field>
            <Field label={`${t('coupons.minSpend')} (${t('common.optional')})`}>
              <Input inputMode="decimal" value={form.min_spend} onChange={(e) => setForm({ ...form, min_spend: e.target.value })} placeholder="20.00" />
            </Field>
            <Field label={`${t('coupons.totalLimit')} (${t('common.optional')})`}>
              <Input type="number" min="1" value={form.total_limit} onChange={(e) => setForm({ ...form, total_limit: e.target.value })} />
            </Field>
            <Field label={`${t('coupons.perUser')} (${t('common.optional')})`}>
              <Input type="number" min="1" value={form.per_user_limit} onChange={(e) => setForm({ ...form, per_user_limit: e.target.value })} />
            </Field>
            <Field label={`${t('coupons.startsAt')} (${t('common.optional')})`}>
              <Input type="datetime-local" value={form.starts_at} onChange={(e) => setForm({ ...form, starts_at: e.target.value })} />
            </Field>
            <Field label={`${t('coupons.endsAt')} (${t('common.optional')})`}>
              <Input type="datetime-local" value={form.ends_at} onChange={(e) => setForm({ ...form, ends_at: e.target.value })} />
            </Field>
          </div>
          <Field label={t('coupons.scope')}>
            <div className="flex min-h-11 flex-wrap items-center gap-4 text-sm">
              {(['all', 'topup', 'plan'] as const).map((k) => (
                <label key={k} className="flex items-center gap-2">
                  <input type="radio" name="scope" checked={form.scope === k} onChange={() => setForm({ ...form, scope: k })} />
                  {t(scopeLabel[k])}
                </label>
              ))}
            </div>
          </Field>
          {form.scope !== 'topup' && (plans.data?.length ?? 0) > 0 && (
            <fieldset className="space-y-1 text-sm">
              <legend className="mb-1">{t('coupons.plans')}</legend>
              {(plans.data ?? []).map((p) => (
                <label key={p.id} className="flex min-h-11 items-center gap-2">
                  <input
                    type="checkbox"
                    checked={form.plan_ids.includes(p.id)}
                    onChange={(e) => setForm({ ...form, plan_ids: e.target.checked ? [...form.plan_ids, p.id] : form.plan_ids.filter((x) => x !== p.id) })}
                  />
                  {planName(p, lang)}
                </label>
              ))}
            </fieldset>
          )}
          <label className="flex min-h-11 items-center gap-2 text-sm">
            <input type="checkbox" checked={form.first_purchase_only} onChange={(e) => setForm({ ...form, first_purchase_only: e.target.checked })} />
            {t('coupons.firstOnly')}
          </label>
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
