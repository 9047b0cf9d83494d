import type { ComponentType } from 'react';
import type { MessageKey } from './i18n';
import { chatRoutes } from './pages/chat/routes';
import { accountRoutes } from './pages/account/routes';
import { adminRoutes } from './pages/admin/routes';
import { fileRoutes } from './pages/files/routes';
import { knowledgeRoutes } from './pages/knowledge/routes';
import { pluginRoutes } from './pages/plugins/routes';
import { agentRoutes } from './pages/agents/routes';

/** One page of a feature inside the signed-in frame. */
export interface PageRoute {
  /** The route path, e.g. `/keys`; end it with `/*` when the feature routes below it itself. */
  path: string;
  /** The page. Give a `lazy()` component to keep it out of the first load; it is then shown
   * inside a Suspense boundary with the loading line. */
  page: ComponentType;
  /** The tab title while the page is shown (`<title> · Skein`). */
  title: MessageKey;
  /** Its entry in the top navigation (in table order), if it has one. */
  nav?: { to: string; label: MessageKey; admin?: boolean };
}

/**
 * Every signed-in page, feature by feature. A new feature (File, Knowledge, Plugin, Agent, ...)
 * writes `pages/<feature>/routes.ts` and adds it here, once: the router and the navigation
 * both read this table.
 */
export const routes: PageRoute[] = [...chatRoutes, ...agentRoutes, ...knowledgeRoutes, ...fileRoutes, ...pluginRoutes, ...accountRoutes, ...adminRoutes];

/** The top navigation's links, in table order. */
export const navLinks = routes.flatMap((r) => (r.nav ? [r.nav] : []));
