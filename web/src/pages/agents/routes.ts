import { lazy } from 'react';
import type { PageRoute } from '../../routes';

/** Assistants: the market, mine and favourites, an assistant's page, and its editor; each
 * loaded when first opened. */
export const agentRoutes: PageRoute[] = [
  { path: '/agents', page: lazy(() => import('./Market')), title: 'nav.agents', nav: { to: '/agents', label: 'nav.agents' } },
  { path: '/agents/mine', page: lazy(() => import('./Mine')), title: 'agents.mine' },
  { path: '/agents/:id', page: lazy(() => import('./AgentPage')), title: 'nav.agents' },
  { path: '/agents/:id/edit', page: lazy(() => import('./Editor')), title: 'agents.editor' },
];
