// The request log's pure helpers: the API query of the filters, numbers for people, and the
// bounded concurrency of "test all channels".
import { describe, expect, it } from 'vitest';
import { eachLimited, errorRate, isId, logQuery, ms, noFilters, outcomeTone } from './requestLog';

describe('the request log query', () => {
  it('sends only the filters that are set, the user as an id, and the cursor', () => {
    expect(logQuery(noFilters, null)).toBe('limit=50');
    const q = new URLSearchParams(
      logQuery({ ...noFilters, key: ' k1 ', model: 'gpt-4o', channel: 'c1', status: 'error', from: '2026-12-01T08:00' }, 'u1', 'cur', 10),
    );
    expect(q.get('user_id')).toBe('u1');
    expect(q.get('key_id')).toBe('k1');
    expect(q.get('model')).toBe('gpt-4o');
    expect(q.get('channel_id')).toBe('c1');
    expect(q.get('status')).toBe('error');
    expect(q.get('from')).toBe(new Date('2026-12-01T08:00').toISOString());
    expect(q.get('to')).toBeNull();
    expect(q.get('cursor')).toBe('cur');
    expect(q.get('limit')).toBe('10');
  });

  it('tells ids from usernames', () => {
    expect(isId('0190a0a0-0000-7000-8000-000000000000')).toBe(true);
    expect(isId('ada')).toBe(false);
  });
});

describe('numbers for people', () => {
  it('formats error rates, durations and outcome tones', () => {
    expect(errorRate(0, 0)).toBe('—');
    expect(errorRate(0, 10)).toBe('0%');
    expect(errorRate(1, 8)).toBe('13%');
    expect(errorRate(1, 200)).toBe('0.5%');
    expect(ms(null)).toBe('—');
    expect(ms(850)).toBe('850 ms');
    expect(ms(1250)).toBe('1.3 s');
    expect(outcomeTone('ok')).toBe('ok');
    expect(outcomeTone('retry')).toBe('danger');
    expect(outcomeTone('error')).toBe('danger');
    expect(outcomeTone('refused')).toBe('neutral');
  });
});

describe('test all channels', () => {
  it('runs every task, never more than the limit at once, and goes on after a failure', async () => {
    let running = 0;
    let most = 0;
    const done: number[] = [];
    await eachLimited([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, 5 + (n % 3)));
      running--;
      if (n === 2) throw new Error('this channel failed');
      done.push(n);
    });
    expect(most).toBe(3);
    expect(done.sort()).toEqual([1, 3, 4, 5, 6, 7]);
  });
});
