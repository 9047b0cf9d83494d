import { useEffect, useState } from 'react';
import { useParams } from 'react-router-dom';
import { useQuery } from '@tanstack/react-query';
import { api, ApiError } from '../../lib/api';
import type { ChatModel } from '../../lib/types';
import { useT } from '../../i18n';
import { Drawer } from '../../components/ui/dialog';
import { Sidebar } from './Sidebar';
import { Thread } from './Thread';
import { qk } from '../../lib/queryKeys';

/** Models the user may chat with; `unavailable` when the server has no Chat service. */
export function useChatModels() {
  return useQuery({
    queryKey: qk.chatModels,
    queryFn: async () => {
      try {
        return { models: await api<ChatModel[]>('chat/models'), unavailable: false };
      } catch (e) {
        if (e instanceof ApiError && e.status === 404) return { models: [] as ChatModel[], unavailable: true };
        throw e;
      }
    },
  });
}

/** The chat: conversation list (a drawer on phones) and the open conversation. */
export function ChatPage() {
  const t = useT();
  const { id } = useParams();
  const [drawer, setDrawer] = useState(false);
  const models = useChatModels();
  useEffect(() => setDrawer(false), [id]);

  if (models.data?.unavailable) {
    return <div className="p-8 text-center text-muted-fg">{t('chat.unavailable')}</div>;
  }
  return (
    <div className="flex h-full">
      <aside className="hidden w-72 shrink-0 border-r border-border md:flex md:flex-col">
        <Sidebar activeId={id ?? null} />
      </aside>
      <Drawer open={drawer} onOpenChange={setDrawer} title={t('chat.conversations')}>
        <Sidebar activeId={id ?? null} onPick={() => setDrawer(false)} />
      </Drawer>
      <section className="flex min-w-0 flex-1 flex-col">
        <Thread conversationId={id ?? null} models={models.data?.models ?? []} onOpenList={() => setDrawer(true)} />
      </section>
    </div>
  );
}
