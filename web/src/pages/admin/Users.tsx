import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { when } from '../../lib/format';
import type { Page, Profile, UserGroups } from '../../lib/types';
import { useT, useValueName } from '../../i18n';
import { Badge, Button, DataTable, ErrorText, Field, Input, Pager, Select } from '../../components/ui';
import { Dialog } from '../../components/ui/dialog';
import { toast } from '../../components/ui/toast';
import { qk } from '../../lib/queryKeys';

/** Users: search, role, enable/disable, password reset, balance adjustment and key groups. */
export function Users() {
  const t = useT();
  const v = useValueName();
  const queryClient = useQueryClient();
  const [q, setQ] = useState('');
  const [page, setPage] = useState(1);
  const [error, setError] = useState<unknown>(null);
  const [resetting, setResetting] = useState<Profile | null>(null);
  const [adjusting, setAdjusting] = useState<Profile | null>(null);
  const [grouping, setGrouping] = useState<Profile | null>(null);
  const [form, setForm] = useState({ password: '', amount: '', memo: '' });
  const users = useQuery({
    queryKey: qk.adminUsers.page(q, page),
    queryFn: () => api<Page<Profile>>(`admin/users?page=${page}&per_page=20&q=${encodeURIComponent(q)}`),
  });
  const refresh = () => queryClient.invalidateQueries({ queryKey: qk.adminUsers.all });
  const update = async (u: Profile, body: Record<string, string>) => {
    setError(null);
    await api(`admin/users/${u.id}`, { method: 'PATCH', body }).catch(setError);
    refresh();
  };
  return (
    <div className="space-y-3">
      <Input type="search" className="max-w-xs" placeholder={t('common.search')} aria-label={t('common.search')} value={q} onChange={(e) => { setQ(e.target.value); setPage(1); }} />
      <ErrorText error={users.error ?? error} />
      <DataTable
        rows={users.data?.items ?? []}
        rowKey={(u) => u.id}
        columns={[
          { header: t('common.name'), cell: (u) => <span><span className="font-medium">{u.display_name}</span> <span className="text-muted-fg">{u.username ?? u.email}</span></span> },
          {
            header: t('admin.role'),
            cell: (u) => (
              <Select aria-label={t('admin.role')} value={u.role} onChange={(e) => update(u, { role: e.target.value })}>
                <option value="user">{v('user')}</option>
                <option value="admin">{v('admin')}</option>
                <option value="root">{v('root')}</option>
              </Select>
            ),
          },
          { header: t('common.status'), cell: (u) => <Badge tone={u.status === 'active' ? 'ok' : 'danger'}>{v(u.status)}</Badge> },
          { header: t('admin.created'), cell: (u) => when(u.created_at) },
          {
            header: t('common.actions'),
            cell: (u) => (
              <span className="flex flex-wrap justify-end gap-1">
                <Button variant="secondary" size="sm" onClick={() => update(u, { status: u.status === 'active' ? 'disabled' : 'active' })}>
                  {u.status === 'active' ? t('common.disable') : t('common.enable')}
                </Button>
                <Button variant="secondary" size="sm" onClick={() => { setForm({ password: '', amount: '', memo: '' }); setAdjusting(u); }}>
                  {t('admin.adjust')}
                </Button>
                <Button variant="secondary" size="sm" onClick={() => { setForm({ password: '', amount: '', memo: '' }); setResetting(u); }}>
                  {t('admin.resetPassword')}
                </Button>
                <Button variant="secondary" size="sm" onClick={() => setGrouping(u)}>
                  {t('admin.keyGroups')}
                </Button>
              </span>
            ),
          },
        ]}
      />
      <Pager page={page} perPage={20} total={users.data?.total ?? 0} onPage={setPage} />
      <Dialog open={resetting !== null} onOpenChange={(o) => !o && setResetting(null)} title={t('admin.resetPassword')}>
        <form
          className="space-y-3"
          onSubmit={async (e) => {
            e.preventDefault();
            try {
              await api(`admin/users/${resetting?.id}/reset-password`, { body: { new_password: form.password } });
              setResetting(null);
              setForm({ ...form, password: '' });
              toast(t('common.saved'));
            } catch (err) {
              setError(err);
            }
          }}
        >
          <p className="text-sm">{resetting?.display_name}</p>
          <Field label={t('settings.newPassword')} hint={t('auth.passwordHint')}>
            <Input type="password" autoComplete="new-password" required value={form.password} onChange={(e) => setForm({ ...form, password: e.target.value })} />
          </Field>
          <ErrorText error={error} />
          <div className="flex justify-end"><Button type="submit">{t('common.save')}</Button></div>
        </form>
      </Dialog>
      <Dialog open={adjusting !== null} onOpenChange={(o) => !o && setAdjusting(null)} title={t('admin.adjust')}>
        <form
          className="space-y-3"
          onSubmit={async (e) => {
            e.preventDefault();
            try {
              await api(`admin/billing/users/${adjusting?.id}/adjust`, { body: { amount: Number(form.amount), memo: form.memo } });
              setAdjusting(null);
              toast(t('common.saved'));
            } catch (err) {
              setError(err);
            }
          }}
        >
          <p className="text-sm">{adjusting?.display_name}</p>
          <Field label={t('admin.amount')}>
            <Input type="number" required value={form.amount} onChange={(e) => setForm({ ...form, amount: e.target.value })} />
          </Field>
          <Field label={t('admin.memo')}>
            <Input required value={form.memo} onChange={(e) => setForm({ ...form, memo: e.target.value })} />
          </Field>
          <ErrorText error={error} />
          <div className="flex justify-end"><Button type="submit">{t('common.save')}</Button></div>
        </form>
      </Dialog>
      <Dialog open={grouping !== null} onOpenChange={(o) => !o && setGrouping(null)} title={t('admin.keyGroups')}>
        {grouping && <KeyGroups user={grouping} onDone={() => setGrouping(null)} />}
      </Dialog>
    </div>
  );
}

