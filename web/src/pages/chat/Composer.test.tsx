// The composer on its own: when it sends, when it stops, and what it refuses.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen } from '@testing-library/react';
import { useState } from 'react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { Composer, COMPOSER_MAX_PX, type ComposerProps } from './Composer';

/** A composer whose draft lives in state, as in the thread. */
function Harness(props: Partial<ComposerProps>) {
  const [client] = useState(() => new QueryClient({ defaultOptions: { queries: { retry: false } } }));
  return (
    <QueryClientProvider client={client}>
      <Inner {...props} />
    </QueryClientProvider>
  );
}

function Inner(props: Partial<ComposerProps>) {
  const [draft, setDraft] = useState(props.draft ?? '');
  const [images, setImages] = useState<string[]>(props.images ?? []);
  return (
    <Composer
      model="gpt-test"
      streaming={false}
      error={null}
      onError={() => undefined}
      onSend={() => undefined}
      onStop={() => undefined}
      {...props}
      draft={draft}
      onDraftChange={(text) => {
        setDraft(text);
        props.onDraftChange?.(text);
      }}
      images={images}
      onImagesChange={setImages}
    />
  );
}

const box = () => screen.getByRole('textbox', { name: 'Send' });

afterEach(() => {
  vi.unstubAllGlobals();
  delete (HTMLTextAreaElement.prototype as { scrollHeight?: number }).scrollHeight;
});

/** jsdom lays nothing out: a textarea's content is 20 px per line here. */
function lineHeights() {
  Object.defineProperty(HTMLTextAreaElement.prototype, 'scrollHeight', {
    configurable: true,
    get(this: HTMLTextAreaElement) {
      return this.value.split('\n').length * 20;
    },
  });
}

/** A phone: the main pointer is a finger. */
function touchScreen() {
  vi.stubGlobal('matchMedia', (query: string) => ({ matches: query.includes('coarse'), media: query, addEventListener: () => undefined, removeEventListener: () => undefined }));
}

describe('composer', () => {
  it('Enter sends; Shift+Enter and Enter while an input method is composing do not', () => {
    const onSend = vi.fn();
    render(<Harness draft="Hello" onSend={onSend} />);
    fireEvent.keyDown(box(), { key: 'Enter', shiftKey: true });
    fireEvent.keyDown(box(), { key: 'Enter', isComposing: true });
    expect(onSend).not.toHaveBeenCalled();
    fireEvent.keyDown(box(), { key: 'Enter' });
    expect(onSend).toHaveBeenCalledTimes(1);
    fireEvent.click(screen.getByRole('button', { name: 'Send' }));
    expect(onSend).toHaveBeenCalledTimes(2);
  });

  it('keeps typing in the draft and shows the model in the placeholder', () => {
    const onDraftChange = vi.fn();
    render(<Harness onDraftChange={onDraftChange} />);
    expect(box().getAttribute('placeholder')).toContain('gpt-test');
    fireEvent.change(box(), { target: { value: 'Hi' } });
    expect(onDraftChange).toHaveBeenCalledWith('Hi');
    expect((box() as HTMLTextAreaElement).value).toBe('Hi');
  });

  it('cannot send an empty message or without a model', () => {
    const { unmount } = render(<Harness draft="   " />);
    expect(screen.getByRole('button', { name: 'Send' })).toHaveProperty('disabled', true);
    unmount();
    render(<Harness draft="Hi" model="" />);
    expect(screen.getByRole('button', { name: 'Send' })).toHaveProperty('disabled', true);
    // Without a model the placeholder says so, rather than "Message ……".
    expect(box().getAttribute('placeholder')).toBe('No model to answer yet.');
  });

  it('while an answer streams, the button stops it', () => {
    const onStop = vi.fn();
    render(<Harness draft="" streaming onStop={onStop} />);
    fireEvent.click(screen.getByTestId('stop'));
    expect(onStop).toHaveBeenCalledTimes(1);
  });

  it('shows an error with its request id', () => {
    render(<Harness error={{ message: 'Microphone unavailable', requestId: 'req-1' }} />);
    expect(screen.getByTestId('composer-error').textContent).toContain('Microphone unavailable');
    expect(screen.getByTestId('composer-error').textContent).toContain('req-1');
  });

  it('grows with its text up to a maximum, then scrolls', () => {
    lineHeights();
    render(<Harness />);
    const el = box() as HTMLTextAreaElement;
    fireEvent.change(el, { target: { value: 'one\ntwo\nthree' } });
    expect(el.style.height).toBe('60px');
    expect(el.style.overflowY).toBe('hidden');
    fireEvent.change(el, { target: { value: Array.from({ length: 30 }, (_, i) => `line ${i}`).join('\n') } });
    expect(el.style.height).toBe(`${COMPOSER_MAX_PX}px`);
    expect(el.style.overflowY).toBe('auto');
    fireEvent.change(el, { target: { value: 'short' } });
    expect(el.style.height).toBe('20px');
  });

  it('on a phone, Enter adds a line and only the button sends; the placeholder is short', () => {
    touchScreen();
    const onSend = vi.fn();
    render(<Harness draft="Hello" onSend={onSend} />);
    // Not prevented: the keyboard's return key inserts the newline.
    expect(fireEvent.keyDown(box(), { key: 'Enter' })).toBe(true);
    expect(onSend).not.toHaveBeenCalled();
    expect(box().getAttribute('placeholder')).toBe('Message gpt-test…');
    expect(box().getAttribute('enterkeyhint')).toBe('enter');
    fireEvent.click(screen.getByRole('button', { name: 'Send' }));
    expect(onSend).toHaveBeenCalledTimes(1);
  });

  it('on a desktop, Enter is prevented (no stray newline) and the hint says send', () => {
    const onSend = vi.fn();
    render(<Harness draft="Hello" onSend={onSend} />);
    expect(fireEvent.keyDown(box(), { key: 'Enter' })).toBe(false);
    expect(box().getAttribute('enterkeyhint')).toBe('send');
    expect(box().getAttribute('placeholder')).toContain('Shift+Enter');
  });
});

