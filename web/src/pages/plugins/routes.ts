import { lazy } from 'react';
import type { PageRoute } from '../../routes';

/** The plugin market, loaded when first opened. */
export const pluginRoutes: PageRoute[] = [
  { path: '/plugins', page: lazy(() => import('./Plugins')), title: 'nav.plugins', nav: { to: '/plugins', label: 'nav.plugins' } },
];
