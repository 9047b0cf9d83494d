import { lazy, Suspense, useState } from 'react';
import { api } from '../../lib/api';
import { siblingLabel, siblingTarget } from '../../lib/branch';
import { money, num } from '../../lib/format';
import type { ChatMessage, Citation } from '../../lib/types';
import { useT } from '../../i18n';
import { Badge, Button, CopyButton, cx, Textarea } from '../../components/ui';
import { BalanceHint } from './BalanceHint';
import { MessageImages } from './Media';
import { ToolSteps } from './ToolSteps';
import { isTemp } from './useChatStream';

const Markdown = lazy(() => import('../../components/markdown/Markdown'));

function Plain({ text }: { text: string }) {
  return <div className="whitespace-pre-wrap break-words">{text}</div>;
}

/** A failed answer's error in the UI language, with its request id. */
export function errorText(m: ChatMessage, lang: string): string | null {
  if (!m.error) return null;
  if (typeof m.error === 'string') return m.error;
  const message = lang === 'zh-CN' && m.error.message_zh ? m.error.message_zh : m.error.message;
  return m.error.request_id ? `${message} (${m.error.request_id})` : message;
}

/** "page 3" or "pages 3–5" of a citation, when it has pages. */
export function citedPages(c: Citation, page: (n: string) => string): string | null {
  const pages = c.reference?.pages;
  if (!pages) return null;
  return page(pages[0] === pages[1] ? String(pages[0]) : `${pages[0]}–${pages[1]}`);
}

/** Opens the document a knowledge citation comes from: the server checks that the reader may
 * read its base and answers a signed link (a reader of a shared base is not the file's owner). */
function OpenCited({ base, document }: { base: string; document: string }) {
  const t = useT();
  const [failed, setFailed] = useState(false);
  const open = async () => {
    setFailed(false);
    // Opened before the request so the browser does not block it as a pop-up.
    const tab = window.open('', '_blank');
    try {
      const link = await api<{ url: string }>(`knowledge/bases/${encodeURIComponent(base)}/documents/${encodeURIComponent(document)}/file`);
      if (tab) {
        tab.opener = null;
        tab.location.href = link.url;
      } else {
        window.location.assign(link.url);
      }
    } catch {
      tab?.close();
      setFailed(true);
    }
  };
  return (
    <button type="button" className="ml-1 text-primary underline" onClick={open} data-testid="source-open">
      {failed ? t('chat.sourceUnavailable') : t('chat.sourceOpen')}
    </button>
  );
}

/** The passages an answer cites, numbered as the answer cites them. */
export function Sources({ sources }: { sources: Citation[] }) {
  const t = useT();
  return (
    <details className="rounded-md border border-border px-3 py-1 text-sm" data-testid="sources">
      <summary className="cursor-pointer text-muted-fg">
        {t('chat.sources')} ({sources.length})
      </summary>
      <ol className="mt-1 space-y-2 pb-1">
        {sources.map((c) => {
          const pages = citedPages(c, (n) => t('chat.sourcePage', { n }));
          return (
            <li key={`${c.source}-${c.label}`} data-testid="source">
              <div className="text-xs font-medium">
                [{c.label}] {c.title}
                {pages && <span className="text-muted-fg"> · {pages}</span>}
                {c.reference?.base_id && c.reference.document_id && <OpenCited base={c.reference.base_id} document={c.reference.document_id} />}
              </div>
              <div className="line-clamp-3 whitespace-pre-wrap break-words text-xs text-muted-fg">{c.excerpt}</div>
            </li>
          );
        })}
      </ol>
    </details>
  );
}

/** The ‹ 2/3 › switcher between versions of a message. */
function Versions({ m, disabled, onSwitch }: { m: ChatMessage; disabled: boolean; onSwitch: (id: string | null) => void }) {
  const t = useT();
  if (m.sibling_count <= 1) return null;
  return (
    <span className="inline-flex items-center text-xs text-muted-fg" data-testid="versions">
      <button className="px-1 disabled:opacity-30" aria-label={t('chat.previous')} disabled={disabled || !siblingTarget(m, -1)} onClick={() => onSwitch(siblingTarget(m, -1))}>
        ‹
      </button>
      <span>{siblingLabel(m)}</span>
      <button className="px-1 disabled:opacity-30" aria-label={t('chat.nextVersion')} disabled={disabled || !siblingTarget(m, 1)} onClick={() => onSwitch(siblingTarget(m, 1))}>
        ›
      </button>
    </span>
  );
}

