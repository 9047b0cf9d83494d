import type { PageRoute } from '../../routes';
import { ChatPage } from './ChatPage';

/** Chat is the landing page, so it is part of the first load. */
export const chatRoutes: PageRoute[] = [
  { path: '/chat', page: ChatPage, title: 'nav.chat', nav: { to: '/chat', label: 'nav.chat' } },
  { path: '/chat/:id', page: ChatPage, title: 'nav.chat' },
];
