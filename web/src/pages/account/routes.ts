import { lazy } from 'react';
import type { PageRoute } from '../../routes';

/** The signed-in user's own pages, each loaded when first opened. */
export const accountRoutes: PageRoute[] = [
  { path: '/keys', page: lazy(() => import('./Keys')), title: 'nav.keys', nav: { to: '/keys', label: 'nav.keys' } },
  { path: '/usage', page: lazy(() => import('./Usage')), title: 'nav.usage', nav: { to: '/usage', label: 'nav.usage' } },
  // Reached from the Usage page and as the payment providers' return address; no nav entry.
  { path: '/billing/topup', page: lazy(() => import('./TopUp')), title: 'topup.title' },
  // Reached from the Usage page; no nav entry.
  { path: '/billing/plans', page: lazy(() => import('./Plans')), title: 'plans.title' },
  // Reached from the Usage page; no nav entry.
  { path: '/billing/statements', page: lazy(() => import('./Bills')), title: 'bills.title' },
  // Reached from the Bills page; no nav entry.
  { path: '/billing/invoices', page: lazy(() => import('./Invoices')), title: 'invoices.title' },
  // Reached from the Settings page; no nav entry.
  { path: '/invites', page: lazy(() => import('./Invites')), title: 'invites.title' },
  { path: '/settings', page: lazy(() => import('./Settings')), title: 'nav.settings', nav: { to: '/settings', label: 'nav.settings' } },
];
