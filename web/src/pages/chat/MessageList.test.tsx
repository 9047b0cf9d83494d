// The scroll-to-latest button: it appears once the reader scrolls well up from the newest
// message, brings them back to it, and hides at the bottom.
import { describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen } from '@testing-library/react';
import { MessageList } from './MessageList';
import type { ChatMessage } from '../../lib/types';

const msg = (i: number): ChatMessage => ({
  id: `m${i}`,
  parent_id: i ? `m${i - 1}` : null,
  role: i % 2 ? 'assistant' : 'user',
  content: `message ${i}`,
  reasoning: null,
  status: 'done',
  model: null,
  error: null,
  images: [],
  sibling_ids: [`m${i}`],
  sibling_index: 0,
  sibling_count: 1,
  usage: null,
  created_at: '2026-12-01T00:00:00Z',
});

describe('scroll to the latest message', () => {
  it('shows after scrolling up, scrolls down when clicked, and hides at the bottom', () => {
    const messages = Array.from({ length: 6 }, (_, i) => msg(i));
    render(<MessageList messages={messages} error={null} empty={null} renderMessage={(m) => <p>{m.content}</p>} />);
    const scroller = screen.getByTestId('message-scroller');
    Object.defineProperty(scroller, 'scrollHeight', { value: 3000, configurable: true });
    Object.defineProperty(scroller, 'clientHeight', { value: 600, configurable: true });
    const scrollTo = vi.fn();
    scroller.scrollTo = scrollTo as unknown as typeof scroller.scrollTo;
    expect(screen.queryByTestId('scroll-to-bottom')).toBeNull();

    scroller.scrollTop = 500;
    fireEvent.scroll(scroller);
    const button = screen.getByRole('button', { name: 'Scroll to the latest message' });
    fireEvent.click(button);
    expect(scrollTo).toHaveBeenCalledWith({ top: 3000, behavior: 'smooth' });
    expect(screen.queryByTestId('scroll-to-bottom')).toBeNull();

    scroller.scrollTop = 2350;
    fireEvent.scroll(scroller);
    expect(screen.queryByTestId('scroll-to-bottom')).toBeNull();
  });
});
