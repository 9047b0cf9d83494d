import { useRef, useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router-dom';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { when } from '../../lib/format';
import { qk } from '../../lib/queryKeys';
import { langStore } from '../../lib/settings';
import { useStore } from '../../lib/store';
import type { Page } from '../../lib/types';
import { useT } from '../../i18n';
import { Badge, Button, Card, ErrorText, Field, Input, PageHeader, Select, Textarea, cx } from '../../components/ui';
import { Dialog } from '../../components/ui/dialog';
import { toast } from '../../components/ui/toast';
import { formatBytes } from '../files/upload';
import { documentError, isWorking, progressPercent, rank, statusTone } from './status';
import { useDocumentEvents } from './events';
import type { Base, Chunk, KnowledgeDocument, SearchResponse } from './types';
import { ArrowLeftIcon } from '../../components/icons';

type Tab = 'documents' | 'search' | 'settings';

/** One knowledge base: its documents (drag-and-drop upload, status and progress, chunk
 * viewer), hit testing with each stage's ranks, and its settings. */
export default function BasePage() {
  const { id = '' } = useParams();
  const t = useT();
  const [tab, setTab] = useState<Tab>('documents');
  const base = useQuery({ queryKey: qk.knowledge.base(id), queryFn: () => api<Base>(`knowledge/bases/${id}`) });
  const b = base.data;
  const canWrite = b?.permission === 'owner' || b?.permission === 'write';
  return (
    <div className="mx-auto max-w-5xl p-4">
      <Link to="/knowledge" className="inline-flex items-center gap-1 text-sm text-muted-fg hover:underline">
        <ArrowLeftIcon size={14} /> {t('knowledge.title')}
      </Link>
      <ErrorText error={base.error} />
      {b && (
        <>
          <PageHeader title={b.name}>
            <Badge tone={b.retrieval === 'hybrid' ? 'primary' : 'neutral'}>{t(b.retrieval === 'hybrid' ? 'knowledge.hybrid' : 'knowledge.lexical')}</Badge>
          </PageHeader>
          {b.description && <p className="mb-2 text-sm text-muted-fg">{b.description}</p>}
          <p className="mb-3 text-xs text-muted-fg" data-testid="base-stats">
            {t('knowledge.stats', { documents: b.stats.documents, ready: b.stats.ready_documents, chunks: b.stats.chunks, embedded: b.stats.embedded_chunks, tokens: b.stats.tokens })}
          </p>
          {b.retrieval === 'lexical' && <p className="mb-3 rounded-md bg-muted px-3 py-2 text-xs">{t('knowledge.lexicalNote')}</p>}
          <div className="mb-4 flex gap-1 border-b border-border" role="tablist">
            {(['documents', 'search', 'settings'] as Tab[]).map((name) => (
              <button
                key={name}
                role="tab"
                aria-selected={tab === name}
                className={cx('-mb-px border-b-2 px-3 py-2 text-sm', tab === name ? 'border-primary font-medium' : 'border-transparent text-muted-fg')}
                onClick={() => setTab(name)}
              >
                {t(`knowledge.tab.${name}`)}
              </button>
            ))}
          </div>
          {tab === 'documents' && <Documents base={b} canWrite={canWrite} />}
          {tab === 'search' && <HitTest base={b} />}
          {tab === 'settings' && <Settings base={b} />}
        </>
      )}
    </div>
  );
}

function Documents({ base, canWrite }: { base: Base; canWrite: boolean }) {
  const t = useT();
  const lang = useStore(langStore);
  const queryClient = useQueryClient();
  const input = useRef<HTMLInputElement>(null);
  const [dragging, setDragging] = useState(false);
  const [uploading, setUploading] = useState<string[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [viewing, setViewing] = useState<KnowledgeDocument | null>(null);
  const [url, setUrl] = useState('');
  const [fetching, setFetching] = useState(false);
  // Progress is pushed by the server (server-sent events); while the stream is down, polled.
  const live = useDocumentEvents(base.id);
  const docs = useQuery({
    queryKey: qk.knowledge.documents(base.id),
    queryFn: () => api<Page<KnowledgeDocument>>(`knowledge/bases/${base.id}/documents?per_page=100`),
    refetchInterval: (q) => (!live && (q.state.data?.items ?? []).some(isWorking) ? 1500 : false),
  });
  const refresh = () => {
    void queryClient.invalidateQueries({ queryKey: qk.knowledge.documents(base.id) });
    void queryClient.invalidateQueries({ queryKey: qk.knowledge.base(base.id) });
  };
  const upload = async (files: FileList | File[]) => {
    setError(null);
    for (const file of Array.from(files)) {
      setUploading((u) => [...u, file.name]);
      try {
        const form = new FormData();
        form.append('file', file, file.name);
        await api(`knowledge/bases/${base.id}/documents/upload`, { body: form });
        toast(t('knowledge.uploaded', { name: file.name }));
      } catch (err) {
        setError(err);
      }
      setUploading((u) => u.filter((n) => n !== file.name));
      refresh();
    }
  };
  const addUrl = async () => {
    const target = url.trim();
    if (!target) return;
    setError(null);
    setFetching(true);
    try {
      const doc = await api<KnowledgeDocument>(`knowledge/bases/${base.id}/documents/url`, { body: { url: target } });
      toast(t('knowledge.uploaded', { name: doc.name }));
      setUrl('');
    } catch (err) {
      setError(err);
    }
    setFetching(false);
    refresh();
  };
  const items = docs.data?.items ?? [];
  return (
    <div
      className={cx(dragging && 'rounded-xl outline-dashed outline-2 outline-primary')}
      onDragOver={(e) => {
        if (!canWrite) return;
        e.preventDefault();
        setDragging(true);
      }}
      onDragLeave={() => setDragging(false)}
      onDrop={(e) => {
        e.preventDefault();
        setDragging(false);
        if (canWrite && e.dataTransfer.files.length) void upload(e.dataTransfer.files);
      }}
      data-testid="documents"
    >
      {canWrite && (
        <Card className="mb-3 flex flex-wrap items-center justify-between gap-2 border-dashed p-4 text-sm text-muted-fg">
          <span>{t('knowledge.dropHint')}</span>
          <Button onClick={() => input.current?.click()}>+ {t('knowledge.addDocuments')}</Button>
          <input
            ref={input}
            type="file"
            multiple
            hidden
            data-testid="document-input"
            accept=".pdf,.docx,.pptx,.xlsx,.epub,.html,.htm,.md,.txt,.csv,.json,.png,.jpg,.jpeg,.tif,.tiff,.bmp,.gif,.webp"
            onChange={(e) => {
              if (e.target.files?.length) void upload(e.target.files);
              e.target.value = '';
            }}
          />
          <form
            className="flex w-full min-w-0 gap-2"
            onSubmit={(e) => {
              e.preventDefault();
              void addUrl();
            }}
          >
            <Input
              type="url"
              className="min-w-0 flex-1"
              placeholder={t('knowledge.urlPlaceholder')}
              aria-label={t('knowledge.urlPlaceholder')}
              value={url}
              onChange={(e) => setUrl(e.target.value)}
              data-testid="document-url"
            />
            <Button type="submit" disabled={fetching || !url.trim()}>
              {fetching ? t('knowledge.fetchingUrl') : t('knowledge.addUrl')}
            </Button>
          </form>
        </Card>
      )}
      {uploading.map((name) => (
        <p key={name} className="mb-2 animate-pulse text-sm text-muted-fg">
          {t('knowledge.uploading', { name })}
        </p>
      ))}
      <ErrorText error={error ?? docs.error} />
      {!docs.isLoading && items.length === 0 && <Card className="p-8 text-center text-sm text-muted-fg">{t('knowledge.noDocuments')}</Card>}
      <div className="space-y-2">
        {items.map((d) => {
          const message = documentError(d, lang);
          return (
            <Card key={d.id} className="p-3 text-sm" data-testid="document-row" data-status={d.status}>
              <div className="flex flex-wrap items-center gap-2">
                <span className="min-w-0 flex-1 truncate font-medium" title={d.name}>
                  {d.name}
                </span>
                <Badge tone={statusTone(d.status)}>{t(`knowledge.status.${d.status}` as 'knowledge.status.ready')}</Badge>
              </div>
              <div className="mt-1 text-xs text-muted-fg">
                {formatBytes(d.size)} · {when(d.created_at)}
                {d.chunk_count != null && ` · ${t('knowledge.chunks', { n: d.chunk_count })}`}
                {d.status === 'embedding' && ` · ${t('knowledge.embedded', { done: d.progress_done, total: d.progress_total })}`}
              </div>
              {isWorking(d) && (
                <div className="mt-2 h-1.5 overflow-hidden rounded bg-muted" role="progressbar" aria-label={d.name} aria-valuenow={progressPercent(d)} aria-valuemin={0} aria-valuemax={100}>
                  <div className="h-full bg-primary transition-all" style={{ width: `${progressPercent(d)}%` }} />
                </div>
              )}
              {message && <p className={cx('mt-1 text-xs', d.status === 'failed' ? 'text-danger' : 'text-muted-fg')}>{message}</p>}
              <div className="mt-2 flex flex-wrap justify-end gap-1">
                {d.chunk_count != null && (
                  <Button size="sm" variant="secondary" onClick={() => setViewing(d)}>
                    {t('knowledge.viewChunks')}
                  </Button>
                )}
                {canWrite && (
                  <Button size="sm" variant="secondary" onClick={() => api(`knowledge/bases/${base.id}/documents/${d.id}/reindex`, { method: 'POST' }).then(refresh, setError)}>
                    {t('knowledge.reindex')}
                  </Button>
                )}
                {canWrite && (
                  <Button size="sm" variant="danger" onClick={() => api(`knowledge/bases/${base.id}/documents/${d.id}`, { method: 'DELETE' }).then(refresh, setError)}>
                    {t('common.delete')}
                  </Button>
                )}
              </div>
            </Card>
          );
        })}
      </div>
      {viewing && <ChunkViewer base={base} doc={viewing} onClose={() => setViewing(null)} />}
    </div>
  );
}

function ChunkViewer({ base, doc, onClose }: { base: Base; doc: KnowledgeDocument; onClose: () => void }) {
  const t = useT();
  const chunks = useQuery({
    queryKey: qk.knowledge.chunks(base.id, doc.id),
    queryFn: () => api<Page<Chunk>>(`knowledge/bases/${base.id}/documents/${doc.id}/chunks?per_page=100`),
  });
  return (
    <Dialog open onOpenChange={(o) => !o && onClose()} title={t('knowledge.chunksOf', { name: doc.name })} wide>
      <ErrorText error={chunks.error} />
      <div className="max-h-[70vh] space-y-2 overflow-y-auto" data-testid="chunk-list">
        {(chunks.data?.items ?? []).map((c) => (
          <Card key={c.id} className="p-3 text-sm">
            <div className="mb-1 flex flex-wrap gap-2 text-xs text-muted-fg">
              <span>#{c.position + 1}</span>
              {c.page_start != null && <span>{t('knowledge.pages', { from: c.page_start, to: c.page_end ?? c.page_start })}</span>}
              <span>{t('knowledge.tokens', { n: c.tokens })}</span>
              {c.embedded && <Badge tone="ok">{t('knowledge.vector')}</Badge>}
            </div>
            <div className="whitespace-pre-wrap break-words">{c.text}</div>
          </Card>
        ))}
      </div>
      {(chunks.data?.total ?? 0) > 100 && <p className="mt-2 text-xs text-muted-fg">{t('knowledge.firstChunks', { total: chunks.data?.total ?? 0 })}</p>}
    </Dialog>
  );
}

function HitTest({ base }: { base: Base }) {
  const t = useT();
  const [query, setQuery] = useState('');
  const [result, setResult] = useState<SearchResponse | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const run = async (e: React.FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      setResult(await api<SearchResponse>(`knowledge/bases/${base.id}/search`, { body: { query, top_k: 10 } }));
    } catch (err) {
      setError(err);
    }
    setBusy(false);
  };
  return (
    <div>
      <form onSubmit={run} className="mb-3 flex gap-2">
        <Input value={query} onChange={(e) => setQuery(e.target.value)} placeholder={t('knowledge.queryPlaceholder')} aria-label={t('knowledge.query')} maxLength={2000} />
        <Button type="submit" disabled={!query.trim() || busy} data-testid="run-search">
          {t('knowledge.search')}
        </Button>
      </form>
      <ErrorText error={error} />
      {result && (
        <div data-testid="search-result">
          <p className="mb-2 flex flex-wrap gap-2 text-xs text-muted-fg">
            <Badge>{t(result.mode === 'hybrid' ? 'knowledge.hybrid' : 'knowledge.lexical')}</Badge>
            {result.reranked && <Badge tone="primary">{t('knowledge.reranked')}</Badge>}
            {result.unranked && <Badge tone="danger">{t('knowledge.unranked')}</Badge>}
            <span>{t('knowledge.took', { ms: result.took_ms })}</span>
            <span data-testid="search-sources" title={t('knowledge.sourcesHint')}>
              {t('knowledge.sources', {
                lexical: t(`knowledge.source.${result.sources.lexical}`),
                vector: result.sources.vector ? t(`knowledge.source.${result.sources.vector}`) : '—',
              })}
            </span>
          </p>
          {result.vector_error && <p className="mb-2 text-xs text-danger">{t('knowledge.vectorError', { reason: result.vector_error })}</p>}
          {result.no_answer && (
            <Card className="mb-3 p-3 text-sm" data-testid="no-answer">
              {t('knowledge.noAnswer')}
            </Card>
          )}
          <HitList hits={result.hits} />
          {result.below_threshold.length > 0 && (
            <details className="mt-3 text-sm">
              <summary className="cursor-pointer text-muted-fg">{t('knowledge.belowThreshold', { n: result.below_threshold.length })}</summary>
              <div className="mt-2 opacity-70">
                <HitList hits={result.below_threshold} />
              </div>
            </details>
          )}
        </div>
      )}
    </div>
  );
}

function HitList({ hits }: { hits: SearchResponse['hits'] }) {
  const t = useT();
  return (
    <div className="space-y-2">
      {hits.map((h) => (
        <Card key={h.chunk.id} className="p-3 text-sm" data-testid="hit">
          <div className="mb-1 flex flex-wrap items-center gap-x-3 gap-y-1 text-xs">
            <span className="font-medium">{h.document_name}</span>
            {h.chunk.page_start != null && <span className="text-muted-fg">{t('knowledge.pages', { from: h.chunk.page_start, to: h.chunk.page_end ?? h.chunk.page_start })}</span>}
          </div>
          <div className="mb-2 grid grid-cols-4 gap-1 text-center text-xs" data-testid="hit-ranks">
            {[
              ['BM25', rank(h.bm25_rank)],
              [t('knowledge.vector'), rank(h.vector_rank)],
              [t('knowledge.fused'), rank(h.fused_rank)],
              [t('knowledge.reranked'), rank(h.reranked_rank)],
            ].map(([label, value]) => (
              <div key={label} className="rounded bg-muted px-1 py-1">
                <div className="text-muted-fg">{label}</div>
                <div className="font-mono">{value}</div>
              </div>
            ))}
          </div>
          <div className="line-clamp-4 whitespace-pre-wrap break-words">{h.chunk.text}</div>
          {h.parent && (
            <details className="mt-2 rounded-md bg-muted/60 px-2 py-1 text-xs" data-testid="hit-parent">
              <summary className="cursor-pointer text-muted-fg">
                {t('knowledge.parentSection', { tokens: h.parent.tokens })}
                {h.parent.headings.length > 0 && ` · ${h.parent.headings.join(' › ')}`}
              </summary>
              <div className="mt-1 max-h-64 overflow-y-auto whitespace-pre-wrap break-words">{h.parent.text}</div>
            </details>
          )}
          <div className="mt-1 text-xs text-muted-fg">
            {t('knowledge.score', { score: h.score.toFixed(4) })}
            {h.coverage != null && ` · ${t('knowledge.coverage', { n: Math.round(h.coverage * 100) })}`}
            {h.similarity != null && ` · ${t('knowledge.similarity', { n: h.similarity.toFixed(3) })}`}
          </div>
        </Card>
      ))}
    </div>
  );
}

function Settings({ base }: { base: Base }) {
  const t = useT();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const owner = base.permission === 'owner';
  const [form, setForm] = useState({
    name: base.name,
    description: base.description,
    embedding_model: base.embedding_model ?? '',
    rerank_model: base.rerank_model ?? '',
    visibility: base.visibility,
  });
  const [chunking, setChunking] = useState({
    chunk_max_tokens: String(base.chunk_max_tokens),
    chunk_overlap_tokens: String(base.chunk_overlap_tokens),
    parent_chunk_tokens: String(base.parent_chunk_tokens ?? 0),
  });
  // Only what changed is sent: a chunking change re-indexes every document.
  const chunkingChanges = () => {
    const now = {
      chunk_max_tokens: Number(chunking.chunk_max_tokens),
      chunk_overlap_tokens: Number(chunking.chunk_overlap_tokens),
      parent_chunk_tokens: Number(chunking.parent_chunk_tokens),
    };
    const was = { chunk_max_tokens: base.chunk_max_tokens, chunk_overlap_tokens: base.chunk_overlap_tokens, parent_chunk_tokens: base.parent_chunk_tokens ?? 0 };
    return Object.fromEntries(Object.entries(now).filter(([k, v]) => v !== was[k as keyof typeof was]));
  };
  const reindexes = Object.keys(chunkingChanges()).length > 0;
  const [error, setError] = useState<unknown>(null);
  const [deleting, setDeleting] = useState(false);
  const save = async (e: React.FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      await api(`knowledge/bases/${base.id}`, { method: 'PATCH', body: { ...form, ...chunkingChanges() } });
      await queryClient.invalidateQueries({ queryKey: qk.knowledge.all });
      toast(t('knowledge.saved'));
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form onSubmit={save} className="max-w-xl space-y-3">
      <Field label={t('common.name')}>
        <Input value={form.name} disabled={!owner} onChange={(e) => setForm({ ...form, name: e.target.value })} maxLength={100} />
      </Field>
      <Field label={t('knowledge.description')}>
        <Textarea rows={2} value={form.description} disabled={!owner} onChange={(e) => setForm({ ...form, description: e.target.value })} maxLength={2000} />
      </Field>
      <Field label={t('knowledge.embeddingModel')} hint={t('knowledge.embeddingChangeHint')}>
        <Input value={form.embedding_model} disabled={!owner} onChange={(e) => setForm({ ...form, embedding_model: e.target.value })} />
      </Field>
      <Field label={t('knowledge.rerankModel')} hint={t('common.optional')}>
        <Input value={form.rerank_model} disabled={!owner} onChange={(e) => setForm({ ...form, rerank_model: e.target.value })} />
      </Field>
      <Field label={t('knowledge.visibility')}>
        <Select value={form.visibility} disabled={!owner} onChange={(e) => setForm({ ...form, visibility: e.target.value })}>
          <option value="private">{t('knowledge.private')}</option>
          <option value="public">{t('knowledge.public')}</option>
        </Select>
      </Field>
      <fieldset className="space-y-2 rounded-md border border-border p-3" data-testid="chunking">
        <legend className="px-1 text-sm font-medium">{t('knowledge.chunkingTitle')}</legend>
        <p className="text-xs text-muted-fg">{t('knowledge.chunking', { max: base.chunk_max_tokens, overlap: base.chunk_overlap_tokens })}</p>
        <div className="grid grid-cols-1 gap-3 sm:grid-cols-3">
          <Field label={t('knowledge.chunkMax')}>
            <Input name="chunk_max_tokens" type="number" min="16" max="8192" value={chunking.chunk_max_tokens} disabled={!owner} onChange={(e) => setChunking({ ...chunking, chunk_max_tokens: e.target.value })} />
          </Field>
          <Field label={t('knowledge.chunkOverlap')}>
            <Input name="chunk_overlap_tokens" type="number" min="0" value={chunking.chunk_overlap_tokens} disabled={!owner} onChange={(e) => setChunking({ ...chunking, chunk_overlap_tokens: e.target.value })} />
          </Field>
          <Field label={t('knowledge.parentTokens')} hint={t('knowledge.parentHint')}>
            <Input name="parent_chunk_tokens" type="number" min="0" max="8192" value={chunking.parent_chunk_tokens} disabled={!owner} onChange={(e) => setChunking({ ...chunking, parent_chunk_tokens: e.target.value })} />
          </Field>
        </div>
        {reindexes && <p className="text-xs text-danger" data-testid="reindex-warning">{t('knowledge.reindexWarning', { n: base.stats.documents })}</p>}
      </fieldset>
      <ErrorText error={error} />
      {owner && (
        <div className="flex justify-between gap-2">
          <Button variant="danger" onClick={() => setDeleting(true)}>
            {t('knowledge.deleteBase')}
          </Button>
          <Button type="submit">{t('common.save')}</Button>
        </div>
      )}
      <Dialog open={deleting} onOpenChange={setDeleting} title={t('knowledge.deleteBase')}>
        <p className="text-sm">{t('knowledge.deleteConfirm', { name: base.name })}</p>
        <div className="mt-4 flex justify-end gap-2">
          <Button variant="secondary" onClick={() => setDeleting(false)}>
            {t('common.cancel')}
          </Button>
          <Button
            variant="danger"
            onClick={async () => {
              try {
                await api(`knowledge/bases/${base.id}`, { method: 'DELETE' });
                await queryClient.invalidateQueries({ queryKey: qk.knowledge.all });
                navigate('/knowledge');
              } catch (err) {
                setError(err);
                setDeleting(false);
              }
            }}
          >
            {t('common.delete')}
          </Button>
        </div>
      </Dialog>
    </form>
  );
}
