import type { ChatMessage, MessageUsage, ToolCitation, ToolStep } from './types';

/** The stream events of the Chat API, parsed. */
export type StreamEvent =
  | { type: 'start'; user_message_id: string; assistant_message_id: string; conversation_id: string }
  | { type: 'delta'; content: string }
  | { type: 'reasoning'; content: string }
  | { type: 'usage'; usage: MessageUsage }
  | { type: 'title'; title: string }
  | { type: 'replace'; content: string; reasoning: string | null }
  | { type: 'tool_call'; id: string; name: string; arguments: string }
  | { type: 'tool_result'; id: string; name: string; content: string; is_error: boolean; citations: ToolCitation[] }
  | { type: 'tool_approval'; id: string; name: string; message_id: string; timeout_secs: number }
  | { type: 'tool_progress'; id: string; name: string; text: string }
  | { type: 'done'; message: ChatMessage }
  | { type: 'error'; code: string; message: string; message_zh?: string; request_id?: string };

/** Turns an SSE frame into a [`StreamEvent`] (null for unknown events or bad JSON). */
export function parseStreamEvent(event: string, data: string): StreamEvent | null {
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(data);
  } catch {
    return null;
  }
  switch (event) {
    case 'start':
      return { type: 'start', ...(body as Omit<Extract<StreamEvent, { type: 'start' }>, 'type'>) };
    case 'delta':
    case 'reasoning':
      return { type: event, content: String(body.content ?? '') };
    case 'usage':
      return { type: 'usage', usage: body as unknown as MessageUsage };
    case 'title':
      return { type: 'title', title: String(body.title ?? '') };
    case 'replace':
      return { type: 'replace', content: String(body.content ?? ''), reasoning: (body.reasoning as string | null | undefined) ?? null };
    case 'tool_call':
      return { type: 'tool_call', id: String(body.id ?? ''), name: String(body.name ?? ''), arguments: String(body.arguments ?? '') };
    case 'tool_result':
      return {
        type: 'tool_result',
        id: String(body.id ?? ''),
        name: String(body.name ?? ''),
        content: String(body.content ?? ''),
        is_error: body.is_error === true,
        citations: Array.isArray(body.citations) ? (body.citations as ToolCitation[]) : [],
      };
    case 'tool_approval':
      return {
        type: 'tool_approval',
        id: String(body.id ?? ''),
        name: String(body.name ?? ''),
        message_id: String(body.message_id ?? ''),
        timeout_secs: Number(body.timeout_secs ?? 0),
      };
    case 'tool_progress': {
      // A stage with a count reads "started (1/2)"; an output line is shown as printed.
      const text = String(body.text ?? body.stage ?? '');
      const count = typeof body.progress === 'number' ? ` (${body.progress}${typeof body.total === 'number' ? `/${body.total}` : ''})` : '';
      return { type: 'tool_progress', id: String(body.id ?? ''), name: String(body.name ?? ''), text: text + count };
    }
    case 'done':
      return { type: 'done', message: body.message as ChatMessage };
    case 'error':
      return {
        type: 'error',
        code: String(body.code ?? 'error'),
        message: String(body.message ?? ''),
        message_zh: body.message_zh as string | undefined,
        request_id: body.request_id as string | undefined,
      };
    default:
      return null;
  }
}

/** The ids a stream writes to; temporary until the `start` event names the real ones. */
export interface StreamIds {
  user: string | null;
  assistant: string;
}

function blank(id: string, parent: string | null, role: ChatMessage['role'], content: string): ChatMessage {
  return {
    id,
    parent_id: parent,
    role,
    content,
    reasoning: null,
    status: role === 'assistant' ? 'streaming' : 'done',
    model: null,
    error: null,
    images: [],
    sibling_ids: [id],
    sibling_index: 0,
    sibling_count: 1,
    usage: null,
    created_at: new Date().toISOString(),
  };
}

/** The path up to and including `id` (empty when `id` is null: the new message is a root). */
function pathThrough(messages: ChatMessage[], id: string | null): ChatMessage[] {
  if (id === null) return [];
  const at = messages.findIndex((m) => m.id === id);
  return at === -1 ? messages.slice() : messages.slice(0, at + 1);
}

/** Gives `fresh` the siblings of `old` (the message it is a new version of) plus itself. */
function asSiblingOf(fresh: ChatMessage, old: ChatMessage | undefined): ChatMessage {
  if (!old) return fresh;
  const ids = [...old.sibling_ids, fresh.id];
  return { ...fresh, sibling_ids: ids, sibling_index: ids.length - 1, sibling_count: ids.length };
}

/**
 * The path shown while a message is sent under `parentId` (null = the conversation's root).
 * Sending under a message that already has a child (editing) makes the new message a sibling
 * of that child, and everything after it leaves the path.
 */
export function beginSend(
  messages: ChatMessage[],
  parentId: string | null,
  content: string,
  temp: { user: string; assistant: string },
  images: string[] = [],
): ChatMessage[] {
  const path = pathThrough(messages, parentId);
  const replaced = messages[path.length];
  const user = asSiblingOf({ ...blank(temp.user, parentId, 'user', content), images }, replaced);
  return [...path, user, blank(temp.assistant, temp.user, 'assistant', '')];
}

