import type { ReactNode } from 'react';
import { useId, useLayoutEffect, useRef, useState } from 'react';
import { useT, type MessageKey } from '../../i18n';
import { Button, Textarea } from '../../components/ui';
import { attachImages, IMAGE_TYPES, MAX_IMAGES, startImageUpload, type ImageProblem } from '../../lib/images';
import { uploadChatImage } from './useChatStream';
import { insertAtCursor } from '../../lib/voice';
import { AttachedImages, VoiceButton, type ComposerError } from './Media';
import { sendsOnKey, type ChatPreferences } from './preferences';
import { matchPrompts, slashQuery, SlashMenu, usePrompts, type Prompt } from './prompts';

const imageProblemKey: Record<ImageProblem, MessageKey> = {
  notImage: 'chat.imageNotImage',
  tooLarge: 'chat.imageTooLarge',
  tooMany: 'chat.imageTooMany',
  unreadable: 'chat.imageUnreadable',
};

/** The composer grows with its text up to this height (px), then scrolls. */
export const COMPOSER_MAX_PX = 240;

/**
 * Whether the main pointer is a finger: phones and tablets, whose on-screen keyboard has a
 * return key but no Shift+Enter. There Enter adds a line and the button sends.
 */
export function touchKeyboard(): boolean {
  return typeof window.matchMedia === 'function' && window.matchMedia('(pointer: coarse)').matches;
}

/** The composer's contents; the thread keeps them (drafts survive reloads, failed sends come back). */
export interface ComposerProps {
  draft: string;
  onDraftChange: (text: string) => void;
  images: string[];
  onImagesChange: (images: string[] | ((now: string[]) => string[])) => void;
  error: ComposerError | null;
  onError: (error: ComposerError | null) => void;
  /** The model answering (shown in the placeholder; nothing can be sent without one). */
  model: string;
  /** An answer is being written: the button stops it instead of sending. */
  streaming: boolean;
  /** Nothing can be written here (the conversation is gone). */
  disabled?: boolean;
  onSend: () => void;
  onStop: () => void;
  /** Extra controls beside the attach and voice buttons (the conversation's tool toggles). */
  tools?: ReactNode;
  /** Which key sends (the user's chat preference). */
  sendKey?: ChatPreferences['send_key'];
}

