import { useState } from 'react';
import { Link, useSearchParams } from 'react-router-dom';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { money, when } from '../../lib/format';
import type { CouponQuote, CreatedOrder, Page, PaymentOptions, PaymentOrder, Quota } from '../../lib/types';
import { useT, useValueName } from '../../i18n';
import { Badge, Button, Card, DataTable, ErrorText, Field, Input, PageHeader, Pager, cx } from '../../components/ui';
import { qk } from '../../lib/queryKeys';
import { QrCode } from './QrCode';

/** An amount in minor units (fen, cents) as the payer reads it: `¥10.00`, `$10.00`. */
export function formatPrice(minor: number, currency: string | null | undefined): string {
  const sign = currency === 'USD' ? '$' : '¥';
  return `${sign}${(minor / 100).toFixed(2)}`;
}

/** What the user typed (`12.5`, `12.50`, `12`) in minor units; null when it is not an amount. */
export function parsePrice(typed: string): number | null {
  const m = /^\s*(\d{1,9})(?:\.(\d{1,2}))?\s*$/.exec(typed);
  if (!m) return null;
  return Number(m[1]) * 100 + Number((m[2] ?? '').padEnd(2, '0'));
}

const finalStatuses = new Set(['paid', 'failed', 'expired', 'partially_refunded', 'refunded']);

/** Whether the provider's answer is a code to scan (WeChat Pay Native) rather than a page to open. */
export function isScanCode(payUrl: string): boolean {
  return payUrl.startsWith('weixin://');
}

/** The order the payer came back with (`?order=`), polled until the provider's word arrives. */
function ReturnedOrder({ id }: { id: string }) {
  const t = useT();
  const v = useValueName();
  const queryClient = useQueryClient();
  const order = useQuery({
    queryKey: qk.orders.one(id),
    queryFn: async () => {
      const o = await api<PaymentOrder>(`billing/orders/${encodeURIComponent(id)}`);
      if (o.status === 'paid') {
        queryClient.invalidateQueries({ queryKey: qk.quota });
        queryClient.invalidateQueries({ queryKey: qk.ledger.all });
        queryClient.invalidateQueries({ queryKey: qk.orders.all });
      }
      return o;
    },
    refetchInterval: (q) => (q.state.data && finalStatuses.has(q.state.data.status) ? false : 2000),
  });
  if (order.error) return <ErrorText error={order.error} />;
  const o = order.data;
  return (
    <Card className={cx('p-4', o?.status === 'paid' && 'border-ok')} data-testid="returned-order">
      {!o || o.status === 'pending' ? (
        <p className="text-sm">{t('topup.waiting')}</p>
      ) : o.status === 'paid' ? (
        <p className="text-sm text-ok">{t('topup.paid', { amount: formatPrice(o.amount_minor, o.currency), quota: money(o.quota) })}</p>
      ) : (
        <p className="text-sm text-danger">
          {t('topup.notPaid')} <Badge tone="danger">{v(o.status)}</Badge>
        </p>
      )}
    </Card>
  );
}

