import { useEffect, useState } from 'react';
import { useQueryClient, type QueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { qk } from '../../lib/queryKeys';
import { readSse, type SseEvent } from '../../lib/sse';
import type { Page } from '../../lib/types';
import type { KnowledgeDocument } from './types';

/** Applies one pushed event of `GET knowledge/bases/{id}/events` to the cached document list. */
export function applyDocumentEvent(client: QueryClient, baseId: string, e: SseEvent) {
  const key = qk.knowledge.documents(baseId);
  if (e.event === 'document') {
    const doc = JSON.parse(e.data) as KnowledgeDocument;
    const page = client.getQueryData<Page<KnowledgeDocument>>(key);
    if (!page || !page.items.some((d) => d.id === doc.id)) {
      // A document this page has not listed yet: read the list again.
      void client.invalidateQueries({ queryKey: key });
      return;
    }
    client.setQueryData<Page<KnowledgeDocument>>(key, {
      ...page,
      items: page.items.map((d) => (d.id === doc.id ? doc : d)),
    });
    if (doc.status === 'ready' || doc.status === 'failed') {
      void client.invalidateQueries({ queryKey: qk.knowledge.base(baseId) });
    }
  } else if (e.event === 'removed') {
    const { id } = JSON.parse(e.data) as { id: string };
    const page = client.getQueryData<Page<KnowledgeDocument>>(key);
    if (page) client.setQueryData<Page<KnowledgeDocument>>(key, { ...page, items: page.items.filter((d) => d.id !== id) });
  }
}

/**
 * Follows a base's documents as server-sent events while the page is open. Answers whether
 * the stream is live: while it is not (not yet connected, refused, dropped), the caller polls.
 * A dropped stream is opened again after a pause that grows to 30 s.
 */
export function useDocumentEvents(baseId: string): boolean {
  const client = useQueryClient();
  const [live, setLive] = useState(false);
  useEffect(() => {
    const abort = new AbortController();
    let wait = 1000;
    const run = async () => {
      while (!abort.signal.aborted) {
        try {
          const res = await api<Response>(`knowledge/bases/${baseId}/events`, { signal: abort.signal, raw: true });
          if (!res.body) break;
          await readSse(res.body, (e) => {
            if (e.event === 'synced') {
              setLive(true);
              wait = 1000;
            }
            applyDocumentEvent(client, baseId, e);
          });
        } catch {
          // Polling takes over until the stream is back.
        }
        setLive(false);
        if (abort.signal.aborted) break;
        await new Promise((r) => setTimeout(r, wait));
        wait = Math.min(wait * 2, 30_000);
      }
    };
    void run();
    return () => abort.abort();
  }, [baseId, client]);
  return live;
}
