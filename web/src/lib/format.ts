import { langStore } from './settings';
import { createStore } from './store';

/** Default quota units per US dollar (the server's `quota_per_usd` overrides where known). */
export const UNITS_PER_USD = 500_000;

/** How amounts of quota are shown: raw units, US dollars or yuan. */
export type CurrencyDisplay = 'units' | 'usd' | 'cny';

/** What [`money`] needs to know: the display the admin chose (or the user's own), the rate. */
export interface CurrencySettings {
  /** The currency amounts are shown in. */
  display: CurrencyDisplay;
  /** Quota units per US dollar (`billing.quota_per_usd`). */
  quotaPerUsd: number;
  /** Yuan per US dollar (display only). */
  cnyPerUsd: number;
}

/**
 * The currency in effect: the server's public settings, overridden by the signed-in user's
 * preference (`useCurrencySettings` keeps it current). Dollars until the server says otherwise.
 */
export const currencyStore = createStore<CurrencySettings>({ display: 'usd', quotaPerUsd: UNITS_PER_USD, cnyPerUsd: 7.2 });

/** `amount` of a currency with enough digits to see small charges: whole cents from one up,
 * below that up to six decimals with trailing zeros dropped down to two. */
function decimals(amount: number): string {
  const abs = Math.abs(amount);
  return abs >= 1 ? abs.toFixed(2) : abs.toFixed(6).replace(/(\.\d\d\d*?)0+$/, '$1');
}

/**
 * Quota units the way users count them: `$0.0123`, `¥0.0886` or `24,600 units` — the one
 * formatter every page uses for balances, costs, prices, codes and top-ups. `perUsd` is the
 * server's rate where an answer carries it; `settings` defaults to the currency in effect.
 */
export function money(units: number, perUsd?: number, settings: CurrencySettings = currencyStore.get()): string {
  const sign = units < 0 ? '-' : '';
  if (settings.display === 'units') {
    return `${sign}${new Intl.NumberFormat(langStore.get()).format(Math.abs(units))} ${langStore.get() === 'zh-CN' ? '点' : 'units'}`;
  }
  const usd = units / (perUsd ?? settings.quotaPerUsd);
  if (settings.display === 'cny') return `${sign}¥${decimals(usd * settings.cnyPerUsd)}`;
  return `${sign}$${decimals(usd)}`;
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
