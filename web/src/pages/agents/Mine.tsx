import { useRef, useState } from 'react';
import { Link, useNavigate } from 'react-router-dom';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { qk } from '../../lib/queryKeys';
import type { Page } from '../../lib/types';
import { useT } from '../../i18n';
import { Button, ErrorText, PageHeader, Pager, cx } from '../../components/ui';
import { AgentCardView } from './Market';
import type { AgentCard, AgentDetail } from './types';

const PER_PAGE = 24;

/** My assistants (drafts included) and my favourites; create one, or import LobeChat's or
 * Skein's JSON. */
export default function MinePage() {
  const t = useT();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const file = useRef<HTMLInputElement>(null);
  const [tab, setTab] = useState<'mine' | 'favourites'>('mine');
  const [page, setPage] = useState(1);
  const [error, setError] = useState<unknown>(null);
  const list = useQuery({
    queryKey: tab === 'mine' ? qk.agents.mine(page) : qk.agents.favourites(page),
    queryFn: () => api<Page<AgentCard>>(`agents/${tab === 'mine' ? 'mine' : 'favourites'}?page=${page}&per_page=${PER_PAGE}`),
  });

  const create = async () => {
    setError(null);
    try {
      const a = await api<AgentDetail>('agents', { method: 'POST', body: { name: t('agents.newName'), avatar: '🤖' } });
      queryClient.invalidateQueries({ queryKey: qk.agents.all });
      navigate(`/agents/${a.id}/edit`);
    } catch (e) {
      setError(e);
    }
  };
  const importFile = async (f: File) => {
    setError(null);
    try {
      const body: unknown = JSON.parse(await f.text());
      const a = await api<AgentDetail>('agents/import', { method: 'POST', body });
      queryClient.invalidateQueries({ queryKey: qk.agents.all });
      navigate(`/agents/${a.id}/edit`);
    } catch (e) {
      setError(e instanceof SyntaxError ? new Error(t('agents.importNotJson')) : e);
    }
  };

  return (
    <div className="mx-auto max-w-6xl p-4">
      <PageHeader title={t('agents.mine')}>
        <Link to="/agents">
          <Button variant="secondary">{t('agents.market')}</Button>
        </Link>
        <Button variant="secondary" onClick={() => file.current?.click()}>{t('agents.import')}</Button>
        <Button onClick={create} data-testid="agent-new">{t('agents.new')}</Button>
        <input
          ref={file}
          type="file"
          accept="application/json,.json"
          className="hidden"
          onChange={(e) => {
            const f = e.target.files?.[0];
            e.target.value = '';
            if (f) importFile(f);
          }}
        />
      </PageHeader>
      <div className="mb-4 flex gap-2" role="tablist">
        {(['mine', 'favourites'] as const).map((k) => (
          <button
            key={k}
            role="tab"
            aria-selected={tab === k}
            className={cx('rounded-full border px-3 py-1 text-sm', tab === k ? 'border-primary bg-primary/15 text-primary' : 'border-border text-muted-fg')}
            onClick={() => {
              setTab(k);
              setPage(1);
            }}
          >
            {t(k === 'mine' ? 'agents.tabMine' : 'agents.tabFavourites')}
          </button>
        ))}
      </div>
      <ErrorText error={error ?? list.error} />
      {list.data && list.data.items.length === 0 && <p className="py-10 text-center text-muted-fg">{t('common.none')}</p>}
      <div className="grid grid-cols-1 gap-3 sm:grid-cols-2 lg:grid-cols-3">
        {list.data?.items.map((a) => <AgentCardView key={a.id} agent={a} />)}
      </div>
      {list.data && <Pager page={page} perPage={PER_PAGE} total={list.data.total} onPage={setPage} />}
    </div>
  );
}
