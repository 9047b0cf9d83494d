import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { money, when } from '../../lib/format';
import type { InviteCode, Invitee } from '../../lib/types';
import { usePublicSettings } from '../../lib/system';
import { useT } from '../../i18n';
import { Badge, Button, Card, CopyButton, DataTable, ErrorText, PageHeader } from '../../components/ui';
import { qk } from '../../lib/queryKeys';

/** The link that opens registration with `code` filled in. */
export function inviteLink(code: string, origin = globalThis.location?.origin ?? '') {
  return `${origin}/register?invite=${encodeURIComponent(code)}`;
}

/** What a code's state is, for its badge. */
export function inviteState(c: InviteCode, now = Date.now()): 'disabled' | 'expired' | 'used_up' | 'active' {
  if (c.disabled) return 'disabled';
  if (c.expires_at && new Date(c.expires_at).getTime() <= now) return 'expired';
  if (c.max_uses > 0 && c.used_count >= c.max_uses) return 'used_up';
  return 'active';
}

/** Uses so far over the uses allowed (∞ when unlimited). */
export const usesOf = (c: InviteCode) => `${c.used_count} / ${c.max_uses > 0 ? c.max_uses : '∞'}`;

/** The signed-in user's invite codes (make one, copy its link) and the people they invited. */
export default function InvitesPage() {
  const t = useT();
  const queryClient = useQueryClient();
  const settings = usePublicSettings();
  const codes = useQuery({ queryKey: qk.invites.own, queryFn: () => api<InviteCode[]>('user/invite-codes') });
  const invitees = useQuery({ queryKey: qk.invites.invitees, queryFn: () => api<Invitee[]>('user/invitees') });
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const create = async () => {
    setBusy(true);
    setError(null);
    try {
      await api<InviteCode>('user/invite-codes', { body: {} });
      await queryClient.invalidateQueries({ queryKey: qk.invites.all });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const stateLabel = { active: t('invites.active'), disabled: t('invites.disabled'), expired: t('invites.expired'), used_up: t('invites.usedUp') };
  return (
    <div className="mx-auto max-w-4xl space-y-4 p-4">
      <PageHeader title={t('invites.title')}>
        <Button onClick={create} disabled={busy}>+ {t('invites.new')}</Button>
      </PageHeader>
      <p className="text-sm text-muted-fg">{t('invites.intro')}</p>
      {settings.data?.registration_mode === 'closed' && (
        <p className="rounded-md bg-muted px-3 py-2 text-sm" role="status">{t('invites.closedNote')}</p>
      )}
      <ErrorText error={error ?? codes.error} />
      <DataTable
        rows={codes.data ?? []}
        rowKey={(c) => c.id}
        empty={t('invites.none')}
        columns={[
          { header: t('invites.code'), cell: (c) => <code className="text-xs">{c.code}</code> },
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
                <CopyButton text={c.code} label={t('invites.copyCode')} />
                <CopyButton text={inviteLink(c.code)} label={t('invites.copyLink')} />
              </span>
            ),
          },
        ]}
      />
      <Card className="space-y-2">
        <h2 className="font-semibold">{t('invites.invitees')}</h2>
        <ErrorText error={invitees.error} />
        {invitees.data && invitees.data.length === 0 && <p className="text-sm text-muted-fg">{t('invites.noInvitees')}</p>}
        <ul className="divide-y divide-border text-sm">
          {(invitees.data ?? []).map((p) => (
            <li key={p.id} className="flex justify-between gap-2 py-2">
              <span className="font-medium">{p.display_name}</span>
              <span className="text-muted-fg">{when(p.joined_at)}</span>
            </li>
          ))}
        </ul>
      </Card>
      {settings.data && (settings.data.invite_reward_inviter > 0 || settings.data.invite_reward_invitee > 0) && (
        <p className="text-sm text-muted-fg" data-testid="invite-rewards">
          {t('invites.rewards', { you: money(settings.data.invite_reward_inviter), them: money(settings.data.invite_reward_invitee) })}
        </p>
      )}
    </div>
  );
}

