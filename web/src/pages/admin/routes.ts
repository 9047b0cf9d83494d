import { lazy } from 'react';
import type { PageRoute } from '../../routes';

/** The admin console, loaded only when an admin opens it; its tabs route below `/admin`. */
export const adminRoutes: PageRoute[] = [
  { path: '/admin/*', page: lazy(() => import('./AdminPage')), title: 'admin.title', nav: { to: '/admin', label: 'nav.admin', admin: true } },
];