/** Top-up: pick an amount and a payment method, pay on the provider's page, come back. */
export default function TopUpPage() {
  const t = useT();
  const v = useValueName();
  const [params, setParams] = useSearchParams();
  const returned = params.get('order');
  const [scan, setScan] = useState<CreatedOrder | null>(null);
  const [coupon, setCoupon] = useState('');
  const [quote, setQuote] = useState<CouponQuote | null>(null);
  const [couponError, setCouponError] = useState<unknown>(null);
  const [amount, setAmount] = useState('');
  const [choice, setChoice] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [page, setPage] = useState(1);
  const options = useQuery({ queryKey: qk.paymentOptions, queryFn: () => api<PaymentOptions>('billing/payment/options') });
  const quota = useQuery({ queryKey: qk.quota, queryFn: () => api<Quota>('billing/quota') });
  const orders = useQuery({ queryKey: qk.orders.page(page), queryFn: () => api<Page<PaymentOrder>>(`billing/orders?page=${page}&per_page=10`) });
  const o = options.data;
  const methods = (o?.providers ?? []).flatMap((p) => p.methods.map((m) => ({ key: `${p.provider}:${m}`, provider: p.provider, method: m })));
  const selected = methods.find((m) => m.key === choice) ?? methods[0];
  const minor = parsePrice(amount);
  const outOfRange = minor !== null && o ? minor < o.min_amount || minor > o.max_amount : false;
  const buys = minor !== null && o ? Math.floor((minor * o.quota_per_unit) / 100) : null;

  const applied = quote && quote.amount === minor ? quote : null;

  async function applyCoupon() {
    if (minor === null || !coupon.trim()) return;
    setCouponError(null);
    setQuote(null);
    try {
      setQuote(await api<CouponQuote>('billing/coupons/quote', { body: { code: coupon.trim(), amount: minor } }));
    } catch (err) {
      setCouponError(err);
    }
  }

  async function pay() {
    if (minor === null || !selected) return;
    setBusy(true);
    setError(null);
    try {
      const body = { amount: minor, provider: selected.provider, method: selected.method, coupon: coupon.trim() || undefined };
      const created = await api<CreatedOrder>('billing/orders', { body });
      if (isScanCode(created.pay_url)) {
        // Nothing to open: the payer scans the code, and this page polls the order.
        setScan(created);
        setParams({ order: created.order.id });
        setBusy(false);
        return;
      }
      window.location.assign(created.pay_url);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  }

  return (
    <div className="mx-auto max-w-3xl space-y-4 p-4">
      <PageHeader title={t('topup.title')}>
        <span className="text-sm text-muted-fg">
          {t('usage.balance')}: <span data-testid="topup-balance">{quota.data ? money(quota.data.balance, quota.data.quota_per_usd) : '…'}</span>
        </span>
      </PageHeader>
      {scan && scan.order.id === returned && (
        <Card className="flex flex-col items-center gap-2 p-4">
          <QrCode text={scan.pay_url} label={t('topup.scan')} />
          <p className="text-center text-sm">{t('topup.scan')}</p>
          <p className="text-sm font-medium">{formatPrice(scan.order.amount_minor, scan.order.currency)}</p>
        </Card>
      )}
      {returned && <ReturnedOrder id={returned} />}
      <ErrorText error={options.error} />
      {o && !o.enabled && (
        <Card className="p-4 text-sm">
          {t('topup.disabled')} <Link className="text-primary underline" to="/usage">{t('usage.redeem')}</Link>
        </Card>
      )}
      {o?.enabled && (
        <Card className="space-y-4 p-4">
          <div className="flex flex-wrap gap-2" role="group" aria-label={t('topup.amount')}>
            {o.amounts.map((a) => (
              <Button key={a} variant={minor === a ? 'primary' : 'secondary'} onClick={() => setAmount((a / 100).toFixed(2))}>
                {formatPrice(a, o.currency)}
              </Button>
            ))}
          </div>
          <Field label={t('topup.amount')} hint={t('topup.range', { min: formatPrice(o.min_amount, o.currency), max: formatPrice(o.max_amount, o.currency) })}>
            <Input inputMode="decimal" value={amount} onChange={(e) => setAmount(e.target.value)} placeholder="10.00" aria-invalid={outOfRange || (amount !== '' && minor === null)} />
          </Field>
          {buys !== null && !outOfRange && <p className="text-sm text-muted-fg" data-testid="topup-buys">{t('topup.buys', { quota: money(buys) })}</p>}
          {outOfRange && <p className="text-sm text-danger">{t('topup.outOfRange')}</p>}
          <Field label={`${t('topup.coupon')} (${t('common.optional')})`}>
            <div className="flex gap-2">
              <Input value={coupon} onChange={(e) => { setCoupon(e.target.value); setQuote(null); setCouponError(null); }} placeholder="SPRING20" autoCapitalize="characters" />
              <Button variant="secondary" disabled={minor === null || !coupon.trim()} onClick={applyCoupon}>{t('topup.applyCoupon')}</Button>
            </div>
          </Field>
          <ErrorText error={couponError} />
          {applied && (
            <p className="text-sm text-ok" data-testid="topup-discount">
              {t('topup.discount', { discount: formatPrice(applied.discount, o.currency), pay: formatPrice(applied.pay_amount, o.currency) })}
            </p>
          )}
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
          <ErrorText error={error} />
          <Button disabled={busy || minor === null || outOfRange || !selected} onClick={pay} className="w-full sm:w-auto">
            {busy ? t('topup.redirecting') : t('topup.pay', { amount: minor === null ? '' : formatPrice(applied ? applied.pay_amount : minor, o.currency) })}
          </Button>
        </Card>
      )}
      <Card className="p-4">
        <h2 className="mb-3 font-semibold">{t('topup.orders')}</h2>
        <ErrorText error={orders.error} />
        <DataTable
          rows={orders.data?.items ?? []}
          rowKey={(r) => r.id}
          empty={t('topup.noOrders')}
          columns={[
            { header: t('common.time'), cell: (r) => when(r.created_at) },
            {
              header: t('topup.amount'),
              cell: (r) => (
                <>
                  {formatPrice(r.amount_minor, r.currency)}
                  {r.discount_minor > 0 && <span className="block text-xs text-muted-fg">−{formatPrice(r.discount_minor, r.currency)}</span>}
                </>
              ),
              className: 'text-right',
            },
            { header: t('topup.quota'), cell: (r) => money(r.quota), className: 'text-right' },
            { header: t('topup.method'), cell: (r) => v(`pay_${r.method ?? r.provider}`) },
            { header: t('common.status'), cell: (r) => <Badge tone={r.status === 'paid' ? 'ok' : r.status === 'failed' ? 'danger' : r.status === 'partially_refunded' ? 'primary' : 'neutral'}>{v(r.status)}</Badge> },
          ]}
        />
        <Pager page={page} perPage={10} total={orders.data?.total ?? 0} onPage={setPage} />
      </Card>
    </div>
  );
}
