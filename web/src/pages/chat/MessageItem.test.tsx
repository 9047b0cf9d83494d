// One message on its own: the reasoning is visible while the model thinks.
import { describe, expect, it } from 'vitest';
import { render, screen } from '@testing-library/react';
import { MemoryRouter } from 'react-router-dom';
import { MessageItem, type MessageItemProps } from './MessageItem';
import type { ChatMessage } from '../../lib/types';

const answer = (over: Partial<ChatMessage>): ChatMessage => ({
  id: 'a1',
  parent_id: 'u1',
  role: 'assistant',
  content: '',
  reasoning: 'Let me think about primes',
  status: 'streaming',
  model: 'gpt-test',
  error: null,
  images: [],
  sibling_ids: ['a1'],
  sibling_index: 0,
  sibling_count: 1,
  usage: null,
  created_at: '2026-12-01T00:00:00Z',
  ...over,
});

const noop = () => undefined;
const props = (message: ChatMessage): MessageItemProps => ({
  message,
  lang: 'en',
  streaming: message.status === 'streaming',
  editText: null,
  canEdit: false,
  onEditStart: noop,
  onEditChange: noop,
  onEditCancel: noop,
  onEditSubmit: noop,
  onRegenerate: noop,
  onSwitch: noop,
});

describe('message item', () => {
  it('shows the reasoning open while the model is still thinking, and folds it once the answer is there', () => {
    const { rerender } = render(<MessageItem {...props(answer({}))} />);
    expect((screen.getByTestId('reasoning') as HTMLDetailsElement).open).toBe(true);
    rerender(<MessageItem {...props(answer({ content: 'Two is prime.' }))} />);
    expect((screen.getByTestId('reasoning') as HTMLDetailsElement).open).toBe(false);
    rerender(<MessageItem {...props(answer({ content: 'Two is prime.', status: 'done' }))} />);
    expect((screen.getByTestId('reasoning') as HTMLDetailsElement).open).toBe(false);
  });

  it('a finished answer opens with its reasoning folded', () => {
    render(<MessageItem {...props(answer({ content: 'Done', status: 'done' }))} />);
    expect((screen.getByTestId('reasoning') as HTMLDetailsElement).open).toBe(false);
  });
});

describe('balance errors', () => {
  it('a failed answer whose balance ran out links to where to top up', () => {
    render(
      <MemoryRouter>
        <MessageItem {...props(answer({ status: 'failed', reasoning: null, error: { code: 'insufficient_quota', message: 'Only 3 units are left on your balance.' } }))} />
      </MemoryRouter>,
    );
    expect(screen.getByTestId('balance-hint').getAttribute('href')).toBe('/usage');
  });

  it('other failures do not', () => {
    render(
      <MemoryRouter>
        <MessageItem {...props(answer({ status: 'failed', reasoning: null, error: { code: 'upstream_unavailable', message: 'Unavailable.' } }))} />
      </MemoryRouter>,
    );
    expect(screen.queryByTestId('balance-hint')).toBeNull();
  });
});

describe('citations', () => {
  it('lists the passages an answer cites, numbered, with their pages', () => {
    const sources = [
      { source: 'knowledge', label: '1', title: 'handbook.pdf', excerpt: 'Annual leave is fifteen days.', reference: { file_id: 'f1', pages: [3, 3] as [number, number] } },
      { source: 'knowledge', label: '2', title: 'notes.txt', excerpt: '退款五个工作日内到账。', reference: { file_id: 'f2', pages: null } },
    ];
    render(<MessageItem {...props(answer({ content: 'Fifteen days [1].', reasoning: null, status: 'done', sources }))} />);
    const items = screen.getAllByTestId('source');
    expect(items.map((i) => i.textContent)).toEqual([
      '[1] handbook.pdf · page 3Annual leave is fifteen days.',
      '[2] notes.txt退款五个工作日内到账。',
    ]);
  });

  it('shows nothing while the answer streams or when nothing was cited', () => {
    render(<MessageItem {...props(answer({ content: 'Hi', reasoning: null, status: 'done' }))} />);
    expect(screen.queryByTestId('sources')).toBeNull();
  });
});
