import { useState } from 'react';
import { Link, useNavigate } from 'react-router-dom';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { qk } from '../../lib/queryKeys';
import type { Page } from '../../lib/types';
import { useT } from '../../i18n';
import { Badge, Button, Card, ErrorText, Field, Input, PageHeader, Textarea } from '../../components/ui';
import { Dialog } from '../../components/ui/dialog';
import type { Base } from './types';

/** The knowledge bases the user may read (own, shared, public), and creating one. */
export default function KnowledgeList() {
  const t = useT();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const bases = useQuery({ queryKey: qk.knowledge.bases, queryFn: () => api<Page<Base>>('knowledge/bases?per_page=100') });
  const [creating, setCreating] = useState(false);
  const [form, setForm] = useState({ name: '', description: '', embedding_model: '' });
  const [error, setError] = useState<unknown>(null);
  const items = bases.data?.items ?? [];

  const create = async (e: React.FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      const base = await api<Base>('knowledge/bases', {
        body: {
          name: form.name,
          description: form.description,
          ...(form.embedding_model.trim() ? { embedding_model: form.embedding_model.trim() } : {}),
        },
      });
      await queryClient.invalidateQueries({ queryKey: qk.knowledge.all });
      setCreating(false);
      navigate(`/knowledge/${base.id}`);
    } catch (err) {
      setError(err);
    }
  };

  return (
    <div className="mx-auto max-w-5xl p-4">
      <PageHeader title={t('knowledge.title')}>
        <Button onClick={() => setCreating(true)} data-testid="new-base">
          + {t('knowledge.create')}
        </Button>
      </PageHeader>
      <p className="mb-4 text-sm text-muted-fg">{t('knowledge.intro')}</p>
      <ErrorText error={bases.error} />
      {!bases.isLoading && items.length === 0 && <Card className="p-8 text-center text-sm text-muted-fg">{t('knowledge.empty')}</Card>}
      <div className="grid gap-3 sm:grid-cols-2" data-testid="base-list">
        {items.map((b) => (
          <Link key={b.id} to={`/knowledge/${b.id}`} className="block">
            <Card className="h-full p-4 transition hover:border-primary">
              <div className="flex items-start justify-between gap-2">
                <h2 className="truncate font-semibold">{b.name}</h2>
                <span className="flex shrink-0 gap-1">
                  <Badge tone={b.retrieval === 'hybrid' ? 'primary' : 'neutral'}>{t(b.retrieval === 'hybrid' ? 'knowledge.hybrid' : 'knowledge.lexical')}</Badge>
                  {b.permission !== 'owner' && <Badge>{t(b.permission === 'write' ? 'knowledge.sharedWrite' : 'knowledge.sharedRead')}</Badge>}
                </span>
              </div>
              {b.description && <p className="mt-1 line-clamp-2 text-sm text-muted-fg">{b.description}</p>}
              <p className="mt-2 text-xs text-muted-fg">
                {t('knowledge.counts', { documents: b.stats.documents, chunks: b.stats.chunks })}
              </p>
            </Card>
          </Link>
        ))}
      </div>

      <Dialog open={creating} onOpenChange={setCreating} title={t('knowledge.create')}>
        <form onSubmit={create} className="space-y-3">
          <Field label={t('common.name')}>
            <Input value={form.name} onChange={(e) => setForm({ ...form, name: e.target.value })} maxLength={100} autoFocus />
          </Field>
          <Field label={t('knowledge.description')} hint={t('common.optional')}>
            <Textarea rows={2} value={form.description} onChange={(e) => setForm({ ...form, description: e.target.value })} maxLength={2000} />
          </Field>
          <Field label={t('knowledge.embeddingModel')} hint={t('knowledge.embeddingHint')}>
            <Input value={form.embedding_model} onChange={(e) => setForm({ ...form, embedding_model: e.target.value })} placeholder="text-embedding-3-small" />
          </Field>
          <ErrorText error={error} />
          <div className="flex justify-end gap-2">
            <Button variant="secondary" onClick={() => setCreating(false)}>
              {t('common.cancel')}
            </Button>
            <Button type="submit" disabled={!form.name.trim()}>
              {t('knowledge.create')}
            </Button>
          </div>
        </form>
      </Dialog>
    </div>
  );
}
