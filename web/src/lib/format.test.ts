import { describe, expect, it } from 'vitest';
import { list, money } from './format';

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

  it('splits comma and newline lists', () => {
    expect(list(' a, b,,\nc ')).toEqual(['a', 'b', 'c']);
  });
});
