import { useState } from 'react';
import { Link } from 'react-router-dom';
import { useQueries, useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { money, when } from '../../lib/format';
import type { ChangePreview, ChangeResult, CouponQuote, CreatedOrder, PaymentOptions, Plan, Subscription } from '../../lib/types';
import { useT, useValueName } from '../../i18n';
import { langStore } from '../../lib/settings';
import { useStore } from '../../lib/store';
import { Badge, Button, Card, DataTable, ErrorText, Field, Input, PageHeader, cx } from '../../components/ui';
import { qk } from '../../lib/queryKeys';
import { formatPrice, isScanCode } from './TopUp';
import { QrCode } from './QrCode';

/** A plan's name in the reader's language. */
export function planName(plan: Pick<Plan, 'name_en' | 'name_zh'>, lang: string): string {
  return lang === 'zh-CN' ? plan.name_zh : plan.name_en;
}

/** The subscription a change of plan starts from: the newest active one that has begun. */
export function changeable(subs: Subscription[]): Subscription | undefined {
  return subs.find((s) => s.status === 'active' && !s.upcoming);
}

/** What a plan's card offers, and what it costs now (before a coupon). */
export type PlanAction =
  | { kind: 'subscribe' | 'renew'; pay: number }
  | { kind: 'upgrade'; pay: number; credit: number }
  | { kind: 'downgrade'; pay: 0; from: string }
  | { kind: 'scheduled'; pay: 0; from: string };

/** The card's action: subscribe without a current plan (or when no change can be made), renew
 * the current plan, upgrade at the previewed price, or downgrade (or show the scheduled one). */
export function planAction(plan: Plan, current: Subscription | undefined, preview: ChangePreview | undefined): PlanAction {
  if (!current) return { kind: 'subscribe', pay: plan.price_minor };
  if (current.plan.id === plan.id) return { kind: 'renew', pay: plan.price_minor };
  if (current.scheduled_plan?.id === plan.id) return { kind: 'scheduled', pay: 0, from: current.paid_until };
  if (preview?.kind === 'upgrade') return { kind: 'upgrade', pay: preview.pay_minor, credit: preview.credit_minor };
  if (preview?.kind === 'downgrade') return { kind: 'downgrade', pay: 0, from: preview.effective_at };
  return { kind: 'subscribe', pay: plan.price_minor };
}

/** Subscription plans: buy or renew one through the same payment providers as a top-up (with a
 * coupon), move to a dearer plan now or a cheaper one at period end, and see (and cancel at
 * period end) your subscriptions. */
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
  const current = changeable(subs.data ?? []);
  const [coupon, setCoupon] = useState('');
  const [quotes, setQuotes] = useState<Record<string, CouponQuote>>({});
  const [couponError, setCouponError] = useState<unknown>(null);
  const others = (plans.data ?? []).filter((p) => current && p.id !== current.plan.id);
  const previews = useQueries({
    queries: others.map((p) => ({
      queryKey: qk.subscriptions.change(current?.id ?? '', p.id),
      queryFn: () => api<ChangePreview>(`billing/subscriptions/${current?.id}/change/preview`, { body: { plan_id: p.id } }),
      enabled: !!current,
      retry: false,
    })),
  });
  const previewOf = (plan: Plan) => previews[others.findIndex((p) => p.id === plan.id)]?.data;
  const actionOf = (plan: Plan) => planAction(plan, current, previewOf(plan));

  async function applyCoupon() {
    const code = coupon.trim();
    if (!code) return;
    setCouponError(null);
    setQuotes({});
    const found: Record<string, CouponQuote> = {};
    let refusal: unknown = null;
    for (const plan of plans.data ?? []) {
      const action = actionOf(plan);
      if (action.pay <= 0) continue;
      try {
        found[plan.id] = await api<CouponQuote>('billing/coupons/quote', { body: { code, amount: action.pay, plan_id: plan.id } });
      } catch (err) {
        refusal = refusal ?? err;
      }
    }
    setQuotes(found);
    // Shown only when the coupon fits none of the plans; otherwise the cards say where it applies.
    if (Object.keys(found).length === 0) setCouponError(refusal);
  }

  /** Where to pay: the provider's page, or a QR code to scan here. */
  function go(created: CreatedOrder) {
    if (isScanCode(created.pay_url)) {
      setScan(created);
      setBusy(null);
      return;
    }
    window.location.assign(created.pay_url);
  }

  async function buy(plan: Plan) {
    if (!selected) return;
    const action = actionOf(plan);
    setBusy(plan.id);
    setError(null);
    const code = quotes[plan.id] ? coupon.trim() : undefined;
    try {
      if (current && (action.kind === 'upgrade' || action.kind === 'downgrade')) {
        const done = await api<ChangeResult>(`billing/subscriptions/${current.id}/change`, { body: { plan_id: plan.id, provider: selected.provider, method: selected.method, coupon: code } });
        if (done.order && done.pay_url) {
          go({ order: done.order, pay_url: done.pay_url });
          return;
        }
        setBusy(null);
        queryClient.invalidateQueries({ queryKey: qk.subscriptions.all });
        return;
      }
      go(await api<CreatedOrder>(`billing/plans/${plan.id}/orders`, { body: { provider: selected.provider, method: selected.method, coupon: code } }));
    } catch (err) {
      setError(err);
      setBusy(null);
    }
  }

  async function cancelDowngrade(sub: Subscription) {
    setError(null);
    await api(`billing/subscriptions/${sub.id}/change`, { method: 'DELETE' }).catch(setError);
    queryClient.invalidateQueries({ queryKey: qk.subscriptions.all });
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
      {options.data?.enabled && (plans.data?.length ?? 0) > 0 && (
        <div className="space-y-1">
          <Field label={`${t('topup.coupon')} (${t('common.optional')})`}>
            <div className="flex gap-2">
              <Input value={coupon} onChange={(e) => { setCoupon(e.target.value); setQuotes({}); setCouponError(null); }} placeholder="PLAN20" autoCapitalize="characters" />
              <Button variant="secondary" disabled={!coupon.trim()} onClick={applyCoupon}>{t('topup.applyCoupon')}</Button>
            </div>
          </Field>
          <ErrorText error={couponError} />
        </div>
      )}
      {plans.data && plans.data.length === 0 && <p className="text-sm text-muted-fg">{t('plans.none')}</p>}
      <div className="grid gap-3 sm:grid-cols-2">
        {(plans.data ?? []).map((plan) => {
          const price = formatPrice(plan.price_minor, plan.currency);
          const action = actionOf(plan);
          const quote = quotes[plan.id];
          const applied = quote && quote.amount === action.pay ? quote : undefined;
          const pay = formatPrice(applied ? applied.pay_amount : action.pay, plan.currency);
          const label =
            action.kind === 'upgrade' ? t('plans.upgrade', { price: pay })
            : action.kind === 'downgrade' ? t('plans.downgrade')
            : action.kind === 'renew' ? t('plans.renew', { price: pay })
            : t('plans.subscribe', { price: pay });
          return (
            <Card key={plan.id} className="flex flex-col gap-2 p-4" data-testid="plan-card">
              <h2 className="text-lg font-semibold">{planName(plan, lang)}</h2>
              <p className="text-2xl font-semibold">{t(plan.period === 'year' ? 'plans.perYear' : 'plans.perMonth', { price })}</p>
              <p className="text-sm">{t('plans.quotaPerPeriod', { quota: money(plan.quota_per_period) })}</p>
              {plan.models.length > 0 && <p className="text-xs text-muted-fg">{t('plans.models', { models: plan.models.join(', ') })}</p>}
              {plan.group_name && <p className="text-xs text-muted-fg">{t('plans.group', { group: plan.group_name })}</p>}
              {action.kind === 'upgrade' && (
                <p className="text-sm" data-testid="plan-proration">{t('plans.credit', { credit: formatPrice(action.credit, plan.currency) })}</p>
              )}
              {action.kind === 'downgrade' && <p className="text-sm text-muted-fg">{t('plans.downgradeNote', { date: when(action.from), price })}</p>}
              {applied && (
                <p className="text-sm" data-testid="plan-discount">
                  <span className="text-muted-fg line-through">{formatPrice(applied.amount, plan.currency)}</span>{' '}
                  <span className="font-semibold">{pay}</span> · {t('plans.couponOff', { off: formatPrice(applied.discount, plan.currency) })}
                </p>
              )}
              {action.kind === 'renew' && current?.scheduled_plan && <p className="text-sm text-muted-fg">{t('plans.cancelToRenew')}</p>}
              {action.kind === 'scheduled' ? (
                <p className="mt-auto text-sm"><Badge tone="primary">{t('plans.scheduled', { date: when(action.from) })}</Badge></p>
              ) : (
                <Button className="mt-auto" data-testid={`plan-${action.kind}`} disabled={!options.data?.enabled || !selected || busy !== null || (action.kind === 'renew' && !!current?.scheduled_plan)} onClick={() => buy(plan)}>
                  {busy === plan.id ? t('topup.redirecting') : label}
                </Button>
              )}
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
            {
              header: t('common.status'),
              cell: (s) => (
                <>
                  <Badge tone={s.status === 'active' ? 'ok' : 'neutral'}>{v(s.status)}</Badge>{' '}
                  {s.status === 'active' && s.cancel_at_period_end && <span className="text-xs text-muted-fg">{t('plans.endsAtEnd')}</span>}
                  {s.status === 'active' && s.upcoming && <span className="text-xs text-muted-fg">{t('plans.startsOn', { date: when(s.started_at) })}</span>}
                  {s.status === 'active' && s.scheduled_plan && (
                    <span className="text-xs text-muted-fg" data-testid="scheduled-downgrade">{t('plans.switchesTo', { plan: planName(s.scheduled_plan, lang), date: when(s.paid_until) })}</span>
                  )}
                </>
              ),
            },
            { header: t('plans.paidUntil'), cell: (s) => when(s.paid_until) },
            // A refund that ended a subscription took back its last grant: granted then exceeds paid, so only what is paid is shown.
            { header: t('plans.periods'), cell: (s) => (s.status === 'refunded' ? String(s.paid_periods) : `${s.granted_periods} / ${s.paid_periods}`), className: 'text-right' },
            {
              header: t('common.actions'),
              cell: (s) =>
                s.status === 'active' &&
                (s.scheduled_plan ? (
                  <Button variant="secondary" size="sm" onClick={() => cancelDowngrade(s)}>
                    {t('plans.cancelDowngrade')}
                  </Button>
                ) : (
                  <Button variant="secondary" size="sm" onClick={() => setCancel(s, !s.cancel_at_period_end)}>
                    {s.cancel_at_period_end ? t('plans.keep') : t('plans.cancelAtEnd')}
                  </Button>
                )),
            },
          ]}
        />
      </Card>
    </div>
  );
}
