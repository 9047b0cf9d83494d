// The prompt library card in Settings: lists one's prompts and the shared ones, adds one,
// and only an administrator is offered sharing with everyone.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { PromptLibraryCard, matchPrompts, slashQuery, type Prompt } from './prompts';
import { clearSession, setUser } from '../../lib/auth';
import { setLang } from '../../lib/settings';
import type { Profile } from '../../lib/types';

afterEach(() => {
  vi.unstubAllGlobals();
  clearSession();
  setLang('en');
});

const user = (role: Profile['role']) => ({ id: 'u1', username: 'ada', display_name: 'Ada', role }) as unknown as Profile;

describe('slash queries', () => {
  it('only a lone /word at the start opens the list', () => {
    expect(slashQuery('/tr')).toBe('tr');
    expect(slashQuery('/')).toBe('');
    expect(slashQuery('/tr more')).toBeNull();
    expect(slashQuery('a /tr')).toBeNull();
    const p = (command: string, title: string): Prompt => ({ id: command, command, title, content: '', shared: false, mine: true, updated_at: '' });
    expect(matchPrompts([p('b', 'Translate'), p('tr', 'x')], 'tr').map((x) => x.command)).toEqual(['tr', 'b']);
  });
});

describe('prompt library card', () => {
  it('lists prompts, adds one, and offers sharing to administrators only', async () => {
    let list: Prompt[] = [{ id: 's', command: '周报', title: 'Weekly report', content: 'x', shared: true, mine: false, updated_at: '' }];
    const posts: unknown[] = [];
    vi.stubGlobal('fetch', async (_url: string, init: RequestInit = {}) => {
      if (init.method === 'POST') {
        const body = JSON.parse(String(init.body));
        posts.push(body);
        list = [...list, { id: 'n', ...body, shared: false, mine: true, updated_at: '' }];
        return new Response(JSON.stringify(list[list.length - 1]), { status: 201 });
      }
      return new Response(JSON.stringify(list));
    });
    setUser(user('user'));
    render(
      <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
        <PromptLibraryCard />
      </QueryClientProvider>,
    );
    await screen.findByText('Weekly report');
    expect(screen.queryByLabelText('Share with every user')).toBeNull();
    // A shared prompt that is not mine cannot be edited here.
    expect(screen.queryByRole('button', { name: 'Edit' })).toBeNull();
    fireEvent.change(screen.getByLabelText('Command', { exact: false }), { target: { value: 'tldr' } });
    fireEvent.change(screen.getByLabelText('Title'), { target: { value: 'Summarise' } });
    fireEvent.change(screen.getByLabelText('Text inserted'), { target: { value: 'Summarise in three bullets:' } });
    fireEvent.click(screen.getByRole('button', { name: 'Add prompt' }));
    await waitFor(() => expect(posts).toEqual([{ command: 'tldr', title: 'Summarise', content: 'Summarise in three bullets:' }]));
    await screen.findByText('Summarise');
    expect(screen.getAllByTestId('prompt')).toHaveLength(2);
  });

  it('an administrator may share; the card reads in Chinese', async () => {
    vi.stubGlobal('fetch', async () => new Response('[]'));
    setUser(user('admin'));
    setLang('zh-CN');
    render(
      <QueryClientProvider client={new QueryClient()}>
        <PromptLibraryCard />
      </QueryClientProvider>,
    );
    await screen.findByText('还没有提示词。');
    expect(screen.getByLabelText('共享给所有用户')).toBeTruthy();
  });
});
