import { lazy } from 'react';
import type { PageRoute } from '../../routes';

/** The signed-in user's own pages, each loaded when first opened. */
export const accountRoutes: PageRoute[] = [
  { path: '/keys', page: lazy(() => import('./Keys')), nav: { to: '/keys', label: 'nav.keys' } },
  { path: '/usage', page: lazy(() => import('./Usage')), nav: { to: '/usage', label: 'nav.usage' } },
  { path: '/settings', page: lazy(() => import('./Settings')), nav: { to: '/settings', label: 'nav.settings' } },
];
