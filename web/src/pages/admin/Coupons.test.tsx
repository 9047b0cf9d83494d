// Coupons: what the form sends, and how a discount reads.
import { describe, expect, it } from 'vitest';
import { couponBody, couponValue } from './Coupons';

describe('coupon form', () => {
  it('sends money in minor units and leaves out what was not given', () => {
    const body = couponBody({ code: ' spring ', name: 'Spring', kind: 'fixed', value: '5.5', min_spend: '20', starts_at: '', ends_at: '', total_limit: '', per_user_limit: '1', first_purchase_only: true, scope: 'all', plan_ids: [] });
    expect(body).toEqual({ code: 'spring', name: 'Spring', percent_off: undefined, amount_off: 550, min_spend: 2000, starts_at: undefined, ends_at: undefined, total_limit: undefined, per_user_limit: 1, first_purchase_only: true, scope: 'all', plan_ids: [] });
    const form = { code: 'P', name: 'P', kind: 'percent', value: '20', min_spend: '', starts_at: '', ends_at: '', total_limit: '3', per_user_limit: '', first_purchase_only: false, scope: 'plan', plan_ids: ['p1'] };
    const pct = couponBody(form);
    expect([pct.percent_off, pct.amount_off, pct.min_spend, pct.total_limit, pct.per_user_limit]).toEqual([20, undefined, 0, 3, undefined]);
    // An amount that is not money is sent as -1, which the server refuses with the field named.
    expect(couponBody({ ...form, kind: 'fixed', value: 'five' }).amount_off).toBe(-1);
    // The scope goes as chosen; a top-up coupon drops plans ticked before the scope changed.
    expect([pct.scope, pct.plan_ids]).toEqual(['plan', ['p1']]);
    expect(couponBody({ ...form, scope: 'topup' }).plan_ids).toEqual([]);
  });

  it('reads a discount as a percentage or an amount', () => {
    expect(couponValue({ kind: 'percent', percent_off: 20, amount_off: 0, currency: 'CNY' })).toBe('20%');
    expect(couponValue({ kind: 'fixed', percent_off: 0, amount_off: 500, currency: 'CNY' })).toBe('¥5.00');
  });
});
