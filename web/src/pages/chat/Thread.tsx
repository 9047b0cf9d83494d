import { lazy, Suspense, useCallback, useEffect, useLayoutEffect, useRef, useState } from 'react';
import { useNavigate } from 'react-router-dom';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useVirtualizer } from '@tanstack/react-virtual';
import { api, ApiError, download } from '../../lib/api';
import { openStream } from '../../lib/chat';
import { applyEvent, beginRegenerate, beginSend, leafId, siblingLabel, siblingTarget, type StreamEvent, type StreamIds } from '../../lib/branch';
import { storage, useStore } from '../../lib/store';
import { langStore } from '../../lib/settings';
import { money, num } from '../../lib/format';
import type { ChatMessage, ChatModel, Conversation, History } from '../../lib/types';
import { useT } from '../../i18n';
import { Badge, Button, CopyButton, cx, ErrorText, Textarea } from '../../components/ui';
import { Menu } from '../../components/ui/menu';
import { ConversationSettings } from './ConversationSettings';
import { ModelPicker } from './ModelPicker';
import { AttachedImages, MessageImages, VoiceButton, type ComposerError } from './Media';
import { attachImages, IMAGE_TYPES, MAX_IMAGES, type ImageProblem } from '../../lib/images';
import { insertAtCursor } from '../../lib/voice';
import type { MessageKey } from '../../i18n';
import { qk } from '../../lib/queryKeys';

const Markdown = lazy(() => import('../../components/markdown/Markdown'));

const MODEL_KEY = 'skein.model';
/** Longer branches mount only the messages near the viewport; shorter ones render whole. */
export const WINDOW_FROM = 50;
const draftKey = (id: string | null) => `skein.draft.${id ?? 'new'}`;
let tempCounter = 0;
const isTemp = (id: string | null) => !id || id.startsWith('tmp-');
const imageProblemKey: Record<ImageProblem, MessageKey> = {
  notImage: 'chat.imageNotImage',
  tooLarge: 'chat.imageTooLarge',
  tooMany: 'chat.imageTooMany',
  unreadable: 'chat.imageUnreadable',
};

function Plain({ text }: { text: string }) {
  return <div className="whitespace-pre-wrap break-words">{text}</div>;
}

/** A failed answer's error in the UI language, with its request id. */
function errorText(m: ChatMessage, lang: string): string | null {
  if (!m.error) return null;
  if (typeof m.error === 'string') return m.error;
  const message = lang === 'zh-CN' && m.error.message_zh ? m.error.message_zh : m.error.message;
  return m.error.request_id ? `${message} (${m.error.request_id})` : message;
}

