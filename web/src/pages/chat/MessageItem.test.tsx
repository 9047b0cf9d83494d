// One message on its own: the reasoning is visible while the model thinks.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { act, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { MemoryRouter } from 'react-router-dom';
import { MessageItem, serverVoice, speakable, type MessageItemProps } from './MessageItem';
import { setLang } from '../../lib/settings';
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

describe('message actions', () => {
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllGlobals();
    setLang('en');
  });
  const done = (over: Partial<ChatMessage> = {}) => answer({ id: 'a9', content: 'Paris is the capital.', reasoning: null, status: 'done', ...over });

  it('an answer offers copy, regenerate, thumbs and delete as named icon buttons, 44 px on touch', () => {
    render(<MessageItem {...props(done())} onRate={noop} onDelete={noop} />);
    for (const name of ['Copy', 'Regenerate', 'Good answer', 'Bad answer', 'Delete this version']) {
      const button = screen.getByRole('button', { name });
      expect(button.querySelector('svg'), name).not.toBeNull();
      expect(button.className.split(/\s+/)).toEqual(expect.arrayContaining(['h-8', 'w-8', 'coarse:h-11', 'coarse:w-11']));
    }
  });

  it('an answer cut at its length limit says so and offers to continue; a whole one does not', () => {
    const onContinue = vi.fn();
    const { unmount } = render(<MessageItem {...props(done({ finish_reason: 'length' }))} onContinue={onContinue} />);
    expect(screen.getByText('Cut at the length limit')).toBeTruthy();
    fireEvent.click(screen.getByRole('button', { name: 'Continue writing' }));
    expect(onContinue).toHaveBeenCalledTimes(1);
    unmount();
    const again = render(<MessageItem {...props(done({ finish_reason: 'stop' }))} onContinue={onContinue} />);
    expect(screen.queryByRole('button', { name: 'Continue writing' })).toBeNull();
    again.unmount();
    // Not the end of its branch: the thread passes no onContinue.
    render(<MessageItem {...props(done({ finish_reason: 'length' }))} />);
    expect(screen.queryByRole('button', { name: 'Continue writing' })).toBeNull();
  });

  it('thumbs show the verdict given and report a new one', () => {
    const onRate = vi.fn();
    render(<MessageItem {...props(done({ feedback: 'up' }))} onRate={onRate} />);
    expect(screen.getByRole('button', { name: 'Good answer' }).getAttribute('aria-pressed')).toBe('true');
    expect(screen.getByRole('button', { name: 'Bad answer' }).getAttribute('aria-pressed')).toBe('false');
    fireEvent.click(screen.getByRole('button', { name: 'Bad answer' }));
    expect(onRate).toHaveBeenCalledWith('down');
  });

  it('a failed answer takes no thumbs; a question offers edit, copy and delete', () => {
    const { unmount } = render(<MessageItem {...props(done({ status: 'failed', error: 'boom' }))} onRate={noop} />);
    expect(screen.queryByRole('button', { name: 'Good answer' })).toBeNull();
    unmount();
    render(<MessageItem {...props({ ...done(), id: 'u9', role: 'user', content: 'What is the capital?' })} canEdit onDelete={noop} />);
    for (const name of ['Edit', 'Copy', 'Delete this version']) expect(screen.getByRole('button', { name })).toBeTruthy();
  });

  it('delete asks once more, and only the explicit Delete deletes', () => {
    const onDelete = vi.fn();
    render(<MessageItem {...props(done())} onDelete={onDelete} />);
    fireEvent.click(screen.getByRole('button', { name: 'Delete this version' }));
    expect(onDelete).not.toHaveBeenCalled();
    fireEvent.click(screen.getByRole('button', { name: 'Cancel' }));
    fireEvent.click(screen.getByRole('button', { name: 'Delete this version' }));
    fireEvent.click(screen.getByTestId('delete-branch-confirm'));
    expect(onDelete).toHaveBeenCalledTimes(1);
  });

  it('reads an answer aloud with the server\'s speech model when there is one, and stops on a second click', async () => {
    serverVoice.available = null;
    const played = vi.fn(async () => undefined);
    const paused = vi.fn();
    vi.stubGlobal('Audio', class {
      onended: (() => void) | null = null;
      onerror: (() => void) | null = null;
      constructor(public src: string) {}
      play = played;
      pause = paused;
    });
    vi.stubGlobal('URL', Object.assign(URL, { createObjectURL: () => 'blob:spoken', revokeObjectURL: () => undefined }));
    const asked: string[] = [];
    vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
      asked.push(`${init.method} ${url}`);
      return new Response(new Blob(['ID3audio'], { type: 'audio/mpeg' }), { status: 200, headers: { 'content-type': 'audio/mpeg' } });
    });
    render(<MessageItem {...props(done({ id: 'a-spoken' }))} />);
    fireEvent.click(screen.getByRole('button', { name: 'Read aloud' }));
    await waitFor(() => expect(played).toHaveBeenCalledTimes(1));
    expect(asked).toEqual(['POST /api/v1/chat/messages/a-spoken/speech']);
    expect(serverVoice.available).toBe(true);
    fireEvent.click(screen.getByRole('button', { name: 'Stop reading' }));
    expect(paused).toHaveBeenCalled();
  });

  it('reads an answer aloud in its language, without code or markup, when the server has no speech model', async () => {
    serverVoice.available = null;
    vi.stubGlobal('fetch', async () =>
      new Response(JSON.stringify({ error: { code: 'speech_not_available', message: 'tts-1 has no channel or price.' } }), { status: 422, headers: { 'content-type': 'application/json' } }),
    );
    const spoken: Array<{ text: string; lang: string }> = [];
    const cancel = vi.fn();
    vi.stubGlobal('SpeechSynthesisUtterance', class {
      lang = '';
      onend: (() => void) | null = null;
      onerror: (() => void) | null = null;
      constructor(public text: string) {}
    });
    vi.stubGlobal('speechSynthesis', { speak: (u: { text: string; lang: string }) => spoken.push({ text: u.text, lang: u.lang }), cancel });
    render(<MessageItem {...props(done({ content: '**巴黎**是首都。\n\n```js\nx()\n```' }))} />);
    fireEvent.click(screen.getByRole('button', { name: 'Read aloud' }));
    await waitFor(() => expect(spoken).toEqual([{ text: '巴黎是首都。', lang: 'zh-CN' }]));
    expect(serverVoice.available).toBe(false);
    fireEvent.click(screen.getByRole('button', { name: 'Stop reading' }));
    expect(cancel).toHaveBeenCalled();
    expect(speakable('See [the docs](https://x.y) and `code`.')).toBe('See the docs and code.');
  });

  it('counts the seconds the model thinks, then says how long it thought', () => {
    vi.useFakeTimers();
    const thinking = answer({ id: 'think-1', content: '', reasoning: 'Hmm', status: 'streaming' });
    const { rerender } = render(<MessageItem {...props(thinking)} />);
    expect(screen.getByTestId('thinking-time').textContent).toBe('Thinking for 0 s');
    act(() => void vi.advanceTimersByTime(3000));
    expect(screen.getByTestId('thinking-time').textContent).toBe('Thinking for 3 s');
    rerender(<MessageItem {...props({ ...thinking, content: 'Answer', status: 'done' })} />);
    act(() => void vi.advanceTimersByTime(5000));
    expect(screen.getByTestId('thinking-time').textContent).toBe('Thought for 3 s');
    // Loaded already finished: no time is made up.
    rerender(<MessageItem {...props(answer({ id: 'old-1', content: 'Done', reasoning: 'x', status: 'done' }))} />);
    expect(screen.getByTestId('thinking-time').textContent).toBe('Reasoning');
  });

  it('reads in Chinese', () => {
    setLang('zh-CN');
    render(<MessageItem {...props(done())} onRate={noop} onDelete={noop} />);
    for (const name of ['复制', '重新生成', '好回答', '差回答', '删除此版本']) expect(screen.getByRole('button', { name })).toBeTruthy();
  });
});
