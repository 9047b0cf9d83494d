import { useEffect } from 'react';

/** Sets the tab's title to `<page> · <app>` while the calling page is shown. */
export function usePageTitle(page: string | null, app: string) {
  useEffect(() => {
    document.title = page ? `${page} · ${app}` : app;
  }, [page, app]);
}
