// The route table: every page has a tab title in both languages, and showing a page sets it.
import { afterEach, describe, expect, it } from 'vitest';
import { render, waitFor } from '@testing-library/react';
import { routes, navLinks } from './routes';
import { RoutePage } from './components/RoutePage';
import { en } from './i18n/en';
import { zh } from './i18n/zh';
import { setLang } from './lib/settings';
import { useSubTitle } from './lib/title';

afterEach(() => {
  setLang('en');
  document.title = 'Skein';
});

describe('route table', () => {
  it('gives every page a translated title, and the navigation its links in table order', () => {
    for (const r of routes) {
      expect(en[r.title], r.path).toBeTruthy();
      expect(zh[r.title], r.path).toBeTruthy();
    }
    expect(navLinks.map((l) => l.to)).toEqual(['/chat', '/agents', '/knowledge', '/files', '/plugins', '/keys', '/usage', '/settings', '/admin']);
    expect(new Set(routes.map((r) => r.path)).size).toBe(routes.length);
  });

  it('sets the tab title while a page is shown, in the UI language', async () => {
    const page = () => <p>usage</p>;
    const { unmount } = render(<RoutePage route={{ path: '/usage', page, title: 'nav.usage' }} />);
    await waitFor(() => expect(document.title).toBe('Usage · Skein'));
    unmount();
    setLang('zh-CN');
    render(<RoutePage route={{ path: '/usage', page, title: 'nav.usage' }} />);
    await waitFor(() => expect(document.title).toBe(`${zh['nav.usage']} · ${zh['app.name']}`));
  });

  it('names the part of a page on show before the page, and drops it when it goes', async () => {
    function Tab({ name }: { name: string | null }) {
      useSubTitle(name);
      return <p>tab</p>;
    }
    // The part is set by a child, whose effect runs before the page's: it must still show.
    const { rerender, unmount } = render(<RoutePage route={{ path: '/admin', page: () => <Tab name="Pricing" />, title: 'admin.title' }} />);
    await waitFor(() => expect(document.title).toBe('Pricing · Admin console · Skein'));
    rerender(<RoutePage route={{ path: '/admin', page: () => <Tab name={null} />, title: 'admin.title' }} />);
    await waitFor(() => expect(document.title).toBe('Admin console · Skein'));
    unmount();
  });
});
