// Chat preferences: which key sends, and the Settings card that stores the default model,
// send key and text size on the server.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { ChatPreferencesCard, fontClass, sendsOnKey } from './preferences';
import { setLang } from '../../lib/settings';

afterEach(() => {
  vi.unstubAllGlobals();
  setLang('en');
});

const enter = (mods: Partial<{ shiftKey: boolean; ctrlKey: boolean; metaKey: boolean; isComposing: boolean }> = {}) => ({ key: 'Enter', shiftKey: false, ctrlKey: false, metaKey: false, ...mods });

describe('send key', () => {
  it('Enter sends by default, Shift+Enter and a touch keyboard add a line', () => {
    expect(sendsOnKey(enter(), 'enter', false)).toBe(true);
    expect(sendsOnKey(enter({ shiftKey: true }), 'enter', false)).toBe(false);
    expect(sendsOnKey(enter(), 'enter', true)).toBe(false);
    expect(sendsOnKey(enter({ isComposing: true }), 'enter', false)).toBe(false);
  });

  it('with Ctrl/⌘+Enter chosen, only that sends', () => {
    expect(sendsOnKey(enter(), 'mod_enter', false)).toBe(false);
    expect(sendsOnKey(enter({ ctrlKey: true }), 'mod_enter', false)).toBe(true);
    expect(sendsOnKey(enter({ metaKey: true }), 'mod_enter', true)).toBe(true);
    expect(fontClass('large')).toBe('text-lg');
  });
});

describe('chat preferences card', () => {
  it('shows the stored choices and saves a change to the server', async () => {
    const puts: unknown[] = [];
    let stored = { default_model: null as string | null, send_key: 'enter', font_size: 'medium' };
    vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
      if (url === '/api/v1/chat/models') return new Response(JSON.stringify([{ id: 'gpt-4o', context_window: 1, input_price: 1, output_price: 1 }]));
      if (init.method === 'PUT') {
        const body = JSON.parse(String(init.body));
        puts.push(body);
        stored = { ...stored, ...body };
      }
      return new Response(JSON.stringify(stored));
    });
    render(
      <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
        <ChatPreferencesCard />
      </QueryClientProvider>,
    );
    const model = (await screen.findByLabelText('Default model for new chats')) as HTMLSelectElement;
    await screen.findByRole('option', { name: 'gpt-4o' });
    fireEvent.change(model, { target: { value: 'gpt-4o' } });
    await waitFor(() => expect(model.value).toBe('gpt-4o'));
    fireEvent.change(screen.getByLabelText('Send with'), { target: { value: 'mod_enter' } });
    await waitFor(() => expect(puts).toEqual([{ default_model: 'gpt-4o' }, { send_key: 'mod_enter' }]));
    await waitFor(() => expect((screen.getByLabelText('Send with') as HTMLSelectElement).value).toBe('mod_enter'));
  });
});
