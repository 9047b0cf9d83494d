import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { when } from '../../lib/format';
import type { Channel, ChannelProbes as Probes } from '../../lib/types';
import { useT } from '../../i18n';
import { Button, ErrorText } from '../../components/ui';
import { Dialog } from '../../components/ui/dialog';
import { qk } from '../../lib/queryKeys';

/**
 * Admin → Channels → Models: the last probe of each of a channel's models (a one-token chat:
 * answered or why not, how fast, when), and a button that probes them all now. A channel that
 * answers one model and refuses another shows it here before a user finds out.
 */
export function ChannelProbes({ channel, onClose }: { channel: Channel; onClose: () => void }) {
  const t = useT();
  const queryClient = useQueryClient();
  const [running, setRunning] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const stored = useQuery({
    queryKey: qk.channelProbes(channel.id),
    queryFn: () => api<Probes>(`channels/${channel.id}/probes`),
  });
  const probeAll = async () => {
    setRunning(true);
    setError(null);
    try {
      const fresh = await api<Probes>(`channels/${channel.id}/probes`, { method: 'POST', body: {} });
      queryClient.setQueryData(qk.channelProbes(channel.id), fresh);
      // The channel's measurements per model changed too (the list alone: its key prefixes
      // this one, which is already fresh).
      queryClient.invalidateQueries({ queryKey: qk.channels, exact: true });
    } catch (e) {
      setError(e);
    } finally {
      setRunning(false);
    }
  };
  const items = stored.data?.items ?? [];
  const byModel = new Map(items.map((p) => [p.model, p]));
  return (
    <Dialog open onOpenChange={(o) => !o && onClose()} title={t('admin.probesTitle', { name: channel.name })} wide>
      <div className="space-y-3">
        <p className="text-sm text-muted-fg">{t('admin.probesHint')}</p>
        <ul className="divide-y divide-border rounded-md border border-border text-sm" data-testid="channel-probes">
          {channel.models.map((model) => {
            const p = byModel.get(model);
            return (
              <li key={model} className="flex flex-wrap items-baseline justify-between gap-x-3 gap-y-1 px-3 py-2">
                <span className="font-mono text-xs">{model}</span>
                {p ? (
                  <span className={`text-xs ${p.ok ? 'text-ok' : 'text-danger'}`}>
                    {p.ok ? t('admin.testOk', { ms: p.latency_ms }) : t('admin.testFailed', { message: p.message })}
                    <span className="text-muted-fg">{` · ${when(p.at)}`}</span>
                  </span>
                ) : (
                  <span className="text-xs text-muted-fg">{t('admin.probeNever')}</span>
                )}
              </li>
            );
          })}
        </ul>
        {(stored.data?.models_left_out ?? 0) > 0 && (
          <p className="text-xs text-muted-fg">{t('admin.probesLeftOut', { n: stored.data?.models_left_out ?? 0 })}</p>
        )}
        <ErrorText error={error ?? stored.error} />
        <div className="flex justify-end gap-2">
          <Button onClick={probeAll} disabled={running}>{running ? t('admin.probing') : t('admin.probeAll')}</Button>
        </div>
      </div>
    </Dialog>
  );
}
