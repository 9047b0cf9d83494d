import { lazy, Suspense, useEffect, useRef, useState, type ReactNode } from 'react';
import { api, ApiError } from '../../lib/api';
import { siblingLabel, siblingTarget } from '../../lib/branch';
import { money, num } from '../../lib/format';
import type { ChatMessage, Citation } from '../../lib/types';
import { useT } from '../../i18n';
import { Badge, Button, cx, Textarea } from '../../components/ui';
import { CheckIcon, ChevronLeftIcon, ChevronRightIcon, ContinueIcon, CopyIcon, EditIcon, RefreshIcon, SpeakerIcon, StopIcon, ThumbDownIcon, ThumbUpIcon, TrashIcon } from '../../components/icons';
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

/** The class of a message action: a 32 px icon button, 44 px on a touch screen. */
const actionClass =
  'inline-flex h-8 w-8 shrink-0 items-center justify-center rounded-md text-muted-fg hover:bg-muted hover:text-fg disabled:opacity-30 disabled:pointer-events-none coarse:h-11 coarse:w-11';

/** One icon action under a message, named for screen readers and on hover. */
function Action({ label, onClick, pressed, disabled, children, testId }: { label: string; onClick: () => void; pressed?: boolean; disabled?: boolean; children: ReactNode; testId?: string }) {
  return (
    <button type="button" className={cx(actionClass, pressed && 'text-primary')} aria-label={label} title={label} aria-pressed={pressed} disabled={disabled} onClick={onClick} data-testid={testId}>
      {children}
    </button>
  );
}

/** Copies the message's text; the icon ticks for a moment. */
function CopyAction({ text }: { text: string }) {
  const t = useT();
  const [done, setDone] = useState(false);
  return (
    <Action
      label={done ? t('common.copied') : t('common.copy')}
      onClick={async () => {
        try {
          await navigator.clipboard.writeText(text);
        } catch {
          /* clipboard blocked: the text stays selectable */
        }
        setDone(true);
        setTimeout(() => setDone(false), 1500);
      }}
    >
      {done ? <CheckIcon /> : <CopyIcon />}
    </Action>
  );
}

/** Whether the browser can read text aloud. */
const canSpeak = () => typeof window !== 'undefined' && 'speechSynthesis' in window && typeof SpeechSynthesisUtterance !== 'undefined';

/** Whether the server reads answers aloud (a speech model is set up): unknown (null) until it
 * was first asked; once it says no, this tab uses the browser's voice. */
export const serverVoice: { available: boolean | null } = { available: null };

/**
 * Reads an answer aloud — with the server's speech model when one is set up (the relay's
 * text-to-speech route, billed like any call), else with the browser's voice (Chinese text in a
 * Chinese voice); a second click stops.
 */
function ReadAloud({ text, messageId }: { text: string; messageId: string }) {
  const t = useT();
  const [speaking, setSpeaking] = useState(false);
  const player = useRef<HTMLAudioElement | null>(null);
  const stop = () => {
    player.current?.pause();
    player.current = null;
    if (canSpeak()) window.speechSynthesis.cancel();
  };
  useEffect(() => () => void (speaking && stop()), [speaking]);
  const browser = canSpeak();
  if ((!browser && serverVoice.available === false) || !text.trim()) return null;
  const withBrowser = () => {
    const u = new SpeechSynthesisUtterance(speakable(text));
    u.lang = /[\u4e00-\u9fff]/.test(text) ? 'zh-CN' : 'en-US';
    u.onend = () => setSpeaking(false);
    u.onerror = () => setSpeaking(false);
    window.speechSynthesis.speak(u);
  };
  const withServer = async (): Promise<boolean> => {
    try {
      const res = await api<Response>(`chat/messages/${messageId}/speech`, { method: 'POST', raw: true });
      const url = URL.createObjectURL(await res.blob());
      const audio = new Audio(url);
      const ended = () => {
        URL.revokeObjectURL(url);
        setSpeaking(false);
      };
      audio.onended = ended;
      audio.onerror = ended;
      player.current = audio;
      serverVoice.available = true;
      await audio.play();
      return true;
    } catch (e) {
      if (e instanceof ApiError && e.code === 'speech_not_available') serverVoice.available = false;
      return false;
    }
  };
  return (
    <Action
      label={speaking ? t('chat.stopReading') : t('chat.readAloud')}
      pressed={speaking}
      onClick={async () => {
        stop();
        if (speaking) {
          setSpeaking(false);
          return;
        }
        setSpeaking(true);
        if (serverVoice.available !== false && !isTemp(messageId) && (await withServer())) return;
        if (browser) withBrowser();
        else setSpeaking(false);
      }}
      testId="read-aloud"
    >
      {speaking ? <StopIcon /> : <SpeakerIcon />}
    </Action>
  );
}

