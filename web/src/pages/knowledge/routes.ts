import { lazy } from 'react';
import type { PageRoute } from '../../routes';

/** Knowledge bases and one base's page, loaded when first opened. */
export const knowledgeRoutes: PageRoute[] = [
  { path: '/knowledge', page: lazy(() => import('./KnowledgeList')), title: 'nav.knowledge', nav: { to: '/knowledge', label: 'nav.knowledge' } },
  { path: '/knowledge/:id', page: lazy(() => import('./BasePage')), title: 'nav.knowledge' },
];
