import { useState } from 'react';
import { Link } from 'react-router-dom';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import type { Plugin } from '../../lib/types';
import { useT } from '../../i18n';
import { ErrorText } from '../../components/ui';
import { Dialog } from '../../components/ui/dialog';
import { qk } from '../../lib/queryKeys';

interface Toggle {
  plugin_id: string;
  enabled: boolean;
}

/** Whether `plugin` is on in the conversation: its toggle there, else the user's choice, else
 * whether the conversation's assistant binds it (as the server decides). */
export function isOn(plugin: Pick<Plugin, 'id' | 'enabled'>, toggles: Toggle[], bound: string[] = []): boolean {
  return toggles.find((x) => x.plugin_id === plugin.id)?.enabled ?? (plugin.enabled || bound.includes(plugin.id));
}

/** The composer's tools button: which plugins this conversation uses, switched per conversation. */
export function ToolToggles({ conversationId, disabled, bound = [] }: { conversationId: string; disabled?: boolean; bound?: string[] }) {
  const t = useT();
  const queryClient = useQueryClient();
  const [open, setOpen] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const plugins = useQuery({ queryKey: qk.plugins.list, queryFn: () => api<{ items: Plugin[] }>('plugins') });
  const toggles = useQuery({
    queryKey: qk.plugins.conversation(conversationId),
    queryFn: () => api<{ items: Toggle[] }>(`plugins/conversations/${encodeURIComponent(conversationId)}`),
  });
  const usable = (plugins.data?.items ?? []).filter((p) => p.available);
  const current = toggles.data?.items ?? [];
  const active = usable.filter((p) => isOn(p, current, bound)).length;
  const set = async (plugin: Plugin, enabled: boolean | null) => {
    setError(null);
    try {
      const next = await api<{ items: Toggle[] }>(`plugins/conversations/${encodeURIComponent(conversationId)}/${plugin.id}`, { method: 'PUT', body: { enabled } });
      queryClient.setQueryData(qk.plugins.conversation(conversationId), next);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <>
      <button
        type="button"
        className="relative inline-flex h-10 w-10 shrink-0 items-center justify-center rounded-md text-muted-fg hover:bg-muted disabled:opacity-50"
        aria-label={t('tools.toggles')}
        title={t('tools.toggles')}
        disabled={disabled}
        onClick={() => setOpen(true)}
        data-testid="tool-toggles"
      >
        <svg viewBox="0 0 24 24" className="h-5 w-5" fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" strokeLinejoin="round" aria-hidden>
          <path d="M14.7 6.3a4 4 0 0 0-5.4 5.4L3 18v3h3l6.3-6.3a4 4 0 0 0 5.4-5.4l-2.6 2.6-2.4-.6-.6-2.4z" />
        </svg>
        {active > 0 && <span className="absolute right-1 top-1 rounded-full bg-primary px-1 text-[10px] leading-4 text-primary-fg">{active}</span>}
      </button>
      <Dialog open={open} onOpenChange={setOpen} title={t('tools.toggles')}>
        <p className="mb-3 text-sm text-muted-fg">{t('tools.togglesNote')}</p>
        {usable.length === 0 ? (
          <p className="text-sm text-muted-fg">{t('tools.noneEnabled')}</p>
        ) : (
          <ul className="space-y-2">
            {usable.map((p) => {
              const own = current.find((x) => x.plugin_id === p.id);
              return (
                <li key={p.id} className="flex items-center gap-2">
                  <label className="flex min-w-0 flex-1 items-center gap-2 text-sm">
                    <input type="checkbox" checked={isOn(p, current, bound)} onChange={(e) => set(p, e.target.checked)} data-testid={`toggle-${p.id}`} />
                    <span className="truncate">{p.id === 'builtin-web-search' ? t('tools.webSearch') : p.id === 'builtin-image' ? t('tools.generateImage') : p.name}</span>
                    {bound.includes(p.id) && (
                      <span className="shrink-0 rounded bg-primary/10 px-1.5 text-xs text-primary" data-testid={`bound-${p.id}`}>
                        {t('tools.fromAssistant')}
                      </span>
                    )}
                  </label>
                  {own && (
                    <button type="button" className="text-xs text-muted-fg underline" onClick={() => set(p, null)}>
                      {t('tools.followDefault')}
                    </button>
                  )}
                </li>
              );
            })}
          </ul>
        )}
        <ErrorText error={error} />
        <Link to="/plugins" className="mt-3 inline-block text-sm text-primary underline" onClick={() => setOpen(false)}>
          {t('tools.openMarket')}
        </Link>
      </Dialog>
    </>
  );
}
