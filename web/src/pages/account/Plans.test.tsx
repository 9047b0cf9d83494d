// Plans: which action a plan's card offers, from the current subscription and the preview.
import { describe, expect, it } from 'vitest';
import type { ChangePreview, Plan, Subscription } from '../../lib/types';
import { changeable, planAction } from './Plans';

const plan = (id: string, price: number): Plan => ({ id, name_en: id, name_zh: id, currency: 'CNY', price_minor: price, price: '', period: 'month', quota_per_period: 1, group_name: null, models: [], active: true, created_at: '' });
const sub = (p: Plan, more: Partial<Subscription> = {}): Subscription => ({
  id: `s-${p.id}`, user_id: 'u', plan: p, status: 'active', started_at: '2026-12-01T00:00:00Z', paid_periods: 1, granted_periods: 1,
  current_period_start: '2026-12-01T00:00:00Z', paid_until: '2027-01-01T00:00:00Z', cancel_at_period_end: false, scheduled_plan: null, upcoming: false, ...more,
});
const preview = (kind: 'upgrade' | 'downgrade', pay: number, credit: number): ChangePreview => ({
  kind, subscription_id: 's', from_plan_id: 'a', to_plan_id: 'b', effective_at: '2027-01-01T00:00:00Z', price_minor: 0, credit_minor: credit,
  forfeited_minor: 0, pay_minor: pay, pay: '', quota_offset: 0, first_grant: 0,
});

describe('plan actions', () => {
  const basic = plan('basic', 990);
  const pro = plan('pro', 2900);

  it('subscribes, renews, upgrades at the previewed price and downgrades', () => {
    expect(planAction(pro, undefined, undefined)).toEqual({ kind: 'subscribe', pay: 2900 });
    expect(planAction(basic, sub(basic), undefined)).toEqual({ kind: 'renew', pay: 990 });
    expect(planAction(pro, sub(basic), preview('upgrade', 2240, 660))).toEqual({ kind: 'upgrade', pay: 2240, credit: 660 });
    expect(planAction(basic, sub(pro), preview('downgrade', 0, 0))).toEqual({ kind: 'downgrade', pay: 0, from: '2027-01-01T00:00:00Z' });
    // No preview (still loading, or refused: renewed ahead): buying it separately stays possible.
    expect(planAction(pro, sub(basic), undefined)).toEqual({ kind: 'subscribe', pay: 2900 });
  });

  it('shows a scheduled downgrade instead of offering it again', () => {
    const current = sub(pro, { scheduled_plan: basic });
    expect(planAction(basic, current, preview('downgrade', 0, 0))).toEqual({ kind: 'scheduled', pay: 0, from: current.paid_until });
  });

  it('changes from the newest active subscription that has begun', () => {
    const waiting = sub(basic, { upcoming: true });
    const ended = sub(pro, { status: 'upgraded' });
    const running = sub(pro);
    expect(changeable([waiting, ended, running])).toBe(running);
    expect(changeable([ended])).toBeUndefined();
  });
});
