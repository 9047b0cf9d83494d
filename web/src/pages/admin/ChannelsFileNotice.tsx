import { useQuery } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { when } from '../../lib/format';
import type { ChannelsFileStatus } from '../../lib/types';
import { useT } from '../../i18n';
import { qk } from '../../lib/queryKeys';

/**
 * Admin → Channels: when a channels file is kept applied (`relay.channels_file`), says so —
 * edits made here are overwritten the next time the file changes — with when it was last
 * applied, what that changed, and why its current content was refused.
 */
export function ChannelsFileNotice() {
  const t = useT();
  const status = useQuery({
    queryKey: qk.channelsFile,
    queryFn: () => api<ChannelsFileStatus>('admin/channels/file'),
    refetchInterval: 15_000,
  });
  const s = status.data;
  if (!s?.path) return null;
  return (
    <div
      role="status"
      data-testid="channels-file"
      className={`rounded-md border p-3 text-sm ${s.error ? 'border-danger/50 bg-danger/5' : 'border-border bg-muted/40'}`}
    >
      <p>{t('admin.channelsFile', { path: s.path, at: when(s.applied_at) })}</p>
      {s.changes.length > 0 && (
        <p className="mt-1 text-xs text-muted-fg">{t('admin.channelsFileChanges', { changes: s.changes.join(' · ') })}</p>
      )}
      {s.error && <p className="mt-1 text-xs text-danger">{t('admin.channelsFileError', { error: s.error })}</p>}
    </div>
  );
}
