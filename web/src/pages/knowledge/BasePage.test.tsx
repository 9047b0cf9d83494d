import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter, Route, Routes } from 'react-router-dom';
import BasePage from './BasePage';
import KnowledgeList from './KnowledgeList';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const stats = { documents: 2, ready_documents: 1, failed_documents: 1, chunks: 3, embedded_chunks: 3, tokens: 120, bytes: 2048 };
const base = {
  id: 'b1', owner_id: 'u1', name: 'Policies', description: 'HR rules', embedding_model: 'embed', rerank_model: null,
  retrieval: 'hybrid', chunk_max_tokens: 512, chunk_overlap_tokens: 64, visibility: 'private', permission: 'owner',
  stats, created_at: '2026-12-04T10:00:00Z', updated_at: '2026-12-04T10:00:00Z',
};
const doc = (id: string, status: string, extra: object = {}) => ({
  id, base_id: 'b1', file_id: `f-${id}`, name: `${id}.pdf`, content_type: 'application/pdf', size: 1024, status,
  progress_done: 0, progress_total: 0, chunk_count: null, error: null, created_at: '2026-12-04T10:00:00Z', updated_at: '2026-12-04T10:00:00Z', ...extra,
});
const hit = {
  chunk: { id: 'c1', document_id: 'd1', position: 0, text: 'Annual leave is fifteen days.', headings: [], page_start: 2, page_end: 2, tokens: 8, embedded: true },
  document_name: 'handbook.pdf', file_id: 'f1', score: 0.032, bm25_rank: 1, vector_rank: null, fused_rank: 1, reranked_rank: null,
  coverage: 0.9, similarity: null, rerank_score: null,
  parent: { id: 'p1', position: 0, text: 'Leave\nAnnual leave is fifteen days. Carry-over needs approval.', headings: ['Handbook', 'Leave'], page_start: 2, page_end: 3, tokens: 40 },
};

function mockServer(
  calls: Array<{ url: string; method: string; body: unknown }>,
  events?: (c: ReadableStreamDefaultController<Uint8Array>) => void,
) {
  vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
    const method = init.method ?? 'GET';
    calls.push({ url, method, body: typeof init.body === 'string' ? JSON.parse(init.body) : init.body });
    const json = (v: unknown) => new Response(JSON.stringify(v), { status: 200 });
    if (url.endsWith('/knowledge/bases/b1/events') && events !== undefined) {
      // The frames, then a stream that stays open (as the server's does).
      const body = new ReadableStream<Uint8Array>({ start: events });
      return new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } });
    }
    if (url.endsWith('/knowledge/bases/b1')) return json(base);
    if (url.includes('/knowledge/bases/b1/documents?')) {
      return json({
        items: [
          doc('d1', 'embedding', { progress_done: 4, progress_total: 8, chunk_count: 8 }),
          doc('d2', 'failed', { error: { code: 'extract_failed', en: 'the pdf file contains no text', zh: '该 pdf 文件中没有文字' } }),
        ],
        total: 2, page: 1, per_page: 100,
      });
    }
    if (url.endsWith('/knowledge/bases/b1/search')) {
      return json({
        hits: [hit], below_threshold: [], no_answer: false, mode: 'hybrid', vector_error: null, reranked: false, unranked: true, took_ms: 7,
        sources: { lexical: 'memory', vector: 'pgvector' },
      });
    }
    if (url.includes('/knowledge/bases?')) return json({ items: [base], total: 1, page: 1, per_page: 100 });
    return new Response('{}', { status: 404 });
  });
}

function show(path: string) {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <QueryClientProvider client={client}>
      <MemoryRouter initialEntries={[path]}>
        <Routes>
          <Route path="/knowledge" element={<KnowledgeList />} />
          <Route path="/knowledge/:id" element={<BasePage />} />
        </Routes>
      </MemoryRouter>
    </QueryClientProvider>,
  );
}

