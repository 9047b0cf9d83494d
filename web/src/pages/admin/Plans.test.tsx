// Plans: what the admin form sends, and which name a reader sees.
import { describe, expect, it } from 'vitest';
import { planBody } from './Plans';
import { planName } from '../account/Plans';

describe('plan form', () => {
  it('sends the price in minor units, models as a list and leaves out an empty group', () => {
    const body = planBody({ name_en: ' Pro ', name_zh: '专业版', price: '29.9', period: 'year', quota_per_period: '1000000', group_name: ' ', models: 'gpt-4o, , claude-sonnet-4 ' });
    expect(body).toEqual({ name_en: 'Pro', name_zh: '专业版', price: 2990, period: 'year', quota_per_period: 1_000_000, group_name: undefined, models: ['gpt-4o', 'claude-sonnet-4'] });
    // What is not a number is sent as -1, which the server refuses with the field named.
    const bad = planBody({ name_en: 'a', name_zh: 'b', price: 'free', period: 'month', quota_per_period: '', group_name: 'vip', models: '' });
    expect([bad.price, bad.quota_per_period, bad.group_name, bad.models]).toEqual([-1, -1, 'vip', []]);
  });

  it('names a plan in the reader’s language', () => {
    const plan = { name_en: 'Pro monthly', name_zh: '专业版（月付）' };
    expect(planName(plan, 'zh-CN')).toBe('专业版（月付）');
    expect(planName(plan, 'en')).toBe('Pro monthly');
  });
});
