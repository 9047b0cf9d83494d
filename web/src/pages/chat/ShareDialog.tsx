import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { api } from '../../lib/api';
import { when } from '../../lib/format';
import { qk } from '../../lib/queryKeys';
import { useT } from '../../i18n';
import { Button, CopyButton, ErrorText } from '../../components/ui';
import { Dialog } from '../../components/ui/dialog';
import type { ChatShareView } from '../../lib/types';

/** A read-only link to a conversation, as its owner sees it. */
export type ChatShare = ChatShareView;

/** The full address of a share link on this server. */
export const shareUrl = (s: Pick<ChatShare, 'path'>) => `${window.location.origin}${s.path}`;

/**
 * Sharing a conversation: a new read-only link shows the branch on screen as it is now
 * (later messages are not shared); each live link can be copied or revoked.
 */
export function ShareDialog({ open, onOpenChange, conversationId }: { open: boolean; onOpenChange: (o: boolean) => void; conversationId: string }) {
  const t = useT();
  const queryClient = useQueryClient();
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const shares = useQuery({
    queryKey: qk.chatShares(conversationId),
    queryFn: () => api<ChatShare[]>(`chat/conversations/${conversationId}/shares`),
    enabled: open,
  });
  const refresh = () => queryClient.invalidateQueries({ queryKey: qk.chatShares(conversationId) });
  const create = async () => {
    setBusy(true);
    setError(null);
    try {
      await api<ChatShare>(`chat/conversations/${conversationId}/shares`, { method: 'POST', body: {} });
      await refresh();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const revoke = async (id: string) => {
    setError(null);
    try {
      await api(`chat/shares/${id}`, { method: 'DELETE' });
      await refresh();
    } catch (e) {
      setError(e);
    }
  };
  const list = shares.data ?? [];
  return (
    <Dialog open={open} onOpenChange={onOpenChange} title={t('chat.share')} wide>
      <div className="space-y-3" data-testid="share-dialog">
        <p className="text-sm text-muted-fg">{t('chat.shareHint')}</p>
        <ErrorText error={error ?? shares.error} />
        <ul className="space-y-2">
          {list.map((s) => (
            <li key={s.id} className="rounded-lg border border-border p-3 text-sm" data-testid="chat-share">
              <div className="break-all font-mono text-xs" data-testid="chat-share-url">
                {shareUrl(s)}
              </div>
              <div className="mt-2 flex flex-wrap items-center gap-2">
                <span className="mr-auto text-xs text-muted-fg">{t('chat.sharedAt', { when: when(s.created_at) })}</span>
                <CopyButton text={shareUrl(s)} label={t('chat.copyLink')} />
                <a className="inline-flex h-8 items-center rounded-md px-2.5 text-sm font-medium hover:bg-muted" href={s.path} target="_blank" rel="noopener noreferrer">
                  {t('chat.openLink')}
                </a>
                <Button variant="ghost" size="sm" className="text-danger" onClick={() => revoke(s.id)}>
                  {t('chat.revokeLink')}
                </Button>
              </div>
            </li>
          ))}
        </ul>
        {shares.isSuccess && list.length === 0 && <p className="text-sm text-muted-fg">{t('chat.noShares')}</p>}
        <div className="flex justify-end gap-2">
          <Button variant="secondary" onClick={() => onOpenChange(false)}>
            {t('common.close')}
          </Button>
          <Button onClick={create} disabled={busy} data-testid="create-chat-share">
            {list.length ? t('chat.shareAgain') : t('chat.createLink')}
          </Button>
        </div>
      </div>
    </Dialog>
  );
}
