import { useCallback, useEffect, useRef, useState } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { api, ApiError } from '../../lib/api';
import { imagesToSend } from '../../lib/images';
import { openStream } from '../../lib/chat';
import { applyEvent, beginContinue, beginRegenerate, beginSend, type StreamEvent, type StreamIds } from '../../lib/branch';
import { qk } from '../../lib/queryKeys';
import type { ChatMessage, Conversation, History } from '../../lib/types';
import { useT } from '../../i18n';

let tempCounter = 0;

/** Uploads an attached image as a chat file. */
export const uploadChatImage = (form: FormData) => api<{ id: string }>('files', { body: form });
/** Whether an id is one the page made up before the server named the message. */
export const isTemp = (id: string | null) => !id || id.startsWith('tmp-');

/** What [`useChatStream`] tells its page. */
export interface ChatStreamEvents {
  /** A new conversation was created for the first message (the page navigates to it). */
  onCreated?: (id: string) => void;
  /** The page now shows another conversation (or a new chat): reset what belongs to the old one. */
  onSwitched?: (id: string | null) => void;
  /** A message is about to be sent to this conversation (`created`: just made for it): clear the composer. */
  onSending?: (id: string, created: boolean) => void;
  /** A send failed before its answer started: the text and images go back into the composer. */
  onSendFailed?: (content: string, images: string[]) => void;
}

/** One message to send. `parentId` is the message it answers (the leaf, or an edited one's parent). */
export interface Outgoing {
  content: string;
  parentId: string | null;
  /** Send `parent_id` even when it is null (an edit of the first message). */
  explicitParent: boolean;
  images?: string[];
  model: string;
}

/**
 * One conversation's messages and its streaming answers: loading (and re-attaching to an answer
 * still being written), sending, regenerating, stopping and switching versions. The server's
 * tree is the truth; the optimistic messages shown meanwhile have `tmp-` ids.
 */
export function useChatStream(conversationId: string | null, events: ChatStreamEvents = {}) {
  const t = useT();
  const queryClient = useQueryClient();
  const [messages, setMessages] = useState<ChatMessage[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [streaming, setStreaming] = useState(false);
  const localId = useRef<string | null>(conversationId);
  const ids = useRef<StreamIds>({ user: null, assistant: '' });
  const abort = useRef<AbortController | null>(null);
  const stopWanted = useRef(false);
  const on = useRef(events);
  on.current = events;

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
              if (draftBack !== null) on.current.onSendFailed?.(draftBack, imagesBack);
              setError(err);
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

  // Load (or reset for a new chat) when the route's conversation changes. A conversation this
  // hook just created is already shown, so navigating to it changes nothing.
  useEffect(() => {
    if (conversationId === localId.current && (conversationId === null || messages.length > 0 || streaming)) return;
    localId.current = conversationId;
    abort.current?.abort();
    setMessages([]);
    setError(null);
    on.current.onSwitched?.(conversationId);
    if (!conversationId) return;
    reload(conversationId)
      .then((history) => {
        const last = history.messages[history.messages.length - 1];
        if (last && last.role === 'assistant' && last.status === 'streaming') {
          // Re-attach: the first delta carries everything produced so far, and the tool
          // steps so far follow it.
          setMessages(history.messages.map((m) => (m.id === last.id ? { ...m, content: '', tool_calls: [] } : m)));
          run(`chat/messages/${last.id}/stream`, 'GET', undefined, { user: last.parent_id, assistant: last.id }, null, null);
        }
      })
      .catch(setError);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [conversationId]);

  /** Sends a message (creating the conversation first for a new chat); resolves when its answer ends. */
  const send = async ({ content, parentId, explicitParent, images = [], model }: Outgoing) => {
    if ((!content.trim() && !images.length) || streaming) return;
    let id = localId.current;
    const created = !id;
    if (!id) {
      try {
        id = (await api<Conversation>('chat/conversations', { body: { model: model || undefined } })).id;
      } catch (e) {
        setError(e);
        return;
      }
      localId.current = id;
      queryClient.invalidateQueries({ queryKey: qk.conversations.all });
      on.current.onCreated?.(id);
    }
    on.current.onSending?.(id, created);
    const n = ++tempCounter;
    const temp = { user: `tmp-u-${n}`, assistant: `tmp-a-${n}` };
    setError(null);
    const before = messages;
    setMessages(beginSend(messages, parentId, content, temp, images));
    const body: Record<string, unknown> = { content, model: model || undefined };
    if (images.length) body.images = await imagesToSend(images, uploadChatImage);
    if (explicitParent || parentId) body.parent_id = parentId;
    await run(`chat/conversations/${id}/messages`, 'POST', body, temp, before, content, images);
  };

  /** Asks for another version of an answer. */
  const regenerate = async (m: ChatMessage) => {
    if (streaming) return;
    const temp = `tmp-a-${++tempCounter}`;
    setError(null);
    const before = messages;
    setMessages(beginRegenerate(messages, m.id, temp));
    await run(`chat/messages/${m.id}/regenerate`, 'POST', undefined, { user: m.parent_id, assistant: temp }, before, null);
  };

  /** Writes more of a finished answer (one cut at its length limit) onto the same message. */
  const continueAnswer = async (m: ChatMessage) => {
    if (streaming || isTemp(m.id)) return;
    setError(null);
    const before = messages;
    setMessages(beginContinue(messages, m.id));
    await run(`chat/messages/${m.id}/continue`, 'POST', undefined, { user: m.parent_id, assistant: m.id }, before, null);
  };

  /** Stops the answer being written (once the server has named it, or as soon as it does). */
  const stop = () => {
    const id = ids.current.assistant;
    if (isTemp(id)) stopWanted.current = true;
    else api(`chat/messages/${id}/stop`, { method: 'POST' }).catch(() => abort.current?.abort());
    // If the server does not end the stream soon, stop listening.
    const controller = abort.current;
    setTimeout(() => controller?.abort(), 10_000);
  };

  /** Shows another version (the path through `messageId`). */
  const switchTo = async (messageId: string | null) => {
    const id = localId.current;
    if (!messageId || !id || streaming) return;
    try {
      const history = await api<History>(`chat/conversations/${id}/switch`, { body: { message_id: messageId } });
      setMessages(history.messages);
    } catch (e) {
      setError(e);
    }
  };

  /** Deletes a message and everything under it; the version beside it takes the screen. */
  const removeBranch = async (m: ChatMessage) => {
    if (streaming || isTemp(m.id)) return;
    try {
      const history = await api<History>(`chat/messages/${m.id}`, { method: 'DELETE' });
      setMessages(history.messages);
      queryClient.invalidateQueries({ queryKey: qk.conversations.all });
    } catch (e) {
      setError(e);
    }
  };

  /** A thumbs up or down on an answer (the same one again takes it back); shown at once. */
  const rate = async (m: ChatMessage, rating: 'up' | 'down') => {
    if (isTemp(m.id)) return;
    const next = m.feedback === rating ? undefined : rating;
    const apply = (value: 'up' | 'down' | undefined) => setMessages((list) => list.map((x) => (x.id === m.id ? { ...x, feedback: value } : x)));
    apply(next);
    try {
      await api(`chat/messages/${m.id}/feedback`, { method: 'PUT', body: { rating: next ?? null } });
    } catch (e) {
      apply(m.feedback);
      setError(e);
    }
  };

  return {
    messages,
    streaming,
    error,
    setError,
    /** The conversation shown: the route's, or the one just created for a first message. */
    activeId: () => localId.current,
    send,
    regenerate,
    continueAnswer,
    stop,
    switchTo,
    removeBranch,
    rate,
  };
}
