// The empty chat without models: an administrator is led to where models come from.
import { afterEach, describe, expect, it } from 'vitest';
import { render, screen } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter } from 'react-router-dom';
import { ChatEmpty } from './ChatEmpty';
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
