// The empty chat without models: an administrator is led to where models come from.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter } from 'react-router-dom';
import { ChatEmpty } from './ChatEmpty';
import { ChatBalance } from './ThreadHeader';
import { clearSession, setUser } from '../../lib/auth';
import { setLang } from '../../lib/settings';
import type { Profile } from '../../lib/types';

const profile = (role: Profile['role']): Profile => ({
  id: 'u1',
  username: 'root',
  email: null,
  display_name: 'Root',
  avatar_url: null,
  language: 'en',
  theme: 'system',
  role,
  status: 'active',
  invited_by: null,
  created_at: '2026-12-01T00:00:00Z',
  last_login_at: null,
  email_verified: false,
  two_factor_enabled: false,
});

const show = (hasModels: boolean) =>
  render(
    <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
      <MemoryRouter>
        <ChatEmpty hasModels={hasModels} />
      </MemoryRouter>
    </QueryClientProvider>,
  );

afterEach(() => {
  clearSession();
  setLang('en');
});

describe('empty chat', () => {
  // Root sees its setup checklist instead (SetupChecklist.test.tsx); another administrator
  // gets the links.
  it('tells an administrator where models come from, with links to channels and pricing', () => {
    setUser(profile('admin'));
    show(false);
    expect(screen.getByRole('link', { name: 'Add a channel' }).getAttribute('href')).toBe('/admin/channels');
    expect(screen.getByRole('link', { name: 'Set prices' }).getAttribute('href')).toBe('/admin/pricing');
  });

  it('in Chinese too', () => {
    setLang('zh-CN');
    setUser(profile('admin'));
    show(false);
    expect(screen.getByRole('link', { name: '添加渠道' }).getAttribute('href')).toBe('/admin/channels');
    expect(screen.getByRole('link', { name: '设置价格' }).getAttribute('href')).toBe('/admin/pricing');
  });

  it('a user who cannot add models is told to ask an administrator, with no admin links', () => {
    setUser(profile('user'));
    show(false);
    expect(screen.getByText(/An administrator adds channels and prices/)).toBeTruthy();
    expect(screen.queryByRole('link')).toBeNull();
  });

  it('with models, it invites a question', () => {
    setUser(profile('root'));
    show(true);
    expect(screen.getByText(/ask anything/)).toBeTruthy();
    expect(screen.queryByRole('link')).toBeNull();
  });
});

describe('suggestions and balance', () => {
  afterEach(() => vi.unstubAllGlobals());

  it('offers starting points in an empty chat; a click hands the text to the composer', () => {
    setUser(profile('user'));
    const picked: string[] = [];
    render(
      <QueryClientProvider client={new QueryClient()}>
        <MemoryRouter>
          <ChatEmpty hasModels onSuggest={(text) => picked.push(text)} />
        </MemoryRouter>
      </QueryClientProvider>,
    );
    const chips = screen.getByRole('list', { name: 'Suggestions' }).querySelectorAll('button');
    expect(chips).toHaveLength(4);
    fireEvent.click(chips[2]);
    expect(picked).toEqual(['Write a Python function that removes duplicates from a list']);
  });

  it('shows what is left to spend in the chat header, red when nothing is, linking to Usage', async () => {
    vi.stubGlobal('fetch', async () => new Response(JSON.stringify({ available: 0, balance: 0, reserved: 0, balance_usd: 0, balance_cny: 0, quota_per_usd: 500000 })));
    render(
      <QueryClientProvider client={new QueryClient()}>
        <MemoryRouter>
          <ChatBalance />
        </MemoryRouter>
      </QueryClientProvider>,
    );
    const link = await screen.findByTestId('chat-balance');
    expect(link.getAttribute('href')).toBe('/usage');
    expect(link.textContent).toBe('Balance $0.00');
    expect(link.className).toContain('text-danger');
  });
});
