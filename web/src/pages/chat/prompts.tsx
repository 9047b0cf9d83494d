import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { qk } from '../../lib/queryKeys';
import { authStore } from '../../lib/auth';
import { useStore } from '../../lib/store';
import { useT } from '../../i18n';
import { Badge, Button, Card, ErrorText, Field, Input, Textarea, cx } from '../../components/ui';

/** A prompt of the library (`/command` in the composer inserts its text). */
export interface Prompt {
  id: string;
  command: string;
  title: string;
  content: string;
  shared: boolean;
  mine: boolean;
  updated_at: string;
}

/** The reader's prompts and the shared ones; fetched once asked for. */
export function usePrompts(enabled = true) {
  return useQuery({ queryKey: qk.chatPrompts, queryFn: () => api<Prompt[]>('chat/prompts'), enabled, staleTime: 30_000 });
}

/** The word typed after `/` when the whole draft is a slash command being typed, else null. */
export function slashQuery(draft: string): string | null {
  const m = /^\/(\S*)$/.exec(draft);
  return m ? m[1].toLowerCase() : null;
}

/** The prompts a slash query finds: commands starting with it first, then titles containing it. */
export function matchPrompts(prompts: Prompt[], query: string): Prompt[] {
  const starts = prompts.filter((p) => p.command.toLowerCase().startsWith(query));
  const titled = prompts.filter((p) => !starts.includes(p) && (p.title.toLowerCase().includes(query) || p.command.toLowerCase().includes(query)));
  return [...starts, ...titled].slice(0, 8);
}

/** The list of matching prompts above the composer while a `/command` is typed. */
export function SlashMenu({ id, items, active, onPick }: { id: string; items: Prompt[]; active: number; onPick: (p: Prompt) => void }) {
  const t = useT();
  return (
    <div className="absolute bottom-full left-0 right-0 z-20 mb-2 overflow-hidden rounded-lg border border-border bg-card shadow-lg" data-testid="slash-menu">
      {items.length === 0 ? (
        <p className="px-3 py-2 text-sm text-muted-fg">{t('prompts.noMatch')}</p>
      ) : (
        <ul id={id} role="listbox" aria-label={t('prompts.title')} className="max-h-64 overflow-y-auto py-1">
          {items.map((p, i) => (
            <li
              key={p.id}
              id={`${id}-${i}`}
              role="option"
              aria-selected={i === active}
              className={cx('cursor-pointer px-3 py-2 text-sm', i === active && 'bg-muted')}
              // Keep the focus in the composer.
              onMouseDown={(e) => e.preventDefault()}
              onClick={() => onPick(p)}
            >
              <span className="font-mono text-primary">/{p.command}</span> <span className="font-medium">{p.title}</span>
              {p.shared && <span className="ml-1 text-xs text-muted-fg">· {t('prompts.shared')}</span>}
              <span className="block truncate text-xs text-muted-fg">{p.content}</span>
            </li>
          ))}
        </ul>
      )}
      <p className="border-t border-border px-3 py-1 text-xs text-muted-fg">{t('prompts.keysHint')}</p>
    </div>
  );
}

/** The Settings card of the prompt library: add, change and delete one's prompts. */
export function PromptLibraryCard() {
  const t = useT();
  const queryClient = useQueryClient();
  const { user } = useStore(authStore);
  const admin = user?.role === 'admin' || user?.role === 'root';
  const prompts = usePrompts();
  const empty = { id: '', command: '', title: '', content: '', shared: false };
  const [form, setForm] = useState(empty);
  const [error, setError] = useState<unknown>(null);
  const refresh = () => queryClient.invalidateQueries({ queryKey: qk.chatPrompts });
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setError(null);
    const body = { command: form.command, title: form.title, content: form.content, ...(admin ? { shared: form.shared } : {}) };
    try {
      if (form.id) await api(`chat/prompts/${form.id}`, { method: 'PATCH', body });
      else await api('chat/prompts', { body });
      setForm(empty);
      await refresh();
    } catch (err) {
      setError(err);
    }
  };
  const remove = async (p: Prompt) => {
    setError(null);
    try {
      await api(`chat/prompts/${p.id}`, { method: 'DELETE' });
      await refresh();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <Card className="space-y-3" data-testid="prompt-library">
      <div>
        <h2 className="font-semibold">{t('prompts.title')}</h2>
        <p className="text-sm text-muted-fg">{t('prompts.hint')}</p>
      </div>
      <ul className="divide-y divide-border">
        {(prompts.data ?? []).map((p) => (
          <li key={p.id} className="flex flex-wrap items-center gap-2 py-2 text-sm" data-testid="prompt">
            <span className="font-mono text-primary">/{p.command}</span>
            <span className="min-w-0 flex-1 truncate">{p.title}</span>
            {p.shared && <Badge tone="primary">{t('prompts.shared')}</Badge>}
            {p.mine && (
              <>
                <Button variant="ghost" size="sm" onClick={() => setForm({ id: p.id, command: p.command, title: p.title, content: p.content, shared: p.shared })}>
                  {t('common.edit')}
                </Button>
                <Button variant="ghost" size="sm" className="text-danger" onClick={() => remove(p)}>
                  {t('common.delete')}
                </Button>
              </>
            )}
          </li>
        ))}
      </ul>
      {prompts.isSuccess && prompts.data.length === 0 && <p className="text-sm text-muted-fg">{t('prompts.none')}</p>}
      <form className="space-y-3 border-t border-border pt-3" onSubmit={submit}>
        <div className="grid gap-3 sm:grid-cols-2">
          <Field label={t('prompts.command')} hint={t('prompts.commandHint')}>
            <Input name="command" required value={form.command} onChange={(e) => setForm({ ...form, command: e.target.value })} />
          </Field>
          <Field label={t('prompts.name')}>
            <Input name="title" required value={form.title} onChange={(e) => setForm({ ...form, title: e.target.value })} />
          </Field>
        </div>
        <Field label={t('prompts.text')}>
          <Textarea name="content" rows={3} required value={form.content} onChange={(e) => setForm({ ...form, content: e.target.value })} />
        </Field>
        {admin && (
          <label className="flex items-center gap-2 text-sm">
            <input type="checkbox" checked={form.shared} onChange={(e) => setForm({ ...form, shared: e.target.checked })} />
            {t('prompts.shareAll')}
          </label>
        )}
        <ErrorText error={error} />
        <div className="flex justify-end gap-2">
          {form.id && (
            <Button variant="secondary" onClick={() => setForm(empty)}>
              {t('common.cancel')}
            </Button>
          )}
          <Button type="submit">{form.id ? t('common.save') : t('prompts.add')}</Button>
        </div>
      </form>
    </Card>
  );
}
