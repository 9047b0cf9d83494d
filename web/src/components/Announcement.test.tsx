// The announcement banner: shown in the UI language, dismissed per user, back with a new text.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { AnnouncementBanner } from './Layout';
import { clearSession, setUser } from '../lib/auth';
import { setLang } from '../lib/settings';
import type { Profile } from '../lib/types';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  clearSession();
  setLang('en');
  localStorage.clear();
});

const user = (id: string) => ({ id, username: id, display_name: id, role: 'user', status: 'active', language: 'en', theme: 'system', created_at: '' }) as unknown as Profile;

function serve(announcement: unknown) {
  vi.stubGlobal('fetch', async () =>
    new Response(JSON.stringify({ registration_mode: 'open', announcement, currency: 'usd', cny_per_usd: 7.2, quota_per_usd: 500000, invite_reward_inviter: 0, invite_reward_invitee: 0 })),
  );
}

function show() {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <QueryClientProvider client={client}>
      <AnnouncementBanner />
    </QueryClientProvider>,
  );
}

describe('announcement banner', () => {
  it('shows the text in the UI language until this user dismisses it', async () => {
    setUser(user('u1'));
    setLang('zh-CN');
    serve({ id: 'a1', en: 'Maintenance tonight', zh: '今晚维护' });
    show();
    expect((await screen.findByTestId('announcement')).textContent).toContain('今晚维护');
    fireEvent.click(screen.getByRole('button', { name: '关闭公告' }));
    await waitFor(() => expect(screen.queryByTestId('announcement')).toBeNull());
    cleanup();
    // Another user on the same device still sees it.
    setUser(user('u2'));
    show();
    expect(await screen.findByTestId('announcement')).toBeTruthy();
  });

  it('a new text shows again to whoever dismissed the old one', async () => {
    setUser(user('u1'));
    localStorage.setItem('skein.announcement.dismissed.u1', 'a1');
    serve({ id: 'a2', en: 'Back online', zh: '已恢复' });
    show();
    expect((await screen.findByTestId('announcement')).textContent).toContain('Back online');
  });
});
