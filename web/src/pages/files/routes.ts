import { lazy } from 'react';
import type { PageRoute } from '../../routes';

/** The user's files, loaded when first opened. (The public share page `/s/:token` is outside
 * the signed-in frame: see `App.tsx`.) */
export const fileRoutes: PageRoute[] = [
  { path: '/files', page: lazy(() => import('./Files')), title: 'nav.files', nav: { to: '/files', label: 'nav.files' } },
];
