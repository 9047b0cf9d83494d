import { useEffect } from 'react';
import { createStore, useStore } from './store';

/**
 * What a page shows inside itself (an admin tab, a conversation's title), put before the
 * page's own name in the tab title. A store rather than a second `document.title` write: a
 * child's effect runs before its parent's, so the page would overwrite it on first load.
 */
export const subTitleStore = createStore<string | null>(null);

/** Sets the tab's title to `[<part> · ]<page> · <app>` while the calling page is shown. */
export function usePageTitle(page: string | null, app: string) {
  const sub = useStore(subTitleStore);
  useEffect(() => {
    document.title = [sub, page, app].filter(Boolean).join(' · ');
  }, [sub, page, app]);
}

/** Names the part of a page on show (`Pricing · Admin console · Skein`) until it goes. */
export function useSubTitle(part: string | null) {
  useEffect(() => {
    subTitleStore.set(part || null);
    return () => subTitleStore.set(null);
  }, [part]);
}
