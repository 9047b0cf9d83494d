import { Suspense } from 'react';
import { usePageTitle } from '../lib/title';
import type { PageRoute } from '../routes';
import { useT } from '../i18n';

export function Loading() {
  const t = useT();
  return <div className="p-6 text-sm text-muted-fg">{t('common.loading')}</div>;
}

/** One page of the route table: its tab title, and its code loaded on demand. */
export function RoutePage({ route }: { route: PageRoute }) {
  const t = useT();
  usePageTitle(t(route.title), t('app.name'));
  const Page = route.page;
  return (
    <Suspense fallback={<Loading />}>
      <Page />
    </Suspense>
  );
}
