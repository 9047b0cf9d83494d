// Conversation settings: temperature and top-p are labelled sliders with their range and a
// "Model default" state; a moved slider is saved as a number, a reset one as null.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { ConversationSettings } from './ConversationSettings';
import type { Conversation } from '../../lib/types';
import { setLang } from '../../lib/settings';

afterEach(() => {
  vi.unstubAllGlobals();
  setLang('en');
});

const conversation = { id: 'c1', title: 'T', system_prompt: null, temperature: 0.3, top_p: null, max_tokens: null, history_limit: null, model: null } as unknown as Conversation;

function show() {
  const patches: unknown[] = [];
  vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
    if (init.method === 'PATCH') patches.push(JSON.parse(String(init.body)));
    if (url.includes('/bases')) return new Response(JSON.stringify(url.includes('conversations') ? { base_ids: [] } : { items: [], total: 0, page: 1, per_page: 100 }));
    return new Response('{}');
  });
  render(
    <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
      <ConversationSettings open onOpenChange={() => undefined} conversation={conversation} onSaved={() => undefined} />
    </QueryClientProvider>,
  );
  return patches;
}

describe('conversation settings', () => {
  it('shows sliders with their value or the model default, and saves what was set', async () => {
    const patches = show();
    const temperature = screen.getByRole('slider', { name: 'Temperature' }) as HTMLInputElement;
    const topP = screen.getByRole('slider', { name: 'Top P' }) as HTMLInputElement;
    expect([temperature.min, temperature.max, temperature.step, temperature.value]).toEqual(['0', '2', '0.1', '0.3']);
    expect(topP.getAttribute('aria-valuetext')).toBe('Model default');
    fireEvent.change(topP, { target: { value: '0.85' } });
    expect(topP.getAttribute('aria-valuetext')).toBe('0.85');
    // Temperature back to the model's default.
    const values = screen.getAllByTestId('slider-field');
    fireEvent.click(values[0].querySelector('button') as HTMLButtonElement);
    expect(temperature.getAttribute('aria-valuetext')).toBe('Model default');
    fireEvent.click(screen.getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(patches).toHaveLength(1));
    expect(patches[0]).toMatchObject({ temperature: null, top_p: 0.85 });
  });

  it('keeps what was typed when the conversation is fetched again, and leaves the knowledge bases alone until they load', async () => {
    const sent: { method: string; url: string }[] = [];
    let loadBases: (() => void) | null = null;
    vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
      sent.push({ method: init.method ?? 'GET', url });
      if (url.includes('conversations/c1/bases') && (init.method ?? 'GET') === 'GET') {
        await new Promise<void>((resolve) => (loadBases = resolve));
        return new Response(JSON.stringify({ base_ids: ['kb1'] }));
      }
      if (url.includes('knowledge/bases')) return new Response(JSON.stringify({ items: [{ id: 'kb1', name: 'Handbook' }], total: 1, page: 1, per_page: 100 }));
      return new Response('{}');
    });
    const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
    const view = (c: Conversation) => (
      <QueryClientProvider client={client}>
        <ConversationSettings open onOpenChange={() => undefined} conversation={c} onSaved={() => undefined} />
      </QueryClientProvider>
    );
    const { rerender } = render(view(conversation));
    const prompt = screen.getByRole('textbox', { name: 'System prompt' }) as HTMLTextAreaElement;
    fireEvent.change(prompt, { target: { value: 'Be brief.' } });
    // The thread refetches the conversation (an answer finished): a new object, same id.
    rerender(view({ ...conversation, title: 'Renamed' } as Conversation));
    expect(prompt.value).toBe('Be brief.');
    // The attached bases have not arrived: the picker waits, and a save sends only the settings.
    const handbook = await screen.findByRole('checkbox', { name: 'Handbook' });
    expect(handbook.matches(':disabled')).toBe(true);
    fireEvent.click(screen.getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(sent.some((r) => r.method === 'PATCH')).toBe(true));
    expect(sent.filter((r) => r.method === 'PUT')).toEqual([]);
    // Once they load, they show as they are and a change to them is saved.
    (loadBases as unknown as () => void)();
    await waitFor(() => expect(handbook.matches(':disabled')).toBe(false));
    expect((handbook as HTMLInputElement).checked).toBe(true);
    fireEvent.click(handbook);
    fireEvent.click(screen.getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(sent.filter((r) => r.method === 'PUT')).toHaveLength(1));
  });

  it('reads in Chinese', () => {
    setLang('zh-CN');
    show();
    expect(screen.getByRole('slider', { name: '温度' }).getAttribute('aria-valuetext')).toBe('0.3');
    expect(screen.getAllByText('模型默认').length).toBeGreaterThan(0);
  });
});
