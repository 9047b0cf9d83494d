import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { when } from '../../lib/format';
import type { InviteCode, Page } from '../../lib/types';
import { useT } from '../../i18n';
import { Badge, Button, CopyButton, DataTable, ErrorText, Field, Input, Pager } from '../../components/ui';
import { Dialog } from '../../components/ui/dialog';
import { qk } from '../../lib/queryKeys';
import { inviteLink, inviteState, usesOf } from '../account/Invites';

/** Admin → Invites: every invite code (users' and admins'), batches, disabling. */
export function AdminInvites() {
  const t = useT();
  const queryClient = useQueryClient();
  const [page, setPage] = useState(1);
  const [creating, setCreating] = useState(false);
  const [form, setForm] = useState({ count: '10', max_uses: '1', expires_at: '', note: '' });
  const [created, setCreated] = useState<InviteCode[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const codes = useQuery({ queryKey: qk.invites.admin(page), queryFn: () => api<Page<InviteCode>>(`admin/invite-codes?page=${page}&per_page=20`) });
  const refresh = () => queryClient.invalidateQueries({ queryKey: qk.invites.all });
  const stateLabel = { active: t('invites.active'), disabled: t('invites.disabled'), expired: t('invites.expired'), used_up: t('invites.usedUp') };
  const set = (k: keyof typeof form) => (e: React.ChangeEvent<HTMLInputElement>) => setForm({ ...form, [k]: e.target.value });
  return (
    <div className="space-y-3">
      <div className="flex flex-wrap items-center justify-between gap-2">
        <p className="text-sm text-muted-fg">{t('invites.adminIntro')}</p>
        <Button onClick={() => { setError(null); setCreating(true); }}>+ {t('invites.newBatch')}</Button>
      </div>
      <ErrorText error={codes.error ?? (creating ? null : error)} />
      <DataTable
        rows={codes.data?.items ?? []}
        rowKey={(c) => c.id}
        empty={t('invites.none')}
        columns={[
          { header: t('invites.code'), cell: (c) => <code className="text-xs">{c.code}</code> },
          { header: t('invites.owner'), cell: (c) => (c.by_admin ? <Badge tone="primary">{t('invites.byAdmin')}</Badge> : <code className="text-xs">{c.owner_id.slice(0, 8)}</code>) },
          { header: t('invites.note'), cell: (c) => c.note ?? '' },
          { header: t('invites.uses'), cell: usesOf },
          {
            header: t('common.status'),
            cell: (c) => {
              const s = inviteState(c);
              return <Badge tone={s === 'active' ? 'ok' : 'neutral'}>{stateLabel[s]}</Badge>;
            },
          },
          { header: t('keys.expiresAt'), cell: (c) => (c.expires_at ? when(c.expires_at) : t('common.never')) },
          {
            header: t('common.actions'),
            cell: (c) => (
              <span className="flex flex-wrap justify-end gap-1">
                <CopyButton text={inviteLink(c.code)} label={t('invites.copyLink')} />
                <Button
                  variant="secondary"
                  size="sm"
                  onClick={async () => {
                    await api(`admin/invite-codes/${c.id}`, { method: 'PATCH', body: { disabled: !c.disabled } }).catch(setError);
                    refresh();
                  }}
                >
                  {c.disabled ? t('common.enable') : t('common.disable')}
                </Button>
              </span>
            ),
          },
        ]}
      />
      <Pager page={page} perPage={20} total={codes.data?.total ?? 0} onPage={setPage} />
      <Dialog open={creating} onOpenChange={setCreating} title={t('invites.newBatch')}>
        <form
          className="space-y-3"
          onSubmit={async (e) => {
            e.preventDefault();
            setError(null);
            try {
              const r = await api<InviteCode[]>('admin/invite-codes', {
                body: {
                  count: Number(form.count),
                  max_uses: Number(form.max_uses),
                  expires_at: form.expires_at ? new Date(form.expires_at).toISOString() : undefined,
                  note: form.note.trim() || undefined,
                },
              });
              setCreating(false);
              setCreated(r);
              refresh();
            } catch (err) {
              setError(err);
            }
          }}
        >
          <div className="grid grid-cols-2 gap-3">
            <Field label={t('admin.count')}>
              <Input type="number" min="1" max="500" required value={form.count} onChange={set('count')} name="count" />
            </Field>
            <Field label={t('invites.maxUses')} hint={t('invites.maxUsesHint')}>
              <Input type="number" min="0" required value={form.max_uses} onChange={set('max_uses')} name="max_uses" />
            </Field>
          </div>
          <Field label={`${t('keys.expiresAt')} (${t('common.optional')})`}>
            <Input type="datetime-local" value={form.expires_at} onChange={set('expires_at')} />
          </Field>
          <Field label={`${t('invites.note')} (${t('common.optional')})`}>
            <Input maxLength={200} value={form.note} onChange={set('note')} name="note" />
          </Field>
          <ErrorText error={error} />
          <div className="flex justify-end gap-2">
            <Button variant="secondary" onClick={() => setCreating(false)}>{t('common.cancel')}</Button>
            <Button type="submit">{t('common.create')}</Button>
          </div>
        </form>
      </Dialog>
      <Dialog open={created !== null} onOpenChange={(o) => !o && setCreated(null)} title={t('admin.codesCreated', { n: created?.length ?? 0 })}>
        <pre className="max-h-64 overflow-auto rounded-md bg-muted p-2 text-xs">{created?.map((c) => c.code).join('\n')}</pre>
        <div className="mt-3 flex justify-end gap-2">
          <CopyButton text={created?.map((c) => c.code).join('\n') ?? ''} />
          <Button onClick={() => setCreated(null)}>{t('common.close')}</Button>
        </div>
      </Dialog>
    </div>
  );
}
