// The admin console's sections: every tab is in exactly one group of the side list (wide
// screens), the phone select lists the same sections and navigates, and both languages read.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, within } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter, Route, Routes, useLocation } from 'react-router-dom';
import AdminPage, { tabGroups } from './AdminPage';
import { setLang } from '../../lib/settings';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  setLang('en');
});

function Where() {
  return <span data-testid="where">{useLocation().pathname}</span>;
}

function show(path: string) {
  // The pages themselves are not under test: every request answers an empty list.
  vi.stubGlobal('fetch', async () => new Response(JSON.stringify({ items: [], total: 0, page: 1, per_page: 20 })));
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <QueryClientProvider client={client}>
      <MemoryRouter initialEntries={[path]}>
        <Routes>
          <Route path="/admin/*" element={<AdminPage />} />
        </Routes>
        <Where />
      </MemoryRouter>
    </QueryClientProvider>,
  );
}

describe('admin sections', () => {
  it('puts each of the sixteen sections in one group, with no section twice', () => {
    const all = tabGroups.flatMap((g) => g.tabs.map((t) => t.to));
    expect(all).toHaveLength(16);
    expect(new Set(all).size).toBe(16);
  });

  it('lists every section as a link in the grouped side navigation, the current one marked', () => {
    show('/admin/channels');
    const nav = screen.getByTestId('admin-nav');
    for (const name of ['Dashboard', 'Requests', 'Audit log', 'Users', 'Invites', 'Sign-in', 'Channels', 'Pricing', 'Plugins', 'Orders', 'Redemption codes', 'Coupons', 'Plans', 'Invoices', 'System']) {
      expect(within(nav).getByRole('link', { name })).toBeTruthy();
    }
    expect(within(nav).getByRole('heading', { name: 'Billing' })).toBeTruthy();
    expect(within(nav).getByRole('link', { name: 'Channels' }).getAttribute('aria-current')).toBe('page');
  });

  it('the narrow-screen select shows the current section and navigates to the one picked', () => {
    show('/admin/users');
    const select = screen.getByLabelText('Section') as HTMLSelectElement;
    expect(select.value).toBe('users');
    expect(select.querySelectorAll('option')).toHaveLength(16);
    fireEvent.change(select, { target: { value: 'pricing' } });
    expect(screen.getByTestId('where').textContent).toBe('/admin/pricing');
  });

  it('reads in Chinese', () => {
    setLang('zh-CN');
    show('/admin/dashboard');
    const nav = screen.getByTestId('admin-nav');
    expect(within(nav).getByRole('heading', { name: '计费' })).toBeTruthy();
    expect(within(nav).getByRole('link', { name: '渠道' })).toBeTruthy();
    expect(screen.getByRole('navigation', { name: '管理分区' })).toBeTruthy();
  });
});
