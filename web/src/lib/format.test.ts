import { describe, expect, it } from 'vitest';
import { currencyStore, list, money } from './format';
import { setLang } from './settings';

describe('format', () => {
  it('shows quota units as dollars with enough digits for small amounts', () => {
    expect(money(0)).toBe('$0.00');
    expect(money(500_000)).toBe('$1.00');
    expect(money(11)).toBe('$0.000022');
    expect(money(-11)).toBe('-$0.000022');
    expect(money(25_000)).toBe('$0.05');
    expect(money(250_000)).toBe('$0.50');
    expect(money(8_700)).toBe('$0.0174');
    expect(money(5_249_912)).toBe('$10.50');
    expect(money(1_000, 1_000)).toBe('$1.00');
  });

  it('shows the same amount in yuan or in units when the admin or the user chooses so', () => {
    const cny = { display: 'cny' as const, quotaPerUsd: 500_000, cnyPerUsd: 7.2 };
    expect(money(500_000, undefined, cny)).toBe('¥7.20');
    expect(money(11, undefined, cny)).toBe('¥0.000158');
    expect(money(-1_000, 1_000, cny)).toBe('-¥7.20');
    const units = { display: 'units' as const, quotaPerUsd: 500_000, cnyPerUsd: 7.2 };
    expect(money(1_234_567, undefined, units)).toBe('1,234,567 units');
    setLang('zh-CN');
    expect(money(-42, undefined, units)).toBe('-42 点');
    setLang('en');
    // Everything that calls money() follows the store the settings feed.
    currencyStore.set(cny);
    expect(money(250_000)).toBe('¥3.60');
    currencyStore.set({ display: 'usd', quotaPerUsd: 1_000, cnyPerUsd: 7.2 });
    expect(money(250)).toBe('$0.25');
    currencyStore.set({ display: 'usd', quotaPerUsd: 500_000, cnyPerUsd: 7.2 });
  });

  it('splits comma and newline lists', () => {
    expect(list(' a, b,,\nc ')).toEqual(['a', 'b', 'c']);
  });
});