describe('knowledge pages', () => {
  it('lists bases with their search mode and counts', async () => {
    mockServer([]);
    show('/knowledge');
    const list = await screen.findByTestId('base-list');
    expect(await within(list).findByText('Policies')).toBeTruthy();
    expect(within(list).getByText('Hybrid search')).toBeTruthy();
    expect(within(list).getByText('2 documents · 3 chunks')).toBeTruthy();
  });

  it('shows documents with status, progress and errors', async () => {
    mockServer([]);
    show('/knowledge/b1');
    const rows = await screen.findAllByTestId('document-row');
    expect(rows.map((r) => r.getAttribute('data-status'))).toEqual(['embedding', 'failed']);
    expect(within(rows[0]).getByText(/4\/8 embedded/)).toBeTruthy();
    expect(within(rows[0]).getByRole('progressbar').getAttribute('aria-valuenow')).toBe('55');
    expect(within(rows[1]).getByText('the pdf file contains no text')).toBeTruthy();
  });

  it('shows progress pushed by the server and stops polling while the stream is live', async () => {
    const calls: Array<{ url: string; method: string; body: unknown }> = [];
    const frame = (event: string, data: unknown) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    let stream: ReadableStreamDefaultController<Uint8Array> | undefined;
    mockServer(calls, (c) => {
      stream = c;
    });
    show('/knowledge/b1');
    // The list as first read, then what the server pushes.
    expect((await screen.findAllByTestId('document-row')).length).toBe(2);
    await waitFor(() => expect(stream).toBeDefined());
    stream?.enqueue(
      new TextEncoder().encode(
        frame('synced', {}) +
          frame('document', doc('d1', 'embedding', { progress_done: 6, progress_total: 8, chunk_count: 8 })) +
          frame('removed', { id: 'd2' }),
      ),
    );
    await waitFor(async () => {
      const rows = await screen.findAllByTestId('document-row');
      expect(rows.map((r) => r.getAttribute('data-status'))).toEqual(['embedding']);
      expect(within(rows[0]).getByText(/6\/8 embedded/)).toBeTruthy();
    });
    const lists = () => calls.filter((c) => c.url.includes('/documents?')).length;
    const before = lists();
    // Polling (every 1.5 s while a document works) would have asked again by now.
    await new Promise((r) => setTimeout(r, 1700));
    expect(lists()).toBe(before);
    expect(calls.filter((c) => c.url.endsWith('/events')).length).toBe(1);
  });

  it('runs a hit test and shows each stage rank', async () => {
    const calls: Array<{ url: string; method: string; body: unknown }> = [];
    mockServer(calls);
    show('/knowledge/b1');
    fireEvent.click(await screen.findByRole('tab', { name: 'Hit testing' }));
    fireEvent.change(screen.getByLabelText('Query'), { target: { value: 'annual leave' } });
    fireEvent.click(screen.getByTestId('run-search'));
    const ranks = await screen.findByTestId('hit-ranks');
    expect(ranks.textContent).toBe('BM25#1Vector–Fused#1Reranked–');
    expect(screen.getByText('Rerank unavailable: fused order')).toBeTruthy();
    await waitFor(() => expect(calls.some((c) => c.method === 'POST' && c.url.endsWith('/search'))).toBe(true));
    expect(calls.find((c) => c.method === 'POST')?.body).toEqual({ query: 'annual leave', top_k: 10 });
    // Where each stage read from, and the parent section handed to chat.
    expect(screen.getByTestId('search-sources').textContent).toBe('BM25 from memory · vectors from pgvector');
    const parent = screen.getByTestId('hit-parent');
    expect(within(parent).getByText('Section around this chunk (40 tokens) · Handbook › Leave')).toBeTruthy();
    expect(parent.textContent).toContain('Carry-over needs approval.');
  });

  it('changes chunking, warns that it re-indexes, and sends only what changed', async () => {
    const calls: Array<{ url: string; method: string; body: unknown }> = [];
    mockServer(calls);
    show('/knowledge/b1');
    fireEvent.click(await screen.findByRole('tab', { name: 'Settings' }));
    const chunking = await screen.findByTestId('chunking');
    expect(screen.queryByTestId('reindex-warning')).toBeNull();
    fireEvent.change(chunking.querySelector('input[name="parent_chunk_tokens"]') as HTMLInputElement, { target: { value: '1024' } });
    expect(screen.getByTestId('reindex-warning').textContent).toBe('Saving re-indexes all 2 documents of this base.');
    fireEvent.click(screen.getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(calls.some((c) => c.method === 'PATCH')).toBe(true));
    const body = calls.find((c) => c.method === 'PATCH')?.body as Record<string, unknown>;
    expect(body.parent_chunk_tokens).toBe(1024);
    expect('chunk_max_tokens' in body).toBe(false);
    expect(body.name).toBe('Policies');
  });
});
