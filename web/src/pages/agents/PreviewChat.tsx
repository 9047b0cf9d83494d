import { useState } from 'react';
import { api } from '../../lib/api';
import { useT } from '../../i18n';
import { Button, Card, ErrorText } from '../../components/ui';
import { Thread } from '../chat/Thread';
import { useChatModels } from '../chat/ChatPage';
import type { ConversationAgent } from './types';

/** The editor's live preview: a conversation of the owner's that answers with the draft as it
 * is saved at each message, so an edit shows in the next answer. `save` stores the editor's
 * fields first (false when they were refused). */
export function PreviewChat({ agentId, save }: { agentId: string; save: () => Promise<boolean> }) {
  const t = useT();
  const models = useChatModels();
  const [conversation, setConversation] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const start = async () => {
    setError(null);
    setBusy(true);
    try {
      if (!(await save())) return;
      const started = await api<ConversationAgent>(`agents/${agentId}/preview`, { method: 'POST', body: {} });
      setConversation(started.conversation_id);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Card className="space-y-2" data-testid="agent-preview">
      <div className="flex items-center justify-between gap-2">
        <h2 className="font-medium">{t('agents.preview')}</h2>
        <Button size="sm" variant={conversation ? 'ghost' : 'primary'} disabled={busy} onClick={start} data-testid="agent-preview-start">
          {conversation ? t('agents.previewRestart') : t('agents.previewStart')}
        </Button>
      </div>
      <p className="text-xs text-muted-fg">{t('agents.previewNote')}</p>
      <ErrorText error={error} />
      {conversation && (
        <div className="flex h-[30rem] flex-col overflow-hidden rounded-md border border-border">
          <Thread conversationId={conversation} models={models.data?.models ?? []} onOpenList={() => undefined} />
        </div>
      )}
    </Card>
  );
}
