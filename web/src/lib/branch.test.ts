import { describe, expect, it } from 'vitest';
import type { ChatMessage } from './types';
import { applyEvent, beginContinue, beginRegenerate, beginSend, leafId, parseStreamEvent, siblingLabel, siblingTarget, type StreamEvent } from './branch';

function msg(id: string, parent: string | null, role: ChatMessage['role'], content: string, siblings: string[] = [id]): ChatMessage {
  return {
    id,
    parent_id: parent,
    role,
    content,
    reasoning: null,
    status: 'done',
    model: null,
    error: null,
    images: [],
    sibling_ids: siblings,
    sibling_index: siblings.indexOf(id),
    sibling_count: siblings.length,
    usage: null,
    created_at: '2026-11-26T00:00:00Z',
  };
}

const path = [msg('u1', null, 'user', 'hi'), msg('a1', 'u1', 'assistant', 'hello'), msg('u2', 'a1', 'user', 'more'), msg('a2', 'u2', 'assistant', 'sure')];

function run(messages: ChatMessage[], ids: { user: string | null; assistant: string }, events: StreamEvent[]) {
  let state = { messages, ids };
  for (const e of events) state = applyEvent(state.messages, state.ids, e);
  return state;
}

describe('branch logic', () => {
  it('sending at the leaf appends a user message and a streaming answer', () => {
    const next = beginSend(path, 'a2', 'again', { user: 't-u', assistant: 't-a' });
    expect(next.map((m) => m.id)).toEqual(['u1', 'a1', 'u2', 'a2', 't-u', 't-a']);
    expect(next[4]).toMatchObject({ parent_id: 'a2', content: 'again', sibling_count: 1 });
    expect(next[5]).toMatchObject({ parent_id: 't-u', status: 'streaming', content: '' });
  });

  it('editing a user message makes a new sibling version and drops what followed', () => {
    const next = beginSend(path, 'a1', 'more, edited', { user: 't-u', assistant: 't-a' });
    expect(next.map((m) => m.id)).toEqual(['u1', 'a1', 't-u', 't-a']);
    expect(next[2]).toMatchObject({ sibling_ids: ['u2', 't-u'], sibling_index: 1, sibling_count: 2 });
    expect(siblingLabel(next[2])).toBe('2 / 2');
  });

  it('editing the first message sends under the root', () => {
    const next = beginSend(path, null, 'hi, edited', { user: 't-u', assistant: 't-a' });
    expect(next.map((m) => m.id)).toEqual(['t-u', 't-a']);
    expect(next[0]).toMatchObject({ parent_id: null, sibling_ids: ['u1', 't-u'] });
  });

  it('regenerating adds a sibling answer and drops what followed', () => {
    const next = beginRegenerate(path, 'a1', 't-a');
    expect(next.map((m) => m.id)).toEqual(['u1', 't-a']);
    expect(next[1]).toMatchObject({ parent_id: 'u1', sibling_ids: ['a1', 't-a'], sibling_index: 1, status: 'streaming' });
  });

  it('a stream renames temporary ids, accumulates deltas, and ends with the saved message', () => {
    const start = beginSend(path, 'a2', 'q', { user: 't-u', assistant: 't-a' });
    const done = msg('A', 'U', 'assistant', 'Hello world');
    const end = run(start, { user: 't-u', assistant: 't-a' }, [
      { type: 'start', user_message_id: 'U', assistant_message_id: 'A', conversation_id: 'c' },
      { type: 'delta', content: 'Hello' },
      { type: 'reasoning', content: 'thinking' },
      { type: 'delta', content: ' world' },
      { type: 'usage', usage: { prompt_tokens: 3, completion_tokens: 2, cost: 7 } },
      { type: 'done', message: { ...done, usage: { prompt_tokens: 3, completion_tokens: 2, cost: 7 } } },
    ]);
    expect(end.ids).toEqual({ user: 'U', assistant: 'A' });
    expect(end.messages.map((m) => m.id)).toEqual(['u1', 'a1', 'u2', 'a2', 'U', 'A']);
    expect(end.messages[4].sibling_ids).toEqual(['U']);
    expect(end.messages[5]).toMatchObject({ content: 'Hello world', status: 'done', parent_id: 'U', usage: { cost: 7 } });
  });

  it('deltas before done are visible, and the reasoning is kept apart', () => {
    const start = beginSend([], null, 'q', { user: 't-u', assistant: 't-a' });
    const mid = run(start, { user: 't-u', assistant: 't-a' }, [
      { type: 'start', user_message_id: 'U', assistant_message_id: 'A', conversation_id: 'c' },
      { type: 'reasoning', content: 'hmm' },
      { type: 'delta', content: 'Hel' },
    ]);
    expect(mid.messages[1]).toMatchObject({ id: 'A', content: 'Hel', reasoning: 'hmm', status: 'streaming' });
  });

  it('regenerate keeps the parent id when start names it', () => {
    const start = beginRegenerate(path, 'a2', 't-a');
    const end = run(start, { user: 'u2', assistant: 't-a' }, [
      { type: 'start', user_message_id: 'u2', assistant_message_id: 'A2', conversation_id: 'c' },
      { type: 'delta', content: 'x' },
    ]);
    expect(end.messages.map((m) => m.id)).toEqual(['u1', 'a1', 'u2', 'A2']);
    expect(end.messages[3]).toMatchObject({ sibling_ids: ['a2', 'A2'], content: 'x', parent_id: 'u2' });
  });

  it('continue writes on at the end of the same answer, which streams again', () => {
    const cut = path.map((m) => (m.id === 'a2' ? { ...m, content: 'Once upon ', finish_reason: 'length' } : m));
    const start = beginContinue(cut, 'a2');
    expect(start[3]).toMatchObject({ id: 'a2', status: 'streaming', finish_reason: null, content: 'Once upon ' });
    const end = run(start, { user: 'u2', assistant: 'a2' }, [
      { type: 'start', user_message_id: 'u2', assistant_message_id: 'a2', conversation_id: 'c' },
      { type: 'delta', content: 'a time' },
    ]);
    expect(end.messages.map((m) => m.id)).toEqual(['u1', 'a1', 'u2', 'a2']);
    expect(end.messages[3]).toMatchObject({ content: 'Once upon a time', sibling_ids: cut[3].sibling_ids });
  });

  it('replace swaps in the whole text so far (for a reader that fell behind)', () => {
    const start = beginSend([], null, 'q', { user: 't-u', assistant: 't-a' });
    const end = run(start, { user: 't-u', assistant: 't-a' }, [
      { type: 'start', user_message_id: 'U', assistant_message_id: 'A', conversation_id: 'c' },
      { type: 'delta', content: 'Hel' },
      { type: 'replace', content: 'Hello, wor', reasoning: 'r' },
      { type: 'delta', content: 'ld' },
    ]);
    expect(end.messages[1]).toMatchObject({ content: 'Hello, world', reasoning: 'r' });
    expect(parseStreamEvent('replace', '{"content":"x","reasoning":null}')).toEqual({ type: 'replace', content: 'x', reasoning: null });
  });

  it('an error marks the answer failed with the code and request id', () => {
    const start = beginSend([], null, 'q', { user: 't-u', assistant: 't-a' });
    const end = run(start, { user: 't-u', assistant: 't-a' }, [
      { type: 'error', code: 'insufficient_quota', message: 'Not enough quota', request_id: 'r1' },
    ]);
    expect(end.messages[1]).toMatchObject({ status: 'failed', error: { code: 'insufficient_quota', request_id: 'r1' } });
  });

  it('the version switcher moves between siblings and stops at the ends', () => {
    const m = msg('b', 'p', 'assistant', '', ['a', 'b', 'c']);
    expect(siblingLabel(m)).toBe('2 / 3');
    expect(siblingTarget(m, -1)).toBe('a');
    expect(siblingTarget(m, 1)).toBe('c');
    expect(siblingTarget({ ...m, sibling_index: 0 }, -1)).toBeNull();
    expect(siblingTarget({ ...m, sibling_index: 2 }, 1)).toBeNull();
    expect(leafId(path)).toBe('a2');
    expect(leafId([])).toBeNull();
  });

  it('parses the stream events of the Chat API and ignores unknown ones', () => {
    expect(parseStreamEvent('delta', '{"content":"x"}')).toEqual({ type: 'delta', content: 'x' });
    expect(parseStreamEvent('title', '{"title":"T"}')).toEqual({ type: 'title', title: 'T' });
    expect(parseStreamEvent('error', '{"code":"c","message":"m","message_zh":"错","request_id":"r"}')).toEqual({
      type: 'error',
      code: 'c',
      message: 'm',
      message_zh: '错',
      request_id: 'r',
    });
    expect(parseStreamEvent('mystery', '{}')).toBeNull();
    expect(parseStreamEvent('delta', 'not json')).toBeNull();
  });
});
