import { langStore } from './settings';

/** Default quota units per US dollar (the server's `quota_per_usd` overrides where known). */
export const UNITS_PER_USD = 500_000;

/** Quota units as dollars, e.g. `$0.0123`. */
export function money(units: number, perUsd = UNITS_PER_USD): string {
  const usd = Math.abs(units / perUsd);
  // Whole cents from a dollar up; below that, enough digits to see small charges, with
  // trailing zeros dropped down to two decimals.
  const text = usd >= 1 ? usd.toFixed(2) : usd.toFixed(6).replace(/(\.\d\d\d*?)0+$/, '$1');
  return `${units < 0 ? '-' : ''}$${text}`;
}

/** A whole number with grouping in the UI language. */
export function num(n: number): string {
  return new Intl.NumberFormat(langStore.get()).format(n);
}

/** A date-time in the UI language. */
export function when(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return new Intl.DateTimeFormat(langStore.get(), { dateStyle: 'medium', timeStyle: 'short' }).format(d);
}

/** Splits a comma (or newline) separated field into trimmed, non-empty items. */
export function list(text: string): string[] {
  return text
    .split(/[,\n]/)
    .map((s) => s.trim())
    .filter(Boolean);
}