describe('slash commands', () => {
  const prompts = [
    { id: 'p1', command: 'translate', title: 'Translate', content: 'Translate into English:', shared: false, mine: true, updated_at: '' },
    { id: 'p2', command: '周报', title: 'Weekly report', content: '整理成周报：', shared: true, mine: false, updated_at: '' },
    { id: 'p3', command: 'tldr', title: 'Summarise', content: 'Summarise in three bullets:', shared: false, mine: true, updated_at: '' },
  ];

  it('typing / lists the library; arrows and Enter insert a prompt instead of sending', async () => {
    vi.stubGlobal('fetch', async () => new Response(JSON.stringify(prompts)));
    const onSend = vi.fn();
    render(<Harness onSend={onSend} />);
    fireEvent.change(box(), { target: { value: '/t' } });
    const list = await screen.findByRole('listbox', { name: 'Prompt library' });
    const options = () => [...list.querySelectorAll('[role="option"]')].map((o) => o.textContent ?? '');
    // Commands that start with it first, then a title that contains it.
    expect(options().map((o) => o.split(' ')[0])).toEqual(['/translate', '/tldr', '/周报']);
    expect(box().getAttribute('aria-activedescendant')).toBe(list.querySelector('[aria-selected="true"]')?.id);
    fireEvent.keyDown(box(), { key: 'ArrowDown' });
    fireEvent.keyDown(box(), { key: 'Enter' });
    expect((box() as HTMLTextAreaElement).value).toBe('Summarise in three bullets:');
    expect(onSend).not.toHaveBeenCalled();
    expect(screen.queryByTestId('slash-menu')).toBeNull();
  });

  it('finds a prompt by title too, and Esc closes the list so Enter sends the text as typed', async () => {
    vi.stubGlobal('fetch', async () => new Response(JSON.stringify(prompts)));
    const onSend = vi.fn();
    render(<Harness onSend={onSend} />);
    fireEvent.change(box(), { target: { value: '/weekly' } });
    const list = await screen.findByRole('listbox');
    expect(list.textContent).toContain('/周报');
    fireEvent.keyDown(box(), { key: 'Escape' });
    expect(screen.queryByTestId('slash-menu')).toBeNull();
    fireEvent.keyDown(box(), { key: 'Enter' });
    expect(onSend).toHaveBeenCalledTimes(1);
  });
});