/** The path shown while the assistant message `assistantId` gets a new sibling answer. */
export function beginRegenerate(messages: ChatMessage[], assistantId: string, tempId: string): ChatMessage[] {
  const at = messages.findIndex((m) => m.id === assistantId);
  if (at === -1) return messages;
  const old = messages[at];
  const fresh = asSiblingOf(blank(tempId, old.parent_id, 'assistant', ''), old);
  return [...messages.slice(0, at), fresh];
}

/** The path shown while the finished answer `assistantId` is written on (continued in place). */
export function beginContinue(messages: ChatMessage[], assistantId: string): ChatMessage[] {
  const at = messages.findIndex((m) => m.id === assistantId);
  if (at === -1) return messages;
  const m = messages[at];
  return [...messages.slice(0, at), { ...m, status: 'streaming', error: null, finish_reason: null }];
}

function renameId(m: ChatMessage, from: string | null, to: string): ChatMessage {
  if (from === null || from === to) return m;
  return {
    ...m,
    id: m.id === from ? to : m.id,
    parent_id: m.parent_id === from ? to : m.parent_id,
    sibling_ids: m.sibling_ids.map((s) => (s === from ? to : s)),
  };
}

/** Applies one stream event to the shown path; answers the new path and the ids in use. */
export function applyEvent(messages: ChatMessage[], ids: StreamIds, event: StreamEvent): { messages: ChatMessage[]; ids: StreamIds } {
  const update = (fn: (m: ChatMessage) => ChatMessage) =>
    messages.map((m) => (m.id === ids.assistant ? fn(m) : m));
  switch (event.type) {
    case 'start': {
      const next = { user: event.user_message_id, assistant: event.assistant_message_id };
      // Regenerate names the parent as `user_message_id`: it is not a temporary id then.
      const userTemp = ids.user && ids.user !== next.user ? ids.user : null;
      return {
        ids: next,
        messages: messages.map((m) => renameId(renameId(m, userTemp, next.user), ids.assistant, next.assistant)),
      };
    }
    case 'delta':
      return { ids, messages: update((m) => ({ ...m, content: m.content + event.content })) };
    case 'reasoning':
      return { ids, messages: update((m) => ({ ...m, reasoning: (m.reasoning ?? '') + event.content })) };
    case 'replace':
      // The server resent the whole text (this reader fell behind): it replaces what is shown.
      return { ids, messages: update((m) => ({ ...m, content: event.content, reasoning: event.reasoning })) };
    case 'usage':
      return { ids, messages: update((m) => ({ ...m, usage: event.usage })) };
    case 'tool_call': {
      const step: ToolStep = { id: event.id, name: event.name, arguments: event.arguments, result: null, is_error: false };
      return { ids, messages: update((m) => ({ ...m, tool_calls: [...(m.tool_calls ?? []), step] })) };
    }
    case 'tool_result':
      return {
        ids,
        messages: update((m) => ({
          ...m,
          tool_calls: (m.tool_calls ?? []).map((s) =>
            // Ids repeat across rounds only if a model reuses them: the open call answers.
            s.id === event.id && s.result === null
              ? { ...s, result: event.content, is_error: event.is_error, citations: event.citations, approval: null }
              : s,
          ),
        })),
      };
    case 'tool_approval':
      return {
        ids,
        messages: update((m) => ({
          ...m,
          tool_calls: (m.tool_calls ?? []).map((s) =>
            s.id === event.id && s.result === null ? { ...s, approval: { message_id: event.message_id, timeout_secs: event.timeout_secs } } : s,
          ),
        })),
      };
    case 'tool_progress':
      return {
        ids,
        messages: update((m) => ({
          ...m,
          tool_calls: (m.tool_calls ?? []).map((s) =>
            // The last 50 reports are kept: the whole output comes with the result.
            s.id === event.id && s.result === null ? { ...s, progress: [...(s.progress ?? []), event.text].slice(-50) } : s,
          ),
        })),
      };
    case 'done':
      return {
        ids,
        messages: update((m) => ({
          ...m,
          ...event.message,
          // Keep the versions we know of if the server's message omits them.
          sibling_ids: event.message.sibling_ids?.length ? event.message.sibling_ids : m.sibling_ids,
          sibling_index: event.message.sibling_ids?.length ? event.message.sibling_index : m.sibling_index,
          sibling_count: event.message.sibling_ids?.length ? event.message.sibling_count : m.sibling_count,
        })),
      };
    case 'error':
      return {
        ids,
        messages: update((m) => ({
          ...m,
          status: 'failed',
          error: { code: event.code, message: event.message, message_zh: event.message_zh, request_id: event.request_id },
        })),
      };
    default:
      return { ids, messages };
  }
}

/** The id of the version before (-1) or after (+1) `m`, or null at either end. */
export function siblingTarget(m: ChatMessage, dir: -1 | 1): string | null {
  const i = m.sibling_index + dir;
  return i >= 0 && i < m.sibling_ids.length ? m.sibling_ids[i] : null;
}

/** `2 / 3` for the second of three versions. */
export function siblingLabel(m: ChatMessage): string {
  return `${m.sibling_index + 1} / ${m.sibling_count}`;
}

/** The message a new message is sent under by default: the end of the path. */
export function leafId(messages: ChatMessage[]): string | null {
  return messages.length ? messages[messages.length - 1].id : null;
}
