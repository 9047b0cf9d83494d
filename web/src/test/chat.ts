// Chat messages as the server sends them, for tests: one place for the shape, so a field the
// API adds is added once.
import type { ChatMessage } from '../lib/types';

/** A finished message `id` under `parent`; an assistant's is written by `gpt-test`. */
export function chatMessage(
  id: string,
  parent: string | null,
  role: 'user' | 'assistant',
  content: string,
  { siblings = [id], status = 'done' }: { siblings?: string[]; status?: ChatMessage['status'] } = {},
): ChatMessage {
  return {
    id,
    parent_id: parent,
    role,
    content,
    reasoning: null,
    status,
    model: role === 'assistant' ? 'gpt-test' : null,
    error: null,
    images: [],
    sibling_ids: siblings,
    sibling_index: siblings.indexOf(id),
    sibling_count: siblings.length,
    usage: null,
    created_at: '2026-11-26T00:00:00Z',
  };
}
