import { useState } from 'react';
import { useSearchParams } from 'react-router-dom';
import { useInfiniteQuery, useQueries, useQuery } from '@tanstack/react-query';
import { api, ApiError } from '../../lib/api';
import { money, num, when } from '../../lib/format';
import type { Channel, Page, Profile } from '../../lib/types';
import { useT, useValueName, type MessageKey } from '../../i18n';
import { Badge, Button, DataTable, ErrorText, Field, Input, Select } from '../../components/ui';
import { Dialog } from '../../components/ui/dialog';
import { qk } from '../../lib/queryKeys';
import { isId, logQuery, ms, noFilters, outcomeTone, type LogFilters, type LoggedRequest, type LoggedRequestDetail, type LoggedRequestPage } from './requestLog';

/** Resolves the user filter: an id as typed, a username through the admin user search (exact
 * match only, so a prefix never silently shows someone else's requests). */
async function resolveUser(text: string): Promise<string | null> {
  const typed = text.trim();
  if (!typed) return null;
  if (isId(typed)) return typed;
  const found = await api<Page<Profile>>(`admin/users?per_page=20&q=${encodeURIComponent(typed)}`);
  const exact = found.items.find((u) => u.username?.toLowerCase() === typed.toLowerCase());
  if (!exact) throw new ApiError(404, 'user_not_found', typed, null);
  return exact.id;
}

/** The request log across every user: filters, newest first, more on demand, and each
 * request's routing decisions and upstream attempts in a dialog. */
