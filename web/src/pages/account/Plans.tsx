import { useState } from 'react';
import { Link } from 'react-router-dom';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { money, when } from '../../lib/format';
import type { CreatedOrder, PaymentOptions, Plan, Subscription } from '../../lib/types';
import { useT, useValueName } from '../../i18n';
import { langStore } from '../../lib/settings';
import { useStore } from '../../lib/store';
import { Badge, Button, Card, DataTable, ErrorText, PageHeader, cx } from '../../components/ui';
import { qk } from '../../lib/queryKeys';
import { formatPrice, isScanCode } from './TopUp';
import { QrCode } from './QrCode';

/** A plan's name in the reader's language. */
export function planName(plan: Pick<Plan, 'name_en' | 'name_zh'>, lang: string): string {
  return lang === 'zh-CN' ? plan.name_zh : plan.name_en;
}

/** Subscription plans: buy or renew one through the same payment providers as a top-up, and
 * see (and cancel at period end) your subscriptions. */
export default function PlansPage() {
  const t = useT();
  const v = useValueName();
  const lang = useStore(langStore);
  const queryClient = useQueryClient();
  const [choice, setChoice] = useState<string | null>(null);
  const [scan, setScan] = useState<CreatedOrder | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const options = useQuery({ queryKey: qk.paymentOptions, queryFn: () => api<PaymentOptions>('billing/payment/options') });
  const plans = useQuery({ queryKey: qk.plans.offered, queryFn: () => api<Plan[]>('billing/plans') });
  const subs = useQuery({ queryKey: qk.subscriptions.mine, queryFn: () => api<Subscription[]>('billing/subscriptions') });
  const methods = (options.data?.providers ?? []).flatMap((p) => p.methods.map((m) => ({ key: `${p.provider}:${m}`, provider: p.provider, method: m })));
  const selected = methods.find((m) => m.key === choice) ?? methods[0];
  const active = new Set((subs.data ?? []).filter((s) => s.status === 'active').map((s) => s.plan.id));

  async function buy(plan: Plan) {
    if (!selected) return;
    setBusy(plan.id);
    setError(null);
    try {
      const created = await api<CreatedOrder>(`billing/plans/${plan.id}/orders`, { body: { provider: selected.provider, method: selected.method } });
      if (isScanCode(created.pay_url)) {
        setScan(created);
        setBusy(null);
        return;
      }
      window.location.assign(created.pay_url);
    } catch (err) {
      setError(err);
      setBusy(null);
    }
  }

  async function setCancel(sub: Subscription, cancel: boolean) {
    setError(null);
    await api(`billing/subscriptions/${sub.id}`, { method: 'PATCH', body: { cancel_at_period_end: cancel } }).catch(setError);
    queryClient.invalidateQueries({ queryKey: qk.subscriptions.all });
  }

  return (
    <div className="mx-auto max-w-4xl space-y-4 p-4">
      <PageHeader title={t('plans.title')}>
        <Link to="/billing/topup" className="inline-flex h-9 items-center rounded-md border border-border px-3.5 text-sm font-medium hover:bg-muted">
          {t('topup.action')}
        </Link>
      </PageHeader>
      <ErrorText error={options.error ?? plans.error ?? error} />
      {options.data && !options.data.enabled && <Card className="p-4 text-sm">{t('topup.disabled')}</Card>}
      {scan && (
        <Card className="flex flex-col items-center gap-2 p-4">
          <QrCode text={scan.pay_url} label={t('topup.scan')} />
          <p className="text-center text-sm">{t('topup.scan')}</p>
          <p className="text-sm font-medium">{formatPrice(scan.order.amount_minor, scan.order.currency)}</p>
        </Card>
      )}
      {options.data?.enabled && methods.length > 1 && (
        <fieldset className="space-y-2">
          <legend className="mb-1 text-sm font-medium">{t('topup.method')}</legend>
          <div className="flex flex-wrap gap-2">
            {methods.map((m) => (
              <label key={m.key} className={cx('flex min-h-11 cursor-pointer items-center gap-2 rounded-md border px-3 text-sm', selected?.key === m.key ? 'border-primary' : 'border-border')}>
                <input type="radio" name="method" checked={selected?.key === m.key} onChange={() => setChoice(m.key)} />
                {v(`pay_${m.method}`)}
              </label>
            ))}
          </div>
        </fieldset>
      )}
      {plans.data && plans.data.length === 0 && <p className="text-sm text-muted-fg">{t('plans.none')}</p>}
      <div className="grid gap-3 sm:grid-cols-2">
        {(plans.data ?? []).map((plan) => {
          const price = formatPrice(plan.price_minor, plan.currency);
          return (
            <Card key={plan.id} className="flex flex-col gap-2 p-4" data-testid="plan-card">
              <h2 className="text-lg font-semibold">{planName(plan, lang)}</h2>
              <p className="text-2xl font-semibold">{t(plan.period === 'year' ? 'plans.perYear' : 'plans.perMonth', { price })}</p>
              <p className="text-sm">{t('plans.quotaPerPeriod', { quota: money(plan.quota_per_period) })}</p>
              {plan.models.length > 0 && <p className="text-xs text-muted-fg">{t('plans.models', { models: plan.models.join(', ') })}</p>}
              {plan.group_name && <p className="text-xs text-muted-fg">{t('plans.group', { group: plan.group_name })}</p>}
              <Button className="mt-auto" disabled={!options.data?.enabled || !selected || busy !== null} onClick={() => buy(plan)}>
                {busy === plan.id ? t('topup.redirecting') : t(active.has(plan.id) ? 'plans.renew' : 'plans.subscribe', { price })}
              </Button>
            </Card>
          );
        })}
      </div>
      <p className="text-xs text-muted-fg">{t('plans.renewNote')}</p>
      <Card className="p-4">
        <h2 className="mb-3 font-semibold">{t('plans.mine')}</h2>
        <ErrorText error={subs.error} />
        <DataTable
          rows={subs.data ?? []}
          rowKey={(s) => s.id}
          empty={t('plans.noSubscriptions')}
          columns={[
            { header: t('common.name'), cell: (s) => planName(s.plan, lang) },
            { header: t('common.status'), cell: (s) => <>{<Badge tone={s.status === 'active' ? 'ok' : 'neutral'}>{v(s.status)}</Badge>} {s.status === 'active' && s.cancel_at_period_end && <span className="text-xs text-muted-fg">{t('plans.endsAtEnd')}</span>}</> },
            { header: t('plans.paidUntil'), cell: (s) => when(s.paid_until) },
            { header: t('plans.periods'), cell: (s) => `${s.granted_periods} / ${s.paid_periods}`, className: 'text-right' },
            {
              header: t('common.actions'),
              cell: (s) =>
                s.status === 'active' && (
                  <Button variant="secondary" size="sm" onClick={() => setCancel(s, !s.cancel_at_period_end)}>
                    {s.cancel_at_period_end ? t('plans.keep') : t('plans.cancelAtEnd')}
                  </Button>
                ),
            },
          ]}
        />
      </Card>
    </div>
  );
}
