// Types and pure helpers of the admin request log and channel statistics (tested on their own).
import type { components } from '../../lib/api-types';

type Schemas = components['schemas'];

/** One relayed request in the admin log. */
export type LoggedRequest = Schemas['LoggedRequest'];
/** A page of the log. */
export type LoggedRequestPage = Schemas['LoggedRequestPage'];
/** A request with its routing decisions and attempts. */
export type LoggedRequestDetail = Schemas['LoggedRequestDetail'];
/** One upstream attempt. */
export type LoggedAttempt = Schemas['LoggedAttempt'];
/** Per-channel statistics over a range. */
export type ChannelStats = Schemas['ChannelStats'];
/** One channel's statistics. */
export type ChannelStat = Schemas['ChannelStat'];

/** The filters of the request log, as typed in the form. */
export interface LogFilters {
  user: string;
  key: string;
  model: string;
  channel: string;
  status: '' | 'ok' | 'error' | 'refused';
  /** `datetime-local` values (the browser's local time). */
  from: string;
  to: string;
}

/** No filter at all. */
export const noFilters: LogFilters = { user: '', key: '', model: '', channel: '', status: '', from: '', to: '' };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether `text` is an id (a UUID) rather than a name. */
export const isId = (text: string) => UUID.test(text.trim());

/** A `datetime-local` value as RFC 3339 (UTC), or `null` when empty or not a time. */
export function localToIso(value: string): string | null {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** The query string of the log's API for `filters`, with the user already resolved to an id. */
export function logQuery(filters: LogFilters, userId: string | null, cursor?: string | null, limit = 50): string {
  const q = new URLSearchParams();
  if (userId) q.set('user_id', userId);
  if (filters.key.trim()) q.set('key_id', filters.key.trim());
  if (filters.model.trim()) q.set('model', filters.model.trim());
  if (filters.channel) q.set('channel_id', filters.channel);
  if (filters.status) q.set('status', filters.status);
  const from = localToIso(filters.from);
  const to = localToIso(filters.to);
  if (from) q.set('from', from);
  if (to) q.set('to', to);
  q.set('limit', String(limit));
  if (cursor) q.set('cursor', cursor);
  return q.toString();
}

/** The badge tone of a request's or an attempt's outcome. */
export function outcomeTone(outcome: string): 'ok' | 'danger' | 'neutral' {
  if (outcome === 'ok') return 'ok';
  if (outcome === 'refused' || outcome === 'unsupported') return 'neutral';
  return 'danger';
}

/** Errors as a share of requests, e.g. `12.5%` (`—` without requests). */
export function errorRate(errors: number, requests: number): string {
  if (requests <= 0) return '—';
  const pct = (errors / requests) * 100;
  return `${pct >= 10 || pct === 0 ? pct.toFixed(0) : pct.toFixed(1)}%`;
}

/** Milliseconds for people: `850 ms`, `1.2 s`, `—` when unknown. */
export function ms(value: number | null | undefined): string {
  if (value === null || value === undefined) return '—';
  return value >= 1000 ? `${(value / 1000).toFixed(1)} s` : `${value} ms`;
}

/** Runs `task` over `items` with at most `limit` at a time, in order of start; resolves when
 * every task has settled (a failing task does not stop the others). */
export async function eachLimited<T>(items: T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++];
      try {
        await task(item);
      } catch {
        // The task reports its own failure; the others go on.
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}