export function Requests() {
  const t = useT();
  const v = useValueName();
  const [params] = useSearchParams();
  // `?channel_id=` (from the channel statistics) starts the log filtered to that channel.
  const initial: LogFilters = { ...noFilters, channel: params.get('channel_id') ?? '', status: (params.get('status') as LogFilters['status']) ?? '' };
  const [form, setForm] = useState<LogFilters>(initial);
  const [applied, setApplied] = useState<LogFilters>(initial);
  const [open, setOpen] = useState<string | null>(null);
  const channels = useQuery({ queryKey: qk.channels, queryFn: () => api<Channel[]>('channels') });
  const userId = useQuery({ queryKey: qk.requestLogUser(applied.user), queryFn: () => resolveUser(applied.user) });
  const log = useInfiniteQuery({
    queryKey: qk.requestLog(JSON.stringify(applied), userId.data ?? null),
    enabled: userId.isSuccess,
    initialPageParam: '',
    queryFn: ({ pageParam }) => api<LoggedRequestPage>(`admin/requests?${logQuery(applied, userId.data ?? null, pageParam)}`),
    getNextPageParam: (last) => last.next_cursor ?? undefined,
  });
  const rows = log.data?.pages.flatMap((p) => p.items) ?? [];
  // Names of the users on screen (a handful per page), each looked up once.
  const userIds = [...new Set(rows.map((r) => r.user_id))];
  const users = useQueries({
    queries: userIds.map((id) => ({ queryKey: qk.adminUser(id), queryFn: () => api<Profile>(`admin/users/${id}`), staleTime: 300_000 })),
  });
  const names = new Map(users.flatMap((u) => (u.data ? [[u.data.id, u.data.username] as const] : [])));
  const set = (k: keyof LogFilters) => (e: React.ChangeEvent<HTMLInputElement | HTMLSelectElement>) => setForm({ ...form, [k]: e.target.value });
  const apply = (e: React.FormEvent) => {
    e.preventDefault();
    setApplied(form);
  };
  const userError = userId.error instanceof ApiError && userId.error.code === 'user_not_found' ? t('requests.noSuchUser', { name: applied.user }) : null;

  return (
    <div className="space-y-3">
      <form className="grid grid-cols-2 gap-2 lg:grid-cols-4" onSubmit={apply} aria-label={t('requests.filters')}>
        <Field label={t('requests.user')}>
          <Input name="user" type="search" placeholder={t('requests.userHint')} value={form.user} onChange={set('user')} />
        </Field>
        <Field label={t('requests.key')}>
          <Input name="key" type="search" placeholder="key id" value={form.key} onChange={set('key')} />
        </Field>
        <Field label={t('common.model')}>
          <Input name="model" type="search" value={form.model} onChange={set('model')} />
        </Field>
        <Field label={t('requests.channel')}>
          <Select className="w-full" name="channel" value={form.channel} onChange={set('channel')}>
            <option value="">{t('common.all')}</option>
            {(channels.data ?? []).map((c) => (
              <option key={c.id} value={c.id}>{c.name}</option>
            ))}
            {form.channel && !(channels.data ?? []).some((c) => c.id === form.channel) && <option value={form.channel}>{t('requests.deletedChannel')}</option>}
          </Select>
        </Field>
        <Field label={t('common.status')}>
          <Select className="w-full" name="status" value={form.status} onChange={set('status')}>
            <option value="">{t('common.all')}</option>
            <option value="ok">{v('ok')}</option>
            <option value="error">{v('error')}</option>
            <option value="refused">{v('refused')}</option>
          </Select>
        </Field>
        <Field label={t('requests.from')}>
          <Input name="from" type="datetime-local" value={form.from} onChange={set('from')} />
        </Field>
        <Field label={t('requests.to')}>
          <Input name="to" type="datetime-local" value={form.to} onChange={set('to')} />
        </Field>
        <div className="flex items-end gap-2">
          <Button type="submit">{t('requests.apply')}</Button>
          <Button
            variant="secondary"
            onClick={() => {
              setForm(noFilters);
              setApplied(noFilters);
            }}
          >
            {t('requests.reset')}
          </Button>
        </div>
      </form>
      <p className="text-sm text-muted-fg">{t('requests.note')}</p>
      {userError ? <p className="text-sm text-danger" role="alert">{userError}</p> : <ErrorText error={userId.error ?? log.error} />}
      <DataTable
        rows={rows}
        rowKey={(r) => r.id}
        empty={log.isLoading ? t('common.loading') : t('requests.empty')}
        columns={[
          { header: t('common.time'), cell: (r) => <span className="whitespace-nowrap text-xs">{when(r.created_at)}</span> },
          { header: t('requests.user'), cell: (r) => <span title={r.user_id}>{names.get(r.user_id) ?? <code className="text-xs">{r.user_id.slice(0, 8)}</code>}</span> },
          { header: t('common.model'), cell: (r) => <span className="break-all text-xs">{r.model}{r.stream ? ' · SSE' : ''}</span> },
          { header: t('requests.channel'), cell: (r) => <span className="text-xs">{r.channel_name ?? '—'}{r.attempt_count > 1 ? ` (${t('requests.tries', { n: r.attempt_count })})` : ''}</span> },
          {
            header: t('common.status'),
            cell: (r) => (
              <span className="flex flex-wrap gap-1" data-testid="request-status">
                <Badge tone={outcomeTone(r.status)}>{v(r.status)}</Badge>
                {r.detail && <span className="text-xs text-muted-fg">{v(r.detail)}</span>}
              </span>
            ),
          },
          { header: t('requests.latency'), cell: (r) => <span className="whitespace-nowrap text-xs">{ms(r.duration_ms)} · {t('requests.ttfbShort')} {ms(r.ttfb_ms)}</span> },
          { header: t('requests.tokens'), cell: (r) => <span className="text-xs">{num(r.prompt_tokens)} / {num(r.completion_tokens)}</span> },
          { header: t('requests.cost'), cell: (r) => <span className="text-xs">{money(r.cost)}</span> },
          {
            header: t('common.actions'),
            cell: (r) => (
              <Button variant="secondary" size="sm" onClick={() => setOpen(r.id)} aria-label={t('requests.openDetail', { model: r.model })}>
                {t('requests.detail')}
              </Button>
            ),
          },
        ]}
      />
      {log.hasNextPage && (
        <div className="flex justify-center">
          <Button variant="secondary" onClick={() => log.fetchNextPage()} disabled={log.isFetchingNextPage}>
            {t('requests.more')}
          </Button>
        </div>
      )}
      <RequestDetailDialog id={open} onClose={() => setOpen(null)} row={rows.find((r) => r.id === open) ?? null} userName={open ? (names.get(rows.find((r) => r.id === open)?.user_id ?? '') ?? null) : null} />
    </div>
  );
}

