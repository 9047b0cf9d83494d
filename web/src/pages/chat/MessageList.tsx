import { forwardRef, Fragment, useEffect, useImperativeHandle, useLayoutEffect, useRef, useState, type ReactNode } from 'react';
import { useVirtualizer } from '@tanstack/react-virtual';
import type { ChatMessage } from '../../lib/types';
import { ErrorText } from '../../components/ui';
import { ArrowDownIcon } from '../../components/icons';
import { useT } from '../../i18n';
import { BalanceHint } from './BalanceHint';

/** Longer branches mount only the messages near the viewport; shorter ones render whole. */
export const WINDOW_FROM = 50;

/** What the thread may ask of the list. */
export interface MessageListHandle {
  /** Follow the bottom again (after the user sends), even if they had scrolled up. */
  stickToBottom: () => void;
}

/**
 * The scrolling list of a conversation's messages. It follows the bottom while an answer streams
 * unless the user scrolls up, and windows long branches.
 */
export const MessageList = forwardRef<
  MessageListHandle,
  { messages: ChatMessage[]; error: unknown; empty: ReactNode; renderMessage: (m: ChatMessage) => ReactNode; className?: string }
>(function MessageList({ messages, error, empty, renderMessage, className }, ref) {
  const t = useT();
  const scroller = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  // Scrolled up from the latest message: a button brings it back.
  const [away, setAway] = useState(false);
  useImperativeHandle(ref, () => ({ stickToBottom: () => void (stick.current = true) }), []);

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
  }, [windowed, error]);

  // Follow the bottom (opening a conversation, a streaming answer) unless the user scrolled
  // up; in a windowed list measured rows change the height too, hence `totalSize`.
  useEffect(() => {
    const el = scroller.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [messages, totalSize]);

  const toBottom = () => {
    const el = scroller.current;
    if (!el) return;
    stick.current = true;
    el.scrollTo({ top: el.scrollHeight, behavior: 'smooth' });
    setAway(false);
  };

  return (
    <div className="relative flex min-h-0 flex-1 flex-col">
    <div
      ref={scroller}
      className="relative min-h-0 flex-1 overflow-y-auto"
      onScroll={(e) => {
        const el = e.currentTarget;
        const from = el.scrollHeight - el.scrollTop - el.clientHeight;
        stick.current = from < 80;
        setAway(from > 240);
      }}
      data-testid="message-scroller"
    >
      <div className={`mx-auto max-w-3xl space-y-5 px-3 py-4 sm:px-4 ${className ?? ''}`}>
        <ErrorText error={error} />
        <BalanceHint error={error} />
        {messages.length === 0 && !error && empty}
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
          messages.map((m) => <Fragment key={m.id}>{renderMessage(m)}</Fragment>)
        )}
      </div>
    </div>
      {away && messages.length > 0 && (
        <button
          type="button"
          onClick={toBottom}
          className="absolute bottom-3 left-1/2 flex h-10 w-10 -translate-x-1/2 items-center justify-center rounded-full border border-border bg-card text-muted-fg shadow-md hover:text-fg coarse:h-11 coarse:w-11"
          aria-label={t('chat.toLatest')}
          title={t('chat.toLatest')}
          data-testid="scroll-to-bottom"
        >
          <ArrowDownIcon />
        </button>
      )}
    </div>
  );
});
