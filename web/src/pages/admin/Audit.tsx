import { useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import { api, download } from '../../lib/api';
import { when } from '../../lib/format';
import type { AuditRecord, Page } from '../../lib/types';
import { useT } from '../../i18n';
import { Badge, Button, DataTable, ErrorText, Input, Pager } from '../../components/ui';
import { qk } from '../../lib/queryKeys';

/** The audit log: every change an administrator made, newest first, filterable, as CSV too. */
export function Audit() {
  const t = useT();
  const [page, setPage] = useState(1);
  const [action, setAction] = useState('');
  const [actor, setActor] = useState('');
  const [open, setOpen] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const filters = `${action ? `&action=${encodeURIComponent(action)}` : ''}${actor ? `&actor_id=${encodeURIComponent(actor)}` : ''}`;
  const log = useQuery({
    queryKey: qk.audit(action, actor, page),
    queryFn: () => api<Page<AuditRecord>>(`admin/audit?page=${page}&per_page=25${filters}`),
  });
  return (
    <div className="space-y-3">
      <div className="flex flex-wrap items-end justify-between gap-2">
        <div className="flex w-full flex-wrap gap-2 sm:w-auto">
          <Input className="w-full sm:w-64" type="search" placeholder={t('audit.action')} aria-label={t('audit.action')} value={action} onChange={(e) => { setAction(e.target.value); setPage(1); }} />
          <Input className="w-full sm:w-64" type="search" placeholder={t('audit.actor')} aria-label={t('audit.actor')} value={actor} onChange={(e) => { setActor(e.target.value.trim()); setPage(1); }} />
        </div>
        <Button variant="secondary" onClick={() => download(`admin/audit?format=csv${filters}`, 'audit.csv').catch(setError)}>
          {t('common.export')}
        </Button>
      </div>
      <p className="text-sm text-muted-fg">{t('audit.note')}</p>
      <ErrorText error={log.error ?? error} />
      <DataTable
        rows={log.data?.items ?? []}
        rowKey={(e) => e.id}
        columns={[
          { header: t('common.time'), cell: (e) => when(e.created_at) },
          { header: t('audit.actor'), cell: (e) => <span title={e.actor_id}><Badge tone={e.actor_role === 'root' ? 'primary' : 'neutral'}>{e.actor_role}</Badge> <code className="text-xs">{e.actor_id.slice(0, 8)}</code></span> },
          { header: t('audit.action'), cell: (e) => <code className="break-all text-xs">{e.action}</code> },
          { header: t('common.status'), cell: (e) => <Badge tone={e.status < 400 ? 'ok' : 'danger'}>{e.status}</Badge> },
          {
            header: t('audit.detail'),
            cell: (e) =>
              e.detail || e.before ? (
                <button type="button" className="text-left text-xs text-primary underline" onClick={() => setOpen(open === e.id ? null : e.id)}>
                  {open === e.id ? (
                    <span className="block max-w-md space-y-1 text-fg">
                      {e.before && (
                        <span className="block">
                          <span className="text-muted-fg">{t('audit.before')}</span>
                          <pre className="whitespace-pre-wrap break-all">{e.before}</pre>
                        </span>
                      )}
                      {e.detail && (
                        <span className="block">
                          <span className="text-muted-fg">{t('audit.after')}</span>
                          <pre className="whitespace-pre-wrap break-all">{e.detail}</pre>
                        </span>
                      )}
                    </span>
                  ) : (
                    t('audit.show')
                  )}
                </button>
              ) : (
                <span className="text-xs text-muted-fg">—</span>
              ),
          },
          { header: t('audit.where'), cell: (e) => <span className="text-xs text-muted-fg" title={e.request_id}>{e.ip}</span> },
        ]}
      />
      <Pager page={page} perPage={25} total={log.data?.total ?? 0} onPage={setPage} />
    </div>
  );
}
