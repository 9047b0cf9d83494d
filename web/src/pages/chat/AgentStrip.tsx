import { Link } from 'react-router-dom';
import { useQuery } from '@tanstack/react-query';
import { api, ApiError } from '../../lib/api';
import { qk } from '../../lib/queryKeys';
import { useT } from '../../i18n';
import { Badge, Button } from '../../components/ui';
import { AgentAvatar } from '../agents/AgentAvatar';
import type { ConversationAgent } from '../agents/types';

/** The assistant a conversation speaks with (404: none), or `null`. */
export function useConversationAgent(conversationId: string | null) {
  return useQuery({
    queryKey: qk.agents.conversation(conversationId),
    enabled: conversationId !== null,
    retry: false,
    staleTime: 60_000,
    queryFn: async () => {
      try {
        return await api<ConversationAgent>(`agents/conversations/${conversationId}`);
      } catch (e) {
        // No assistant, or no Agent service on this server: a plain conversation.
        if (e instanceof ApiError && e.status === 404) return null;
        throw e;
      }
    },
  });
}

/** Under the thread's header: which assistant and version this conversation speaks with; while
 * the conversation is empty, the assistant's opening message and questions to start with. */
export function AgentStrip({ agent, empty, onQuestion }: { agent: ConversationAgent; empty: boolean; onQuestion: (q: string) => void }) {
  const t = useT();
  return (
    <div className="border-b border-border px-3 py-2 text-sm" data-testid="chat-agent">
      <div className="flex items-center gap-2">
        <AgentAvatar avatar={agent.avatar} name={agent.name} url={agent.avatar_url} size="sm" />
        <Link to={`/agents/${agent.agent_id}`} className="min-w-0 truncate font-medium hover:underline">
          {agent.name}
        </Link>
        {agent.preview ? (
          <Badge tone="neutral">{t('agents.previewBadge')}</Badge>
        ) : (
          <Badge tone="primary">{t('agents.versionN', { version: agent.version })}</Badge>
        )}
        {agent.agent_deleted && <Badge tone="danger">{t('agents.deleted')}</Badge>}
      </div>
      {empty && (agent.opening_message || agent.suggested_questions.length > 0) && (
        <div className="mt-2 space-y-2">
          {agent.opening_message && <p className="whitespace-pre-wrap text-muted-fg">{agent.opening_message}</p>}
          <div className="flex flex-wrap gap-2">
            {agent.suggested_questions.map((q) => (
              <Button key={q} variant="secondary" size="sm" className="h-auto whitespace-normal py-1 text-left" onClick={() => onQuestion(q)}>
                {q}
              </Button>
            ))}
          </div>
        </div>
      )}
    </div>
  );
}