/** The price groups one user may put API keys in: tick the granted ones, or return the user to the default. */
export function KeyGroups({ user, onDone }: { user: Profile; onDone: () => void }) {
  const t = useT();
  const queryClient = useQueryClient();
  const path = `admin/relay/users/${user.id}/groups`;
  const current = useQuery({ queryKey: qk.userGroups(user.id), queryFn: () => api<UserGroups>(path) });
  const [picked, setPicked] = useState<string[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const chosen = picked ?? current.data?.groups ?? [];
  const save = async (groups: string[] | null) => {
    setError(null);
    try {
      await api<UserGroups>(path, { method: 'PUT', body: { groups } });
      await queryClient.invalidateQueries({ queryKey: qk.userGroups(user.id) });
      toast(t('common.saved'));
      onDone();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form
      className="space-y-3"
      onSubmit={(e) => {
        e.preventDefault();
        void save(chosen);
      }}
    >
      <p className="text-sm">{user.display_name}</p>
      <p className="text-xs text-muted-fg">{t('admin.keyGroupsIntro')}</p>
      <ErrorText error={current.error ?? error} />
      {current.data?.available.map((group) => (
        <label key={group} className="flex items-center gap-2 text-sm">
          <input
            type="checkbox"
            checked={chosen.includes(group)}
            onChange={(e) => setPicked(e.target.checked ? [...chosen, group] : chosen.filter((g) => g !== group))}
          />
          {group}
        </label>
      ))}
      {current.data?.is_default && picked === null && <p className="text-xs text-muted-fg">{t('admin.keyGroupsDefault')}</p>}
      <div className="flex justify-end gap-2">
        <Button variant="secondary" onClick={() => void save(null)}>
          {t('admin.keyGroupsReset')}
        </Button>
        <Button type="submit" disabled={!current.data}>{t('common.save')}</Button>
      </div>
    </form>
  );
}
