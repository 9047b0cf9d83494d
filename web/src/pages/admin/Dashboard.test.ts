import { describe, expect, it } from 'vitest';
import { totals } from './Dashboard';
import type { DailyUsage } from '../../lib/types';

const row = (over: Partial<DailyUsage>): DailyUsage => ({
  day: '2026-12-04', key: 'm', requests: 0, prompt_tokens: 0, completion_tokens: 0, cost: 0,
  overrun_requests: 0, overrun: 0, uncollected: 0, ...over,
});

describe('admin dashboard totals', () => {
  it('sums spend, tokens and how often and how far costs went beyond their holds', () => {
    const t = totals([
      row({ requests: 3, cost: 100, prompt_tokens: 10, completion_tokens: 5, overrun_requests: 1, overrun: 40, uncollected: 0 }),
      row({ key: 'n', requests: 2, cost: 50, overrun_requests: 2, overrun: 900, uncollected: 700 }),
    ]);
    expect(t).toEqual({ cost: 150, requests: 5, tokens: 15, overrunRequests: 3, overrun: 940, uncollected: 700 });
  });
});