/** One request: who, what it came to, the plan's choices, and every attempt in order. */
function RequestDetailDialog({ id, onClose, row, userName }: { id: string | null; onClose: () => void; row: LoggedRequest | null; userName: string | null }) {
  const t = useT();
  const v = useValueName();
  const detail = useQuery({ queryKey: qk.requestDetail(id ?? ''), queryFn: () => api<LoggedRequestDetail>(`admin/requests/${id}`), enabled: !!id });
  const d = detail.data;
  const r = d?.request ?? row;
  return (
    <Dialog open={id !== null} onOpenChange={(o) => !o && onClose()} title={t('requests.detailTitle')} wide>
      <ErrorText error={detail.error} />
      {r && (
        <dl className="grid grid-cols-[auto,1fr] gap-x-4 gap-y-1 text-sm">
          <dt className="text-muted-fg">{t('common.time')}</dt>
          <dd>{when(r.created_at)}</dd>
          <dt className="text-muted-fg">{t('requests.user')}</dt>
          <dd className="break-all">{userName ?? r.user_id}{r.key_id ? <span className="text-xs text-muted-fg"> · {t('requests.key')} {r.key_id.slice(0, 8)}</span> : <span className="text-xs text-muted-fg"> · {t('requests.viaService')}</span>}</dd>
          <dt className="text-muted-fg">{t('common.model')}</dt>
          <dd className="break-all">{r.model}</dd>
          <dt className="text-muted-fg">{t('common.status')}</dt>
          <dd>
            <Badge tone={outcomeTone(r.status)}>{v(r.status)}</Badge> <span className="text-xs">HTTP {r.http_status}{r.detail ? ` · ${v(r.detail)}` : ''}</span>
          </dd>
          <dt className="text-muted-fg">{t('requests.latency')}</dt>
          <dd>{ms(r.duration_ms)} · {t('requests.ttfbShort')} {ms(r.ttfb_ms)}</dd>
          <dt className="text-muted-fg">{t('requests.cost')}</dt>
          <dd>{money(r.cost)} · {num(r.prompt_tokens)} / {num(r.completion_tokens)} tokens</dd>
          <dt className="text-muted-fg">{t('requests.requestId')}</dt>
          <dd><code className="break-all text-xs">{r.request_id}</code></dd>
        </dl>
      )}
      {d && (
        <div className="mt-4 space-y-4">
          <section>
            <h3 className="mb-1 text-sm font-semibold">{t('requests.routing', { group: d.routing.group })}</h3>
            <p className="mb-1 text-xs text-muted-fg" data-testid="routing-why">
              {t('requests.strategy', { strategy: t(`routing.s_${d.routing.strategy ?? 'priority'}` as MessageKey) })}
              {d.routing.explored && ` · ${t('requests.explored')}`}
              {d.routing.sticky && ` · ${t('requests.sticky')}`}
            </p>
            <ol className="list-decimal space-y-0.5 pl-5 text-sm" data-testid="routing">
              {d.routing.candidates.map((c) => (
                <li key={c.id}>
                  {c.name} <span className="text-xs text-muted-fg">{t('requests.priority', { n: c.priority })}</span>
                  {c.score != null && <span className="text-xs text-muted-fg"> · {t('requests.score', { score: c.score })}</span>}
                </li>
              ))}
            </ol>
            {d.routing.skipped.length > 0 && (
              <ul className="mt-1 space-y-0.5 text-sm text-muted-fg">
                {d.routing.skipped.map((s) => (
                  <li key={s.id}>{t('requests.skipped', { name: s.name, reason: v(s.reason) })}</li>
                ))}
              </ul>
            )}
          </section>
          <section>
            <h3 className="mb-1 text-sm font-semibold">{t('requests.attempts')}</h3>
            {d.attempts.length === 0 ? (
              <p className="text-sm text-muted-fg">{t('requests.noAttempts')}</p>
            ) : (
              <ol className="space-y-2" data-testid="attempts">
                {d.attempts.map((a) => (
                  <li key={a.seq} className="rounded-lg border border-border p-2 text-sm" data-testid="attempt">
                    <div className="flex flex-wrap items-center gap-2">
                      <span className="font-medium">{a.seq + 1}. {a.channel_name}</span>
                      <Badge tone={outcomeTone(a.outcome)}>{v(`attempt_${a.outcome}`)}</Badge>
                      {a.http_status != null && <span className="text-xs">HTTP {a.http_status}</span>}
                      <span className="text-xs text-muted-fg">{ms(a.latency_ms)} · {t('requests.ttfbShort')} {ms(a.ttfb_ms)}</span>
                      {a.cost > 0 && <span className="text-xs">{money(a.cost)}</span>}
                    </div>
                    {a.error && <p className="mt-1 break-all text-xs text-danger">{a.error}</p>}
                  </li>
                ))}
              </ol>
            )}
          </section>
        </div>
      )}
    </Dialog>
  );
}
