import { useQuery } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { qk } from '../../lib/queryKeys';
import type { Page, Plugin } from '../../lib/types';
import type { Base } from '../knowledge/types';
import { useT } from '../../i18n';
import { ErrorText, Field } from '../../components/ui';
import { toggleId } from './logic';

/** Which knowledge bases and plugins an assistant brings to its chats. Each is checked against
 * the chatting user when used, so a private base helps only its readers: the hint says so. */
export function Bindings({
  knowledge,
  plugins,
  onKnowledge,
  onPlugins,
}: {
  knowledge: string[];
  plugins: string[];
  onKnowledge: (ids: string[]) => void;
  onPlugins: (ids: string[]) => void;
}) {
  const t = useT();
  const bases = useQuery({ queryKey: qk.knowledge.bases, queryFn: () => api<Page<Base>>('knowledge/bases?per_page=100') });
  const tools = useQuery({ queryKey: qk.plugins.list, queryFn: () => api<{ items: Plugin[] }>('plugins') });
  const known = new Set([...(bases.data?.items ?? []).map((b) => b.id), ...(tools.data?.items ?? []).map((p) => p.id)]);
  // Ids bound earlier that this user no longer sees stay listed, so saving does not drop them unseen.
  const unknown = [...knowledge, ...plugins].filter((id) => !known.has(id));
  return (
    <div className="grid gap-3 sm:grid-cols-2" data-testid="agent-bindings">
      <Field label={t('agents.boundKnowledge')} hint={t('agents.boundKnowledgeHint')}>
        <ErrorText error={bases.error} />
        <ul className="max-h-40 space-y-1 overflow-auto rounded-md border border-border p-2 text-sm">
          {(bases.data?.items ?? []).length === 0 && <li className="text-muted-fg">{t('agents.noneToBind')}</li>}
          {(bases.data?.items ?? []).map((b) => (
            <li key={b.id}>
              <label className="flex min-h-8 items-center gap-2">
                <input type="checkbox" checked={knowledge.includes(b.id)} onChange={(e) => onKnowledge(toggleId(knowledge, b.id, e.target.checked))} />
                <span className="truncate">{b.name}</span>
                {b.visibility !== 'public' && <span className="text-xs text-muted-fg">({t('agents.boundPrivate')})</span>}
              </label>
            </li>
          ))}
        </ul>
      </Field>
      <Field label={t('agents.boundPlugins')} hint={t('agents.boundPluginsHint')}>
        <ErrorText error={tools.error} />
        <ul className="max-h-40 space-y-1 overflow-auto rounded-md border border-border p-2 text-sm">
          {(tools.data?.items ?? []).length === 0 && <li className="text-muted-fg">{t('agents.noneToBind')}</li>}
          {(tools.data?.items ?? []).map((p) => (
            <li key={p.id}>
              <label className="flex min-h-8 items-center gap-2">
                <input type="checkbox" checked={plugins.includes(p.id)} onChange={(e) => onPlugins(toggleId(plugins, p.id, e.target.checked))} />
                <span className="truncate">{p.name}</span>
                {p.scope === 'private' && <span className="text-xs text-muted-fg">({t('agents.boundPrivate')})</span>}
              </label>
            </li>
          ))}
        </ul>
      </Field>
      {unknown.length > 0 && (
        <p className="text-xs text-muted-fg sm:col-span-2">{t('agents.boundUnknown', { n: unknown.length })}</p>
      )}
    </div>
  );
}
