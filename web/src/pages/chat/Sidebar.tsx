import { useEffect, useRef, useState } from 'react';
import { Link, useNavigate } from 'react-router-dom';
import { useInfiniteQuery, useQueryClient } from '@tanstack/react-query';
import { api, download } from '../../lib/api';
import type { Conversation } from '../../lib/types';
import { useT } from '../../i18n';
import { Button, cx, ErrorText, Input } from '../../components/ui';
import { Dialog } from '../../components/ui/dialog';
import { Menu } from '../../components/ui/menu';
import { toast } from '../../components/ui/toast';
import { qk } from '../../lib/queryKeys';
import { ArrowUpDownIcon, MoreIcon } from '../../components/icons';

function useDebounced<T>(value: T, ms: number) {
  const [v, setV] = useState(value);
  useEffect(() => {
    const h = setTimeout(() => setV(value), ms);
    return () => clearTimeout(h);
  }, [value, ms]);
  return v;
}

/** `text` with each occurrence of `query` (any case) marked, as a search hit shows it. */
export function Highlight({ text, query }: { text: string; query: string }) {
  if (!query) return <>{text}</>;
  const lower = text.toLowerCase();
  const needle = query.toLowerCase();
  const parts: React.ReactNode[] = [];
  let from = 0;
  for (let at = lower.indexOf(needle); at >= 0 && needle; at = lower.indexOf(needle, from)) {
    if (at > from) parts.push(text.slice(from, at));
    parts.push(
      <mark key={at} className="rounded-sm bg-primary/20 px-0.5 text-fg">
        {text.slice(at, at + needle.length)}
      </mark>,
    );
    from = at + needle.length;
  }
  parts.push(text.slice(from));
  return <>{parts}</>;
}