/** What is worth hearing of Markdown: the words, without code blocks, markup or link targets. */
export function speakable(markdown: string): string {
  return markdown
    .replace(/```[\s\S]*?```/g, ' ')
    .replace(/!\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/[*_`#>|~]+/g, '')
    .replace(/\s+/g, ' ')
    .trim();
}

/** When each answer's thinking started and ended, as seen in this tab (kept across re-mounts). */
const thinking = new Map<string, { start: number; end: number | null }>();

/**
 * Seconds the model has been thinking (counting while it streams reasoning with no answer yet),
 * or thought for; null for an answer whose thinking was not watched here (loaded finished).
 */
export function useThinkingSeconds(m: ChatMessage, now: () => number = Date.now): number | null {
  const active = m.status === 'streaming' && !!m.reasoning && !m.content;
  let seen = thinking.get(m.id);
  if (active && !seen) {
    seen = { start: now(), end: null };
    thinking.set(m.id, seen);
  }
  if (seen && !active && seen.end === null) seen.end = now();
  const [, tick] = useState(0);
  useEffect(() => {
    if (!active) return;
    const timer = setInterval(() => tick((n) => n + 1), 1000);
    return () => clearInterval(timer);
  }, [active]);
  if (!seen) return null;
  return Math.max(0, Math.round(((seen.end ?? now()) - seen.start) / 1000));
}

/** The ‹ 2/3 › switcher between versions of a message (44 px targets on touch). */
function Versions({ m, disabled, onSwitch }: { m: ChatMessage; disabled: boolean; onSwitch: (id: string | null) => void }) {
  const t = useT();
  if (m.sibling_count <= 1) return null;
  return (
    <span className="inline-flex items-center text-xs text-muted-fg" data-testid="versions">
      <button type="button" className={actionClass} aria-label={t('chat.previous')} disabled={disabled || !siblingTarget(m, -1)} onClick={() => onSwitch(siblingTarget(m, -1))}>
        <ChevronLeftIcon />
      </button>
      <span className="tabular-nums">{siblingLabel(m)}</span>
      <button type="button" className={actionClass} aria-label={t('chat.nextVersion')} disabled={disabled || !siblingTarget(m, 1)} onClick={() => onSwitch(siblingTarget(m, 1))}>
        <ChevronRightIcon />
      </button>
    </span>
  );
}

/** Delete with a second, explicit click: a branch goes with everything under it. */
function DeleteAction({ onDelete, disabled }: { onDelete: () => void; disabled: boolean }) {
  const t = useT();
  const [asking, setAsking] = useState(false);
  if (!asking) {
    return (
      <Action label={t('chat.deleteBranch')} onClick={() => setAsking(true)} disabled={disabled} testId="delete-branch">
        <TrashIcon />
      </Action>
    );
  }
  return (
    <span className="inline-flex items-center gap-1 rounded-md bg-danger/10 px-2 text-xs text-danger" role="group" aria-label={t('chat.deleteBranch')}>
      {t('chat.deleteBranchAsk')}
      <Button variant="danger" size="sm" className="h-7 coarse:h-11" onClick={() => { setAsking(false); onDelete(); }} data-testid="delete-branch-confirm">
        {t('common.delete')}
      </Button>
      <Button variant="ghost" size="sm" className="h-7 coarse:h-11" onClick={() => setAsking(false)}>
        {t('common.cancel')}
      </Button>
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
  /** Deletes this message and what is under it (absent: not offered). */
  onDelete?: () => void;
  /** A thumbs up or down on an answer (absent: not offered). */
  onRate?: (rating: 'up' | 'down') => void;
  /** Writes more of this answer (absent: not the end of its branch, so not offered). */
  onContinue?: () => void;
}

/** One message with its actions (versions, edit, copy, regenerate, read aloud, feedback, delete). */
export function MessageItem(props: MessageItemProps) {
  const { message: m, streaming } = props;
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
        <div className="flex flex-wrap items-center justify-end gap-0.5" data-testid="message-actions">
          <Versions m={m} disabled={streaming} onSwitch={props.onSwitch} />
          {props.canEdit && (
            <Action label={t('chat.editMessage')} onClick={props.onEditStart}>
              <EditIcon />
            </Action>
          )}
          <CopyAction text={m.content} />
          {props.onDelete && !isTemp(m.id) && <DeleteAction onDelete={props.onDelete} disabled={streaming} />}
        </div>
      </div>
    );
  }
  return <Answer {...props} />;
}

/** An answer: its reasoning (with the thinking time), tools, text, sources and actions. */
function Answer(props: MessageItemProps) {
  const { message: m, lang, streaming } = props;
  const t = useT();
  const seconds = useThinkingSeconds(m);
  const error = errorText(m, lang);
  const thinkingNow = m.status === 'streaming' && !m.content;
  return (
    <div className="space-y-1" data-testid="assistant-message" data-status={m.status}>
      {m.reasoning && (
        // Open while the model is still thinking (nothing else to read yet), so the reasoning
        // is seen as it streams; closed once the answer itself starts, unless opened again.
        <details className="rounded-md border border-border px-3 py-1 text-sm text-muted-fg" open={(m.status === 'streaming' && !m.content) || undefined} data-testid="reasoning">
          <summary className="cursor-pointer" data-testid="thinking-time">
            {seconds === null ? t('chat.thinking') : thinkingNow ? t('chat.thinkingFor', { n: seconds }) : t('chat.thoughtFor', { n: seconds })}
          </summary>
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
      <div className="flex flex-wrap items-center gap-0.5 text-xs text-muted-fg" data-testid="message-actions">
        <Versions m={m} disabled={streaming} onSwitch={props.onSwitch} />
        {m.status === 'stopped' && <Badge>{t('chat.stopped')}</Badge>}
        {m.status === 'done' && m.finish_reason === 'length' && <Badge>{t('chat.cutAtLimit')}</Badge>}
        {m.status === 'failed' && <Badge tone="danger">{t('chat.failed')}</Badge>}
        {m.status !== 'streaming' && (
          <>
            <CopyAction text={m.content} />
            {!streaming && !isTemp(m.id) && (
              <Action label={t('chat.regenerate')} onClick={props.onRegenerate}>
                <RefreshIcon />
              </Action>
            )}
            {props.onContinue && !streaming && !isTemp(m.id) && m.content && (m.finish_reason === 'length' || m.status === 'stopped') && (
              <Action label={t('chat.continue')} onClick={props.onContinue} testId="continue-answer">
                <ContinueIcon />
              </Action>
            )}
            <ReadAloud text={m.content} messageId={m.id} />
            {props.onRate && !isTemp(m.id) && m.status !== 'failed' && (
              <>
                <Action label={t('chat.goodAnswer')} pressed={m.feedback === 'up'} onClick={() => props.onRate?.('up')} testId="feedback-up">
                  <ThumbUpIcon fill={m.feedback === 'up' ? 'currentColor' : 'none'} />
                </Action>
                <Action label={t('chat.badAnswer')} pressed={m.feedback === 'down'} onClick={() => props.onRate?.('down')} testId="feedback-down">
                  <ThumbDownIcon fill={m.feedback === 'down' ? 'currentColor' : 'none'} />
                </Action>
              </>
            )}
            {props.onDelete && !isTemp(m.id) && <DeleteAction onDelete={props.onDelete} disabled={streaming} />}
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