/** One conversation: its messages, streaming answers, versions, and the composer. */
export function Thread({ conversationId, models, onOpenList }: { conversationId: string | null; models: ChatModel[]; onOpenList: () => void }) {
  const t = useT();
  const lang = useStore(langStore);
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [messages, setMessages] = useState<ChatMessage[]>([]);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [streaming, setStreaming] = useState(false);
  const [draft, setDraft] = useState(() => storage.get(draftKey(conversationId)) ?? '');
  const [editing, setEditing] = useState<{ id: string; text: string } | null>(null);
  const [settingsOpen, setSettingsOpen] = useState(false);
  const [pickedModel, setPickedModel] = useState<string>(() => storage.get(MODEL_KEY) ?? '');
  const [images, setImages] = useState<string[]>([]);
  const [composerError, setComposerError] = useState<ComposerError | null>(null);
  const [dragging, setDragging] = useState(false);
  const composer = useRef<HTMLTextAreaElement>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const localId = useRef<string | null>(conversationId);
  const ids = useRef<StreamIds>({ user: null, assistant: '' });
  const abort = useRef<AbortController | null>(null);
  const stopWanted = useRef(false);
  const scroller = useRef<HTMLDivElement>(null);
  const stick = useRef(true);

  const conversation = useQuery({
    queryKey: qk.conversation(conversationId),
    queryFn: () => api<Conversation>(`chat/conversations/${conversationId}`),
    enabled: conversationId !== null,
  });
  const model = conversation.data?.model || pickedModel || models[0]?.id || '';

  const handle = useCallback(
    (event: StreamEvent) => {
      const before = ids.current;
      if (event.type === 'start') {
        ids.current = { user: event.user_message_id, assistant: event.assistant_message_id };
        if (stopWanted.current) api(`chat/messages/${event.assistant_message_id}/stop`, { method: 'POST' }).catch(() => undefined);
      }
      if (event.type === 'title') {
        queryClient.invalidateQueries({ queryKey: qk.conversations.all });
        queryClient.invalidateQueries({ queryKey: qk.conversation(localId.current) });
      }
      setMessages((m) => applyEvent(m, before, event).messages);
    },
    [queryClient],
  );

  const reload = useCallback(async (id: string) => {
    const history = await api<History>(`chat/conversations/${id}/messages`);
    if (localId.current === id) setMessages(history.messages);
    return history;
  }, []);

  const runSeq = useRef(0);
  const running = useRef<Promise<void> | null>(null);

  /**
   * Reads one answer's stream. The composer is free again at `done` (the server may keep the
   * stream open a little longer to send the new title); a send made meanwhile waits for the
   * stream to end, because the server takes one answer per conversation at a time. When the
   * request fails before the answer starts, the path shown before is restored and the text
   * goes back into the composer.
   */
  const run = useCallback(
    (path: string, method: 'GET' | 'POST', body: unknown, start: StreamIds, before: ChatMessage[] | null, draftBack: string | null, imagesBack: string[] = []) => {
      const seq = ++runSeq.current;
      const convId = localId.current;
      const previous = running.current;
      const job = (async () => {
        await previous?.catch(() => undefined);
        ids.current = start;
        stopWanted.current = false;
        const controller = new AbortController();
        abort.current = controller;
        let started = false;
        try {
          await openStream(path, { method, body, signal: controller.signal }, (event) => {
            if (event.type === 'start' || event.type === 'delta') started = true;
            handle(event);
            if ((event.type === 'done' || event.type === 'error') && runSeq.current === seq) setStreaming(false);
          });
        } catch (e) {
          if ((e as Error)?.name !== 'AbortError') {
            const err = e instanceof ApiError ? e : new ApiError(0, 'network_error', t('error.network'), null);
            if (!started && before && runSeq.current === seq) {
              setMessages(before);
              if (draftBack !== null) setDraft((d) => d || draftBack);
              if (imagesBack.length) setImages((now) => (now.length ? now : imagesBack));
              setLoadError(err);
            } else {
              handle({ type: 'error', code: err.code, message: err.status === 0 ? t('error.network') : err.message, request_id: err.requestId ?? undefined });
            }
          }
        } finally {
          if (abort.current === controller) abort.current = null;
          queryClient.invalidateQueries({ queryKey: qk.conversations.all });
          queryClient.invalidateQueries({ queryKey: qk.quota });
          // Only the latest stream settles the page: the server's tree is the truth for
          // versions and ids once the answer is saved.
          if (runSeq.current === seq) {
            setStreaming(false);
            if (convId && localId.current === convId) reload(convId).catch(() => undefined);
          }
        }
      })();
      running.current = job;
      setStreaming(true);
      return job;
    },
    [handle, queryClient, reload, t],
  );

  // Load (or reset for a new chat) when the route's conversation changes.
  useEffect(() => {
    if (conversationId === localId.current && (conversationId === null || messages.length > 0 || streaming)) return;
    localId.current = conversationId;
    abort.current?.abort();
    setMessages([]);
    setLoadError(null);
    setEditing(null);
    setImages([]);
    setComposerError(null);
    setDraft(storage.get(draftKey(conversationId)) ?? '');
    if (!conversationId) return;
    reload(conversationId)
      .then((history) => {
        const last = history.messages[history.messages.length - 1];
        if (last && last.role === 'assistant' && last.status === 'streaming') {
          // Re-attach: the first delta carries everything produced so far.
          setMessages(history.messages.map((m) => (m.id === last.id ? { ...m, content: '' } : m)));
          run(`chat/messages/${last.id}/stream`, 'GET', undefined, { user: last.parent_id, assistant: last.id }, null, null);
        }
      })
      .catch(setLoadError);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [conversationId]);

  // Windowed rendering: heights are estimated, then measured as rows mount (Markdown, code
  // blocks and images vary a lot), and re-measured when they resize (a streaming answer).
  const windowed = messages.length > WINDOW_FROM;
  const list = useRef<HTMLDivElement>(null);
  const [scrollMargin, setScrollMargin] = useState(0);
  const virtualizer = useVirtualizer({
    count: windowed ? messages.length : 0,
    getScrollElement: () => scroller.current,
    estimateSize: () => 160,
    getItemKey: (i) => messages[i]?.id ?? i,
    overscan: 6,
    scrollMargin,
  });
  const rows = virtualizer.getVirtualItems();
  const totalSize = virtualizer.getTotalSize();
  useLayoutEffect(() => {
    if (windowed) setScrollMargin(list.current?.offsetTop ?? 0);
  }, [windowed, loadError]);

  // Follow the bottom (opening a conversation, a streaming answer) unless the user scrolled
  // up; in a windowed list measured rows change the height too, hence `totalSize`.
  useEffect(() => {
    const el = scroller.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [messages, totalSize]);

  const saveDraft = (text: string) => {
    setDraft(text);
    storage.set(draftKey(localId.current), text || null);
  };

  const addImages = async (files: File[]) => {
    if (!files.length) return;
    setComposerError(null);
    const { images: next, problem } = await attachImages(images, files);
    setImages(next);
    if (problem) setComposerError({ message: t(imageProblemKey[problem]) });
  };

  const insertTranscript = (text: string) => {
    const el = composer.current;
    const { value, caret } = insertAtCursor(draft, text, el?.selectionStart ?? draft.length, el?.selectionEnd ?? draft.length);
    saveDraft(value);
    requestAnimationFrame(() => {
      el?.focus();
      el?.setSelectionRange(caret, caret);
    });
  };

  const send = async (content: string, parentId: string | null, explicitParent: boolean, attached: string[] = []) => {
    if ((!content.trim() && !attached.length) || streaming) return;
    let id = localId.current;
    if (!id) {
      try {
        const created = await api<Conversation>('chat/conversations', { body: { model: model || undefined } });
        id = created.id;
      } catch (e) {
        setLoadError(e);
        return;
      }
      storage.set(draftKey(null), null);
      localId.current = id;
      queryClient.invalidateQueries({ queryKey: qk.conversations.all });
      navigate(`/chat/${id}`);
    } else {
      storage.set(draftKey(id), null);
    }
    setDraft('');
    setImages([]);
    setComposerError(null);
    const n = ++tempCounter;
    const temp = { user: `tmp-u-${n}`, assistant: `tmp-a-${n}` };
    stick.current = true;
    setLoadError(null);
    const before = messages;
    setMessages(beginSend(messages, parentId, content, temp, attached));
    const body: Record<string, unknown> = { content, model: model || undefined };
    if (attached.length) body.images = attached;
    if (explicitParent || parentId) body.parent_id = parentId;
    await run(`chat/conversations/${id}/messages`, 'POST', body, temp, before, content, attached);
  };

  const regenerate = async (m: ChatMessage) => {
    if (streaming) return;
    const temp = `tmp-a-${++tempCounter}`;
    setLoadError(null);
    const before = messages;
    setMessages(beginRegenerate(messages, m.id, temp));
    await run(`chat/messages/${m.id}/regenerate`, 'POST', undefined, { user: m.parent_id, assistant: temp }, before, null);
  };

  const stop = () => {
    const id = ids.current.assistant;
    if (isTemp(id)) stopWanted.current = true;
    else api(`chat/messages/${id}/stop`, { method: 'POST' }).catch(() => abort.current?.abort());
    // If the server does not end the stream soon, stop listening.
    const controller = abort.current;
    setTimeout(() => controller?.abort(), 10_000);
  };

  const switchTo = async (messageId: string | null) => {
    const id = localId.current;
    if (!messageId || !id || streaming) return;
    try {
      const history = await api<History>(`chat/conversations/${id}/switch`, { body: { message_id: messageId } });
      setMessages(history.messages);
    } catch (e) {
      setLoadError(e);
    }
  };

  const changeModel = async (value: string) => {
    setPickedModel(value);
    storage.set(MODEL_KEY, value);
    if (localId.current) {
      await api(`chat/conversations/${localId.current}`, { method: 'PATCH', body: { model: value } }).catch(setLoadError);
      queryClient.invalidateQueries({ queryKey: qk.conversation(localId.current) });
    }
  };

  const exportAs = (format: 'markdown' | 'html' | 'json') => {
    const id = localId.current;
    if (!id) return;
    const ext = format === 'markdown' ? 'md' : format;
    const name = (conversation.data?.title || 'conversation').replace(/[\\/:*?"<>|]+/g, '_');
    download(`chat/conversations/${id}/export?format=${format}`, `${name}.${ext}`).catch(setLoadError);
  };

  const current = models.find((m) => m.id === model);
  const versionSwitcher = (m: ChatMessage) =>
    m.sibling_count > 1 && (
      <span className="inline-flex items-center text-xs text-muted-fg" data-testid="versions">
        <button className="px-1 disabled:opacity-30" aria-label={t('chat.previous')} disabled={streaming || !siblingTarget(m, -1)} onClick={() => switchTo(siblingTarget(m, -1))}>
          ‹
        </button>
        <span>{siblingLabel(m)}</span>
        <button className="px-1 disabled:opacity-30" aria-label={t('chat.nextVersion')} disabled={streaming || !siblingTarget(m, 1)} onClick={() => switchTo(siblingTarget(m, 1))}>
          ›
        </button>
      </span>
    );

  /** One message with its actions (edit, copy, regenerate, versions). */
  const renderMessage = (m: ChatMessage) =>
    m.role === 'user' ? (
      <div key={m.id} className="flex flex-col items-end gap-1" data-testid="user-message">
        {editing?.id === m.id ? (
          <div className="w-full max-w-[85%] space-y-2">
            <Textarea rows={3} value={editing.text} onChange={(e) => setEditing({ id: m.id, text: e.target.value })} autoFocus aria-label={t('chat.editMessage')} />
            <div className="flex justify-end gap-2">
              <Button variant="secondary" size="sm" onClick={() => setEditing(null)}>
                {t('common.cancel')}
              </Button>
              <Button
                size="sm"
                onClick={() => {
                  const text = editing.text;
                  setEditing(null);
                  send(text, m.parent_id, true, m.images);
                }}
              >
                {t('chat.saveAndSend')}
              </Button>
            </div>
          </div>
        ) : (
          <>
            {m.images?.length > 0 && <MessageImages images={m.images} className="max-w-[85%] justify-end" />}
            {m.content && <div className="max-w-[85%] whitespace-pre-wrap break-words rounded-2xl bg-primary/10 px-4 py-2">{m.content}</div>}
          </>
        )}
        <div className="flex items-center gap-1">
          {versionSwitcher(m)}
          {!editing && !streaming && (
            <Button variant="ghost" size="sm" className="h-7 text-xs text-muted-fg" onClick={() => setEditing({ id: m.id, text: m.content })}>
              {t('chat.editMessage')}
            </Button>
          )}
          <CopyButton text={m.content} className="h-7 text-xs text-muted-fg" />
        </div>
      </div>
    ) : (
      <div key={m.id} className="space-y-1" data-testid="assistant-message" data-status={m.status}>
        {m.reasoning && (
          <details className="rounded-md border border-border px-3 py-1 text-sm text-muted-fg">
            <summary className="cursor-pointer">{t('chat.thinking')}</summary>
            <Plain text={m.reasoning} />
          </details>
        )}
        {m.images?.length > 0 && <MessageImages images={m.images} />}
        <div className={cx(m.status === 'streaming' && !m.content && 'animate-pulse text-muted-fg')}>
          {m.content ? (
            <Suspense fallback={<Plain text={m.content} />}>
              <Markdown text={m.content} />
            </Suspense>
          ) : m.status === 'streaming' ? (
            '…'
          ) : null}
        </div>
        {errorText(m, lang) && <div className="rounded-md bg-danger/10 px-3 py-2 text-sm text-danger" role="alert">{errorText(m, lang)}</div>}
        <div className="flex flex-wrap items-center gap-1 text-xs text-muted-fg">
          {versionSwitcher(m)}
          {m.status === 'stopped' && <Badge>{t('chat.stopped')}</Badge>}
          {m.status === 'failed' && <Badge tone="danger">{t('chat.failed')}</Badge>}
          {m.status !== 'streaming' && (
            <>
              <CopyButton text={m.content} className="h-7 text-xs text-muted-fg" />
              {!streaming && !isTemp(m.id) && (
                <Button variant="ghost" size="sm" className="h-7 text-xs text-muted-fg" onClick={() => regenerate(m)}>
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

  return (
    <div className="flex h-full min-h-0 flex-col">
      <div className="flex h-12 shrink-0 items-center gap-2 border-b border-border px-3">
        <button className="rounded-md p-1.5 text-muted-fg hover:bg-muted md:hidden" aria-label={t('chat.conversations')} title={t('chat.conversations')} onClick={onOpenList}>
          <svg viewBox="0 0 24 24" className="h-5 w-5" fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" strokeLinejoin="round" aria-hidden>
            <path d="M21 12a8 8 0 0 1-11.6 7.1L4 20l1-4.6A8 8 0 1 1 21 12z" />
          </svg>
        </button>
        <h2 className="min-w-0 flex-1 truncate text-sm font-medium" data-testid="conversation-title">
          {conversation.data?.title || t('chat.untitled')}
        </h2>
        <ModelPicker models={models} value={model} onChange={changeModel} />
        {localId.current && (
          <>
            <Button variant="ghost" size="icon" aria-label={t('chat.settings')} title={t('chat.settings')} onClick={() => setSettingsOpen(true)}>
              ⚙
            </Button>
            <Menu
              label={t('chat.export')}
              trigger={
                <Button variant="ghost" size="sm">
                  {t('chat.export')}
                </Button>
              }
              items={[
                { label: t('chat.exportMarkdown'), onSelect: () => exportAs('markdown') },
                { label: t('chat.exportHtml'), onSelect: () => exportAs('html') },
                { label: t('chat.exportJson'), onSelect: () => exportAs('json') },
              ]}
            />
          </>
        )}
      </div>
      {current && current.input_price != null && current.output_price != null && (
        <div className="border-b border-border px-4 py-1 text-xs text-muted-fg" data-testid="model-price">
          {current.id}: {t('chat.pricePer', { input: money(current.input_price), output: money(current.output_price) })}
        </div>
      )}
      <div
        ref={scroller}
        className="relative min-h-0 flex-1 overflow-y-auto"
        onScroll={(e) => {
          const el = e.currentTarget;
          stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
        }}
      >
        <div className="mx-auto max-w-3xl space-y-5 px-3 py-4 sm:px-4">
          <ErrorText error={loadError} />
          {messages.length === 0 && !loadError && (
            <div className="py-16 text-center">
              <h3 className="mb-1 text-lg font-semibold">{t('chat.empty')}</h3>
              <p className="text-sm text-muted-fg">{models.length ? t('chat.emptyHint') : t('chat.noModels')}</p>
            </div>
          )}
          {windowed ? (
            <div ref={list} data-testid="message-list" style={{ height: totalSize, position: 'relative' }}>
              <div style={{ position: 'absolute', top: 0, left: 0, width: '100%', transform: `translateY(${(rows[0]?.start ?? 0) - scrollMargin}px)` }}>
                {rows.map((row) => (
                  <div key={row.key} data-index={row.index} ref={virtualizer.measureElement} className="pb-5">
                    {renderMessage(messages[row.index])}
                  </div>
                ))}
              </div>
            </div>
          ) : (
            messages.map(renderMessage)
          )}
        </div>
      </div>
      <form
        className="shrink-0 border-t border-border bg-bg p-2 pb-[max(0.5rem,env(safe-area-inset-bottom))] sm:p-3"
        onSubmit={(e) => {
          e.preventDefault();
          send(draft, leafId(messages), false, images);
        }}
        onDragOver={(e) => {
          if (!e.dataTransfer.types.includes('Files')) return;
          e.preventDefault();
          setDragging(true);
        }}
        onDragLeave={(e) => {
          if (!e.currentTarget.contains(e.relatedTarget as Node | null)) setDragging(false);
        }}
        onDrop={(e) => {
          if (!e.dataTransfer.files.length) return;
          e.preventDefault();
          setDragging(false);
          addImages(Array.from(e.dataTransfer.files));
        }}
        data-dragging={dragging || undefined}
      >
        {composerError && (
          <div role="alert" className="mx-auto mb-2 max-w-3xl rounded-md border border-danger/40 bg-danger/10 px-3 py-2 text-sm text-danger" data-testid="composer-error">
            <div>{composerError.message}</div>
            {composerError.requestId && <div className="mt-0.5 text-xs opacity-80">{t('error.requestId', { id: composerError.requestId })}</div>}
          </div>
        )}
        {dragging && <div className="mx-auto mb-2 max-w-3xl rounded-md border-2 border-dashed border-primary/60 py-3 text-center text-sm text-muted-fg">{t('chat.dropImages')}</div>}
        <AttachedImages images={images} onRemove={(i) => setImages((now) => now.filter((_, j) => j !== i))} />
        <div className="mx-auto flex max-w-3xl items-end gap-1 sm:gap-2">
          <input
            ref={fileInput}
            type="file"
            accept={IMAGE_TYPES.join(',')}
            multiple
            hidden
            data-testid="image-input"
            onChange={(e) => {
              const files = Array.from(e.target.files ?? []);
              e.target.value = '';
              addImages(files);
            }}
          />
          <button
            type="button"
            className="inline-flex h-10 w-10 shrink-0 items-center justify-center rounded-md text-muted-fg hover:bg-muted disabled:opacity-50"
            aria-label={t('chat.attachImage')}
            title={t('chat.attachImage')}
            disabled={images.length >= MAX_IMAGES}
            onClick={() => fileInput.current?.click()}
            data-testid="attach-image"
          >
            <svg viewBox="0 0 24 24" className="h-5 w-5" fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" strokeLinejoin="round" aria-hidden>
              <rect x="3" y="4" width="18" height="16" rx="2" />
              <circle cx="9" cy="10" r="2" />
              <path d="m21 16-5-5-9 9" />
            </svg>
          </button>
          <VoiceButton onText={insertTranscript} onError={setComposerError} />
          <Textarea
            ref={composer}
            rows={2}
            className="max-h-48 min-h-[2.75rem] resize-none"
            placeholder={t('chat.placeholder', { model: model || '…' })}
            aria-label={t('chat.send')}
            value={draft}
            onChange={(e) => saveDraft(e.target.value)}
            onPaste={(e) => {
              const files = Array.from(e.clipboardData.files).filter((f) => f.type.startsWith('image/'));
              if (!files.length) return;
              e.preventDefault();
              addImages(files);
            }}
            onKeyDown={(e) => {
              if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
                e.preventDefault();
                send(draft, leafId(messages), false, images);
              }
            }}
          />
          {streaming ? (
            <Button variant="secondary" onClick={stop} data-testid="stop">
              {t('chat.stop')}
            </Button>
          ) : (
            <Button type="submit" disabled={(!draft.trim() && !images.length) || !model}>
              {t('chat.send')}
            </Button>
          )}
        </div>
      </form>
      {conversation.data && (
        <ConversationSettings
          open={settingsOpen}
          onOpenChange={setSettingsOpen}
          conversation={conversation.data}
          onSaved={() => queryClient.invalidateQueries({ queryKey: qk.conversation(conversation.data?.id) })}
        />
      )}
    </div>
  );
}