/** The conversation list: search, pinned first, archive view, and each item's actions. */
export function Sidebar({ activeId, onPick }: { activeId: string | null; onPick?: () => void }) {
  const t = useT();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [q, setQ] = useState('');
  const [archived, setArchived] = useState(false);
  const [renaming, setRenaming] = useState<Conversation | null>(null);
  const [title, setTitle] = useState('');
  const [importError, setImportError] = useState<unknown>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const query = useDebounced(q.trim(), 250);
  const list = useInfiniteQuery({
    queryKey: qk.conversations.list({ q: query, archived }),
    initialPageParam: '',
    queryFn: ({ pageParam }) =>
      api<{ items: Conversation[]; next_cursor: string | null }>(
        `chat/conversations?limit=50&archived=${archived}${query ? `&q=${encodeURIComponent(query)}` : ''}${pageParam ? `&cursor=${encodeURIComponent(pageParam)}` : ''}`,
      ),
    getNextPageParam: (last) => last.next_cursor ?? undefined,
  });
  const refresh = () => queryClient.invalidateQueries({ queryKey: qk.conversations.all });
  const patch = async (c: Conversation, body: Partial<Conversation>) => {
    await api(`chat/conversations/${c.id}`, { method: 'PATCH', body });
    refresh();
    queryClient.invalidateQueries({ queryKey: qk.conversation(c.id) });
  };
  const remove = async (c: Conversation) => {
    await api(`chat/conversations/${c.id}`, { method: 'DELETE' });
    refresh();
    if (c.id === activeId) navigate('/chat');
    toast(t('chat.deleted'), {
      label: t('common.undo'),
      run: async () => {
        await api(`chat/conversations/${c.id}/restore`, { method: 'POST' });
        refresh();
      },
    });
  };
  const importFile = async (file: File) => {
    setImportError(null);
    let body: unknown;
    try {
      body = JSON.parse(await file.text());
    } catch {
      toast(t('chat.importBad'));
      return;
    }
    try {
      const r = await api<{ imported: number }>('chat/import', { body });
      toast(t('chat.imported', { n: r.imported }));
      refresh();
    } catch (e) {
      setImportError(e);
    }
  };
  const items = list.data?.pages.flatMap((p) => p.items) ?? [];
  const pinned = items.filter((c) => c.pinned);
  const rest = items.filter((c) => !c.pinned);

  const row = (c: Conversation) => (
    <li key={c.id} className={cx('group flex items-center rounded-md', c.id === activeId ? 'bg-primary/10' : 'hover:bg-muted')}>
      <Link to={`/chat/${c.id}`} onClick={onPick} className="min-w-0 flex-1 px-2.5 py-2 text-sm" data-testid="conversation">
        <span className="block truncate">{query ? <Highlight text={c.title || t('chat.untitled')} query={query} /> : c.title || t('chat.untitled')}</span>
        {query && c.snippet && (
          <span className="mt-0.5 line-clamp-2 block break-words text-xs text-muted-fg" data-testid="snippet">
            <Highlight text={c.snippet} query={query} />
          </span>
        )}
      </Link>
      <Menu
        label={t('common.actions')}
        trigger={
          <button className="mr-1 rounded px-1.5 text-muted-fg opacity-70 hover:bg-card group-hover:opacity-100" aria-label={t('common.actions')}>
            <MoreIcon />
          </button>
        }
        items={[
          { label: t('chat.rename'), onSelect: () => { setRenaming(c); setTitle(c.title); } },
          { label: c.pinned ? t('chat.unpin') : t('chat.pin'), onSelect: () => patch(c, { pinned: !c.pinned }) },
          { label: c.archived ? t('chat.unarchive') : t('chat.archive'), onSelect: () => patch(c, { archived: !c.archived }) },
          { label: t('common.delete'), danger: true, onSelect: () => remove(c) },
        ]}
      />
    </li>
  );

  return (
    <div className="flex h-full min-h-0 flex-col">
      <div className="space-y-2 p-3">
        <Button className="w-full" onClick={() => { navigate('/chat'); onPick?.(); }}>
          + {t('chat.new')}
        </Button>
        <Input type="search" placeholder={t('chat.search')} aria-label={t('chat.search')} value={q} onChange={(e) => setQ(e.target.value)} data-shortcut="search" />
      </div>
      <div className="min-h-0 flex-1 overflow-y-auto px-2 pb-2">
        <ErrorText error={list.error} />
        {archived && <h3 className="px-2.5 pb-1 pt-2 text-xs font-semibold uppercase text-muted-fg">{t('chat.archived')}</h3>}
        {pinned.length > 0 && (
          <>
            <h3 className="px-2.5 pb-1 pt-2 text-xs font-semibold uppercase text-muted-fg">{t('chat.pinned')}</h3>
            <ul>{pinned.map(row)}</ul>
          </>
        )}
        {!archived && pinned.length > 0 && rest.length > 0 && (
          <h3 className="px-2.5 pb-1 pt-3 text-xs font-semibold uppercase text-muted-fg">{t('chat.recent')}</h3>
        )}
        <ul>{rest.map(row)}</ul>
        {list.isSuccess && items.length === 0 && (
          <p className="px-2.5 py-4 text-sm text-muted-fg" data-testid="conversations-empty">
            {query ? t('chat.noMatches', { q: query }) : archived ? t('chat.noArchived') : t('chat.noConversations')}
          </p>
        )}
        {list.hasNextPage && (
          <Button variant="ghost" size="sm" className="mt-1 w-full text-muted-fg" disabled={list.isFetchingNextPage} onClick={() => list.fetchNextPage()}>
            {t('chat.loadMore')}
          </Button>
        )}
      </div>
      <div className="px-2"><ErrorText error={importError} /></div>
      <div className="flex items-center border-t border-border text-sm text-muted-fg">
        <button className="flex-1 px-4 py-2.5 text-left hover:bg-muted" onClick={() => setArchived(!archived)}>
          {archived ? t('chat.hideArchived') : t('chat.showArchived')}
        </button>
        <Menu
          label={t('chat.backup')}
          trigger={
            <button className="px-3 py-2.5 hover:bg-muted" aria-label={t('chat.backup')} title={t('chat.backup')}>
              <ArrowUpDownIcon />
            </button>
          }
          items={[
            { label: t('chat.exportAll'), onSelect: () => download('chat/export', 'skein-conversations.json').catch(setImportError) },
            { label: t('chat.import'), onSelect: () => fileInput.current?.click() },
          ]}
        />
        <input
          ref={fileInput}
          type="file"
          accept="application/json,.json"
          className="hidden"
          data-testid="import-file"
          onChange={(e) => {
            const file = e.target.files?.[0];
            e.target.value = '';
            if (file) importFile(file);
          }}
        />
      </div>
      <Dialog open={renaming !== null} onOpenChange={(o) => !o && setRenaming(null)} title={t('chat.rename')}>
        <form
          className="space-y-3"
          onSubmit={async (e) => {
            e.preventDefault();
            if (renaming) await patch(renaming, { title: title.trim() });
            setRenaming(null);
          }}
        >
          <Input value={title} onChange={(e) => setTitle(e.target.value)} autoFocus aria-label={t('common.name')} />
          <div className="flex justify-end gap-2">
            <Button variant="secondary" onClick={() => setRenaming(null)}>
              {t('common.cancel')}
            </Button>
            <Button type="submit">{t('common.save')}</Button>
          </div>
        </form>
      </Dialog>
    </div>
  );
}