/** What one message can do; the thread decides which apply. */
export interface MessageItemProps {
  message: ChatMessage;
  lang: string;
  /** An answer is being written (actions that would start another wait). */
  streaming: boolean;
  /** This message's text while it is being edited, else null. */
  editText: string | null;
  /** Whether an edit may start (none is open, nothing is streaming). */
  canEdit: boolean;
  onEditStart: () => void;
  onEditChange: (text: string) => void;
  onEditCancel: () => void;
  onEditSubmit: (text: string) => void;
  onRegenerate: () => void;
  onSwitch: (messageId: string | null) => void;
}

/** One message with its actions (edit, copy, regenerate, versions). */
export function MessageItem(props: MessageItemProps) {
  const { message: m, lang, streaming } = props;
  const t = useT();
  if (m.role === 'user') {
    return (
      <div className="flex flex-col items-end gap-1" data-testid="user-message">
        {props.editText !== null ? (
          <div className="w-full max-w-[85%] space-y-2">
            <Textarea rows={3} value={props.editText} onChange={(e) => props.onEditChange(e.target.value)} autoFocus aria-label={t('chat.editMessage')} />
            <div className="flex justify-end gap-2">
              <Button variant="secondary" size="sm" onClick={props.onEditCancel}>
                {t('common.cancel')}
              </Button>
              <Button size="sm" onClick={() => props.onEditSubmit(props.editText ?? '')}>
                {t('chat.saveAndSend')}
              </Button>
            </div>
          </div>
        ) : (
          <>
            {m.images?.length > 0 && <MessageImages images={m.image_urls ?? m.images} className="max-w-[85%] justify-end" />}
            {m.content && <div className="max-w-[85%] whitespace-pre-wrap break-words rounded-2xl bg-primary/10 px-4 py-2">{m.content}</div>}
          </>
        )}
        <div className="flex items-center gap-1">
          <Versions m={m} disabled={streaming} onSwitch={props.onSwitch} />
          {props.canEdit && (
            <Button variant="ghost" size="sm" className="h-7 text-xs text-muted-fg" onClick={props.onEditStart}>
              {t('chat.editMessage')}
            </Button>
          )}
          <CopyButton text={m.content} className="h-7 text-xs text-muted-fg" />
        </div>
      </div>
    );
  }
  const error = errorText(m, lang);
  return (
    <div className="space-y-1" data-testid="assistant-message" data-status={m.status}>
      {m.reasoning && (
        // Open while the model is still thinking (nothing else to read yet), so the reasoning
        // is seen as it streams; closed once the answer itself starts, unless opened again.
        <details className="rounded-md border border-border px-3 py-1 text-sm text-muted-fg" open={(m.status === 'streaming' && !m.content) || undefined} data-testid="reasoning">
          <summary className="cursor-pointer">{t('chat.thinking')}</summary>
          <Plain text={m.reasoning} />
        </details>
      )}
      {m.images?.length > 0 && <MessageImages images={m.image_urls ?? m.images} />}
      {m.tool_calls && m.tool_calls.length > 0 && <ToolSteps steps={m.tool_calls} />}
      <div className={cx(m.status === 'streaming' && !m.content && 'animate-pulse text-muted-fg')}>
        {m.content ? (
          <Suspense fallback={<Plain text={m.content} />}>
            <Markdown text={m.content} />
          </Suspense>
        ) : m.status === 'streaming' ? (
          '…'
        ) : null}
      </div>
      {m.sources && m.sources.length > 0 && m.status !== 'streaming' && <Sources sources={m.sources} />}
      {error && (
        <div className="rounded-md bg-danger/10 px-3 py-2 text-sm text-danger" role="alert">
          {error}
        </div>
      )}
      <BalanceHint error={m.error} />
      <div className="flex flex-wrap items-center gap-1 text-xs text-muted-fg">
        <Versions m={m} disabled={streaming} onSwitch={props.onSwitch} />
        {m.status === 'stopped' && <Badge>{t('chat.stopped')}</Badge>}
        {m.status === 'failed' && <Badge tone="danger">{t('chat.failed')}</Badge>}
        {m.status !== 'streaming' && (
          <>
            <CopyButton text={m.content} className="h-7 text-xs text-muted-fg" />
            {!streaming && !isTemp(m.id) && (
              <Button variant="ghost" size="sm" className="h-7 text-xs text-muted-fg" onClick={props.onRegenerate}>
                {t('chat.regenerate')}
              </Button>
            )}
          </>
        )}
        {m.model && <span className="px-1">{m.model}</span>}
        {m.usage && (
          <span className="px-1" data-testid="message-cost">
            {t('chat.cost', { tokens: num(m.usage.prompt_tokens + m.usage.completion_tokens), cost: money(m.usage.cost) })}
          </span>
        )}
      </div>
    </div>
  );
}