/** Where a message is written: text, pasted, dropped or picked images, and dictation. */
export function Composer({ draft, onDraftChange, images, onImagesChange, error, onError, model, streaming, disabled = false, onSend, onStop, tools, sendKey = 'enter' }: ComposerProps) {
  const t = useT();
  const [dragging, setDragging] = useState(false);
  const textarea = useRef<HTMLTextAreaElement>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const [touch] = useState(touchKeyboard);
  // `/command`: the prompt library's matches, chosen with the arrows and Enter or Tab.
  const slash = slashQuery(draft);
  const prompts = usePrompts(slash !== null);
  const [slashClosed, setSlashClosed] = useState<string | null>(null);
  const [active, setActive] = useState(0);
  const slashOpen = slash !== null && slashClosed !== draft && prompts.isSuccess;
  const matches = slashOpen ? matchPrompts(prompts.data ?? [], slash ?? '') : [];
  const listId = useId();
  const pick = (p: Prompt) => {
    onDraftChange(p.content);
    setActive(0);
    requestAnimationFrame(() => {
      const el = textarea.current;
      el?.focus();
      el?.setSelectionRange(p.content.length, p.content.length);
    });
  };

  // Grow with the text (pasted or dictated too), from its two rows up to the maximum.
  useLayoutEffect(() => {
    const el = textarea.current;
    if (!el) return;
    el.style.height = 'auto';
    if (!el.scrollHeight) return;
    const full = el.scrollHeight + el.offsetHeight - el.clientHeight;
    el.style.height = `${Math.min(full, COMPOSER_MAX_PX)}px`;
    el.style.overflowY = full > COMPOSER_MAX_PX ? 'auto' : 'hidden';
  }, [draft]);

  const addImages = async (files: File[]) => {
    if (!files.length) return;
    onError(null);
    const { images: next, problem } = await attachImages(images, files);
    // Uploading starts now, so sending waits for little or nothing.
    next.forEach((url) => void startImageUpload(url, uploadChatImage));
    onImagesChange(next);
    if (problem) onError({ message: t(imageProblemKey[problem]) });
  };

  const insertTranscript = (text: string) => {
    const el = textarea.current;
    const { value, caret } = insertAtCursor(draft, text, el?.selectionStart ?? draft.length, el?.selectionEnd ?? draft.length);
    onDraftChange(value);
    requestAnimationFrame(() => {
      el?.focus();
      el?.setSelectionRange(caret, caret);
    });
  };

  return (
    <form
      className="shrink-0 border-t border-border bg-bg p-2 pb-[max(0.5rem,env(safe-area-inset-bottom))] sm:p-3"
      onSubmit={(e) => {
        e.preventDefault();
        if (!disabled) onSend();
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
      {error && (
        <div role="alert" className="mx-auto mb-2 max-w-3xl rounded-md border border-danger/40 bg-danger/10 px-3 py-2 text-sm text-danger" data-testid="composer-error">
          <div>{error.message}</div>
          {error.requestId && <div className="mt-0.5 text-xs opacity-80">{t('error.requestId', { id: error.requestId })}</div>}
        </div>
      )}
      {dragging && <div className="mx-auto mb-2 max-w-3xl rounded-md border-2 border-dashed border-primary/60 py-3 text-center text-sm text-muted-fg">{t('chat.dropImages')}</div>}
      <AttachedImages images={images} onRemove={(i) => onImagesChange((now) => now.filter((_, j) => j !== i))} />
      <div className="relative mx-auto flex max-w-3xl items-end gap-1 sm:gap-2">
        {slashOpen && <SlashMenu id={listId} items={matches} active={Math.min(active, Math.max(0, matches.length - 1))} onPick={pick} />}
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
          disabled={disabled || images.length >= MAX_IMAGES}
          onClick={() => fileInput.current?.click()}
          data-testid="attach-image"
        >
          <svg viewBox="0 0 24 24" className="h-5 w-5" fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" strokeLinejoin="round" aria-hidden>
            <rect x="3" y="4" width="18" height="16" rx="2" />
            <circle cx="9" cy="10" r="2" />
            <path d="m21 16-5-5-9 9" />
          </svg>
        </button>
        <VoiceButton disabled={disabled} onText={insertTranscript} onError={onError} />
        {tools}
        <Textarea
          ref={textarea}
          rows={2}
          className="min-h-[2.75rem] resize-none"
          style={{ maxHeight: COMPOSER_MAX_PX }}
          placeholder={model ? t(touch ? 'chat.placeholderTouch' : sendKey === 'mod_enter' ? 'chat.placeholderModEnter' : 'chat.placeholder', { model }) : t('chat.placeholderNoModel')}
          enterKeyHint={touch ? 'enter' : 'send'}
          aria-label={t('chat.send')}
          data-shortcut="composer"
          aria-autocomplete="list"
          aria-controls={slashOpen && matches.length ? listId : undefined}
          aria-activedescendant={slashOpen && matches.length ? `${listId}-${Math.min(active, matches.length - 1)}` : undefined}
          value={draft}
          disabled={disabled}
          onChange={(e) => onDraftChange(e.target.value)}
          onPaste={(e) => {
            const files = Array.from(e.clipboardData.files).filter((f) => f.type.startsWith('image/'));
            if (!files.length) return;
            e.preventDefault();
            addImages(files);
          }}
          onKeyDown={(e) => {
            if (slashOpen && matches.length) {
              const n = matches.length;
              if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
                e.preventDefault();
                setActive((a) => (Math.min(a, n - 1) + (e.key === 'ArrowDown' ? 1 : n - 1)) % n);
                return;
              }
              if ((e.key === 'Enter' || e.key === 'Tab') && !e.shiftKey && !e.nativeEvent.isComposing) {
                e.preventDefault();
                pick(matches[Math.min(active, n - 1)]);
                return;
              }
            }
            if (slashOpen && e.key === 'Escape') {
              e.preventDefault();
              e.stopPropagation();
              setSlashClosed(draft);
              return;
            }
            if (sendsOnKey({ key: e.key, shiftKey: e.shiftKey, ctrlKey: e.ctrlKey, metaKey: e.metaKey, isComposing: e.nativeEvent.isComposing }, sendKey, touch)) {
              e.preventDefault();
              if (!disabled) onSend();
            }
          }}
        />
        {streaming ? (
          <Button variant="secondary" onClick={onStop} data-testid="stop">
            {t('chat.stop')}
          </Button>
        ) : (
          <Button type="submit" disabled={disabled || (!draft.trim() && !images.length) || !model}>
            {t('chat.send')}
          </Button>
        )}
      </div>
    </form>
  );
}
