import { useState } from 'react';
import { useQueries, useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { money, num, when } from '../../lib/format';
import { authStore } from '../../lib/auth';
import { useStore } from '../../lib/store';
import type { Page, Profile, Quota, UserGroups } from '../../lib/types';
import { useT, useValueName } from '../../i18n';
import { Badge, Button, DataTable, ErrorText, Field, Input, Pager, Select, PasswordInput } from '../../components/ui';
import { Dialog } from '../../components/ui/dialog';
import { toast } from '../../components/ui/toast';
import { qk } from '../../lib/queryKeys';

/** Role ranks: an admin manages only users ranked below them; root manages everyone but themself. */
const rank: Record<Profile['role'], number> = { user: 0, admin: 1, root: 2 };

/**
 * What the server lets `actor` do to `target` (it refuses the rest): no one changes their own
 * role, status, password or balance here; only root changes roles; an admin manages users
 * ranked below them.
 */
export function permissions(actor: Profile | null, target: Profile) {
  const self = actor?.id === target.id;
  const manage = !!actor && !self && (actor.role === 'root' || rank[actor.role] > rank[target.role]);
  return { manage, changeRole: manage && actor?.role === 'root', adjust: !!actor && !self };
}

/** A balance with its quota units, e.g. `$2.00 (1,000,000 units)`. */
function balanceText(units: number, perUsd: number | undefined, t: ReturnType<typeof useT>) {
  return `${money(units, perUsd)} (${t('admin.units', { n: num(units) })})`;
}

/** Users: search, role, enable/disable, password reset, balance adjustment and key groups. */
export function Users() {
  const t = useT();
  const v = useValueName();
  const queryClient = useQueryClient();
  const { user: me } = useStore(authStore);
  const [q, setQ] = useState('');
  const [page, setPage] = useState(1);
  const [error, setError] = useState<unknown>(null);
  const [resetting, setResetting] = useState<Profile | null>(null);
  const [adjusting, setAdjusting] = useState<Profile | null>(null);
  const [disabling, setDisabling] = useState<Profile | null>(null);
  const [grouping, setGrouping] = useState<Profile | null>(null);
  const [form, setForm] = useState({ password: '', amount: '', memo: '' });
  const users = useQuery({
    queryKey: qk.adminUsers.page(q, page),
    queryFn: () => api<Page<Profile>>(`admin/users?page=${page}&per_page=20&q=${encodeURIComponent(q)}`),
  });
  // Each listed user's balance (the Billing service owns it; without one the column shows —).
  const balances = useQueries({
    queries: (users.data?.items ?? []).map((u) => ({
      queryKey: qk.adminQuota(u.id),
      queryFn: () => api<Quota>(`admin/billing/users/${u.id}/quota`),
      retry: false,
    })),
  });
  const balanceOf = (id: string) => balances[(users.data?.items ?? []).findIndex((u) => u.id === id)]?.data;
  const refresh = () => queryClient.invalidateQueries({ queryKey: qk.adminUsers.all });
  const update = async (u: Profile, body: Record<string, string>) => {
    setError(null);
    await api(`admin/users/${u.id}`, { method: 'PATCH', body }).catch(setError);
    refresh();
  };
  const current = adjusting ? balanceOf(adjusting.id) : undefined;
  const amount = Number(form.amount);
  const validAmount = form.amount.trim() !== '' && Number.isInteger(amount) && amount !== 0;
  return (
    <div className="space-y-3">
      <Input type="search" className="max-w-xs" placeholder={t('common.search')} aria-label={t('common.search')} value={q} onChange={(e) => { setQ(e.target.value); setPage(1); }} />
      <ErrorText error={users.error ?? error} />
      <DataTable
        rows={users.data?.items ?? []}
        rowKey={(u) => u.id}
        columns={[
          {
            header: t('common.name'),
            cell: (u) => (
              <span>
                <span className="font-medium">{u.display_name}</span> <span className="text-muted-fg">{u.username ?? u.email}</span>
                {u.id === me?.id && <span className="ml-1"><Badge tone="primary">{t('admin.you')}</Badge></span>}
              </span>
            ),
          },
          {
            header: t('admin.role'),
            cell: (u) =>
              permissions(me, u).changeRole ? (
                <Select aria-label={t('admin.role')} value={u.role} onChange={(e) => update(u, { role: e.target.value })}>
                  <option value="user">{v('user')}</option>
                  <option value="admin">{v('admin')}</option>
                  <option value="root">{v('root')}</option>
                </Select>
              ) : (
                <span data-testid="role">{v(u.role)}</span>
              ),
          },
          { header: t('common.status'), cell: (u) => <Badge tone={u.status === 'active' ? 'ok' : 'danger'}>{v(u.status)}</Badge> },
          {
            header: t('usage.balance'),
            className: 'whitespace-nowrap tabular-nums',
            cell: (u) => {
              const quota = balanceOf(u.id);
              return <span data-testid="balance">{quota ? money(quota.balance, quota.quota_per_usd) : '—'}</span>;
            },
          },
          { header: t('admin.created'), cell: (u) => when(u.created_at) },
          {
            header: t('common.actions'),
            cell: (u) => {
              const may = permissions(me, u);
              return (
                <span className="flex flex-wrap justify-end gap-1">
                  {may.manage && (
                    <Button variant="secondary" size="sm" onClick={() => (u.status === 'active' ? setDisabling(u) : update(u, { status: 'active' }))}>
                      {u.status === 'active' ? t('common.disable') : t('common.enable')}
                    </Button>
                  )}
                  {may.adjust && (
                    <Button variant="secondary" size="sm" onClick={() => { setError(null); setForm({ password: '', amount: '', memo: '' }); setAdjusting(u); }}>
                      {t('admin.adjust')}
                    </Button>
                  )}
                  {may.manage && (
                    <Button variant="secondary" size="sm" onClick={() => { setError(null); setForm({ password: '', amount: '', memo: '' }); setResetting(u); }}>
                      {t('admin.resetPassword')}
                    </Button>
                  )}
                  <Button variant="secondary" size="sm" onClick={() => setGrouping(u)}>
                    {t('admin.keyGroups')}
                  </Button>
                </span>
              );
            },
          },
        ]}
      />
      <Pager page={page} perPage={20} total={users.data?.total ?? 0} onPage={setPage} />
      <Dialog open={disabling !== null} onOpenChange={(o) => !o && setDisabling(null)} title={t('admin.disableTitle')}>
        <p className="text-sm">{t('admin.disableConfirm', { name: disabling?.display_name ?? '' })}</p>
        <div className="mt-4 flex justify-end gap-2">
          <Button variant="secondary" onClick={() => setDisabling(null)}>{t('common.cancel')}</Button>
          <Button
            variant="danger"
            onClick={() => {
              const u = disabling;
              setDisabling(null);
              if (u) void update(u, { status: 'disabled' });
            }}
          >
            {t('common.disable')}
          </Button>
        </div>
      </Dialog>
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
            <PasswordInput autoComplete="new-password" required value={form.password} onChange={(e) => setForm({ ...form, password: e.target.value })} />
          </Field>
          <ErrorText error={error} />
          <div className="flex justify-end gap-2">
            <Button variant="secondary" onClick={() => setResetting(null)}>{t('common.cancel')}</Button>
            <Button type="submit">{t('common.save')}</Button>
          </div>
        </form>
      </Dialog>
      <Dialog open={adjusting !== null} onOpenChange={(o) => !o && setAdjusting(null)} title={t('admin.adjust')}>
        <form
          className="space-y-3"
          onSubmit={async (e) => {
            e.preventDefault();
            const target = adjusting;
            if (!target) return;
            try {
              await api(`admin/billing/users/${target.id}/adjust`, { body: { amount, memo: form.memo } });
              setAdjusting(null);
              queryClient.invalidateQueries({ queryKey: qk.adminQuota(target.id) });
              toast(t('common.saved'));
            } catch (err) {
              setError(err);
            }
          }}
        >
          <p className="text-sm font-medium">{adjusting?.display_name}</p>
          <p className="text-sm text-muted-fg" data-testid="current-balance">
            {t('admin.currentBalance', { balance: current ? balanceText(current.balance, current.quota_per_usd, t) : '—' })}
          </p>
          <Field label={t('admin.amount')}>
            <Input type="number" step={1} required value={form.amount} onChange={(e) => setForm({ ...form, amount: e.target.value })} />
          </Field>
          {validAmount && (
            <p className="rounded-md bg-muted px-3 py-2 text-sm" data-testid="adjust-preview">
              {t(amount > 0 ? 'admin.adjustCredit' : 'admin.adjustDebit', { money: money(Math.abs(amount), current?.quota_per_usd) })}
              {current && <> · {t('admin.balanceAfterAdjust', { balance: balanceText(current.balance + amount, current.quota_per_usd, t) })}</>}
            </p>
          )}
          <Field label={t('admin.memo')}>
            <Input required value={form.memo} onChange={(e) => setForm({ ...form, memo: e.target.value })} />
          </Field>
          <ErrorText error={error} />
          <div className="flex justify-end gap-2">
            <Button variant="secondary" onClick={() => setAdjusting(null)}>{t('common.cancel')}</Button>
            <Button type="submit" disabled={!validAmount}>{t('common.save')}</Button>
          </div>
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
