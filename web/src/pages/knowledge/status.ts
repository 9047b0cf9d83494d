import type { KnowledgeDocument } from './types';

/** Statuses a document is still moving through (the page keeps polling while one is). */
const WORKING = new Set(['queued', 'extracting', 'embedding', 'indexing']);

/** Whether the document is still being indexed. */
export function isWorking(doc: Pick<KnowledgeDocument, 'status'>): boolean {
  return WORKING.has(doc.status);
}

/** Indexing progress, 0–100: embedding counts chunks done; before that a step counts little. */
export function progressPercent(doc: Pick<KnowledgeDocument, 'status' | 'progress_done' | 'progress_total'>): number {
  if (doc.status === 'ready') return 100;
  if (doc.status === 'queued') return 0;
  if (doc.status === 'extracting') return 5;
  if (doc.progress_total <= 0) return 10;
  return Math.min(99, 10 + Math.round((doc.progress_done / doc.progress_total) * 89));
}

/** The badge tone of a status. */
export function statusTone(status: string): 'neutral' | 'ok' | 'danger' | 'primary' {
  if (status === 'ready') return 'ok';
  if (status === 'failed') return 'danger';
  return 'primary';
}

/** A document's error in the UI language. */
export function documentError(doc: Pick<KnowledgeDocument, 'error'>, lang: string): string | null {
  if (!doc.error) return null;
  return lang === 'zh-CN' ? doc.error.zh : doc.error.en;
}

/** A rank for the hit-testing table: `–` when the stage did not find the hit. */
export function rank(value: number | null | undefined): string {
  return value == null || value === 0 ? '–' : `#${value}`;
}
