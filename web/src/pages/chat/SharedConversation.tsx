import { lazy, Suspense } from 'react';
import { Link, useParams } from 'react-router-dom';
import { useQuery } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { when } from '../../lib/format';
import { qk } from '../../lib/queryKeys';
import { usePageTitle } from '../../lib/title';
import { useT } from '../../i18n';
import { ErrorText } from '../../components/ui';
import { MessageImages } from './Media';

const Markdown = lazy(() => import('../../components/markdown/Markdown'));

/** One message of a shared conversation (no costs, sources or settings). */
export interface SharedMessage {
  id: string;
  role: 'user' | 'assistant';
  content: string;
  reasoning: string | null;
  model: string | null;
  image_urls: string[];
  created_at: string;
}

/** A shared conversation as anyone with its link reads it. */
export interface Shared {
  title: string;
  shared_at: string;
  messages: SharedMessage[];
}

/**
 * The public page of a conversation's share link (`/share/:token`): its messages, read-only,
 * no sign-in. A revoked link or a deleted conversation says the link no longer works.
 */
export default function SharedConversationPage() {
  const t = useT();
  const { token = '' } = useParams();
  const shared = useQuery({
    queryKey: qk.sharedConversation(token),
    queryFn: () => api<Shared>(`chat/shared/${encodeURIComponent(token)}`, { auth: false }),
    retry: false,
  });
  const s = shared.data;
  usePageTitle(s ? s.title || t('chat.untitled') : t('chat.sharedConversation'), t('app.name'));
  return (
    <div className="min-h-full bg-bg">
      <header className="border-b border-border">
        <div className="mx-auto flex max-w-3xl items-center gap-2 px-4 py-3">
          <Link to="/chat" className="flex items-center gap-2 font-semibold">
            <img src="/favicon.svg" alt="" className="h-6 w-6" />
            {t('app.name')}
          </Link>
          <span className="ml-auto rounded-full bg-muted px-2.5 py-0.5 text-xs text-muted-fg">{t('chat.readOnly')}</span>
        </div>
      </header>
      <main className="mx-auto max-w-3xl space-y-5 px-4 py-6">
        {shared.isError && (
          <div data-testid="shared-missing">
            <h1 className="mb-2 text-xl font-semibold">{t('chat.shareGone')}</h1>
            <ErrorText error={shared.error} />
          </div>
        )}
        {s && (
          <>
            <div>
              <h1 className="text-xl font-semibold" data-testid="shared-title">
                {s.title || t('chat.untitled')}
              </h1>
              <p className="text-sm text-muted-fg">{t('chat.sharedAt', { when: when(s.shared_at) })}</p>
            </div>
            {s.messages.map((m) =>
              m.role === 'user' ? (
                <div key={m.id} className="flex flex-col items-end gap-1" data-testid="shared-message" data-role="user">
                  {m.image_urls.length > 0 && <MessageImages images={m.image_urls} className="max-w-[85%] justify-end" />}
                  {m.content && <div className="max-w-[85%] whitespace-pre-wrap break-words rounded-2xl bg-primary/10 px-4 py-2">{m.content}</div>}
                </div>
              ) : (
                <div key={m.id} className="space-y-1" data-testid="shared-message" data-role="assistant">
                  {m.reasoning && (
                    <details className="rounded-md border border-border px-3 py-1 text-sm text-muted-fg">
                      <summary className="cursor-pointer">{t('chat.thinking')}</summary>
                      <div className="whitespace-pre-wrap break-words">{m.reasoning}</div>
                    </details>
                  )}
                  <Suspense fallback={<div className="whitespace-pre-wrap break-words">{m.content}</div>}>
                    <Markdown text={m.content} />
                  </Suspense>
                  {m.model && <div className="text-xs text-muted-fg">{m.model}</div>}
                </div>
              ),
            )}
          </>
        )}
      </main>
    </div>
  );
}
