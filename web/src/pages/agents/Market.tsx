import { useState } from 'react';
import { Link } from 'react-router-dom';
import { useQuery } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { qk } from '../../lib/queryKeys';
import type { Page } from '../../lib/types';
import { useStore } from '../../lib/store';
import { langStore } from '../../lib/settings';
import { useT } from '../../i18n';
import { Badge, Button, ErrorText, Input, PageHeader, Pager, Select, cx } from '../../components/ui';
import { AgentAvatar } from './AgentAvatar';
import { SORTS, categoryName, marketQuery, type Sort } from './logic';
import type { AgentCard, Category } from './types';

const PER_PAGE = 24;

/** One assistant in a grid: avatar, name, description, tags and counts; opens its page. */
export function AgentCardView({ agent }: { agent: AgentCard }) {
  const t = useT();
  return (
    <Link
      to={`/agents/${agent.id}`}
      data-testid="agent-card"
      className="flex min-w-0 flex-col gap-2 rounded-xl border border-border bg-card p-4 transition-colors hover:border-primary/60"
    >
      <div className="flex items-center gap-3">
        <AgentAvatar avatar={agent.avatar} name={agent.name} url={agent.avatar_url} />
        <div className="min-w-0 flex-1">
          <div className="truncate font-medium">{agent.name}</div>
          <div className="text-xs text-muted-fg">
            {t('agents.counts', { likes: agent.likes, chats: agent.conversations })}
          </div>
        </div>
        {agent.featured && <Badge tone="primary">{t('agents.featured')}</Badge>}
      </div>
      <p className="line-clamp-2 text-sm text-muted-fg">{agent.description || '—'}</p>
      {agent.tags.length > 0 && (
        <div className="flex flex-wrap gap-1">
          {agent.tags.slice(0, 4).map((tag) => (
            <Badge key={tag}>{tag}</Badge>
          ))}
        </div>
      )}
    </Link>
  );
}

/** The market: search (any language), categories, sort, and a grid of public assistants. */
export default function MarketPage() {
  const t = useT();
  const lang = useStore(langStore);
  const [text, setText] = useState('');
  const [q, setQ] = useState('');
  const [category, setCategory] = useState('');
  const [sort, setSort] = useState<Sort>('trending');
  const [page, setPage] = useState(1);
  const query = marketQuery({ q, category, sort, page, perPage: PER_PAGE });
  const agents = useQuery({ queryKey: qk.agents.market(query), queryFn: () => api<Page<AgentCard>>(`market/agents?${query}`) });
  const categories = useQuery({ queryKey: qk.agents.categories, queryFn: () => api<Category[]>('market/categories') });

  return (
    <div className="mx-auto max-w-6xl p-4">
      <PageHeader title={t('agents.market')}>
        <Link to="/agents/mine">
          <Button variant="secondary">{t('agents.mine')}</Button>
        </Link>
      </PageHeader>
      <form
        className="mb-3 flex flex-wrap gap-2"
        onSubmit={(e) => {
          e.preventDefault();
          setQ(text);
          setPage(1);
        }}
      >
        <Input
          className="min-w-0 flex-1 basis-48"
          value={text}
          onChange={(e) => setText(e.target.value)}
          placeholder={t('agents.searchPlaceholder')}
          aria-label={t('common.search')}
          data-testid="market-search"
          maxLength={100}
        />
        <Select
          className="w-auto"
          value={sort}
          aria-label={t('agents.sort')}
          onChange={(e) => {
            setSort(e.target.value as Sort);
            setPage(1);
          }}
        >
          {SORTS.map((s) => (
            <option key={s} value={s}>
              {t(`agents.sort.${s}`)}
            </option>
          ))}
        </Select>
        <Button type="submit">{t('common.search')}</Button>
      </form>
      <div className="mb-4 flex gap-2 overflow-x-auto pb-1" role="tablist" aria-label={t('agents.categories')}>
        {[{ id: '', name_en: 'All', name_zh: '全部', sort: -1 }, ...(categories.data ?? [])].map((c) => (
          <button
            key={c.id || 'all'}
            role="tab"
            aria-selected={category === c.id}
            className={cx(
              'shrink-0 rounded-full border px-3 py-1 text-sm',
              category === c.id ? 'border-primary bg-primary/15 text-primary' : 'border-border text-muted-fg hover:bg-muted',
            )}
            onClick={() => {
              setCategory(c.id);
              setPage(1);
            }}
          >
            {c.id ? categoryName(c, lang) : t('common.all')}
          </button>
        ))}
      </div>
      <ErrorText error={agents.error} />
      {agents.data && agents.data.items.length === 0 && <p className="py-10 text-center text-muted-fg">{t('agents.noneFound')}</p>}
      <div className="grid grid-cols-1 gap-3 sm:grid-cols-2 lg:grid-cols-3">
        {agents.data?.items.map((a) => <AgentCardView key={a.id} agent={a} />)}
      </div>
      {agents.data && <Pager page={page} perPage={PER_PAGE} total={agents.data.total} onPage={setPage} />}
    </div>
  );
}
