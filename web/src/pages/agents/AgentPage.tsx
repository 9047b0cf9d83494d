import { useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router-dom';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { qk } from '../../lib/queryKeys';
import { storage } from '../../lib/store';
import { useT } from '../../i18n';
import { Badge, Button, Card, ErrorText, Field, Textarea } from '../../components/ui';
import { Dialog } from '../../components/ui/dialog';
import { toast } from '../../components/ui/toast';
import { AgentAvatar } from './AgentAvatar';
import type { AgentDetail, ConversationAgent, MarkState } from './types';
import { HeartIcon, StarIcon } from '../../components/icons';

/** An assistant's page: who it is, how it opens, and starting a chat; like, favourite,
 * duplicate, report; its owner edits it from here. */
export default function AgentPage() {
  const t = useT();
  const { id = '' } = useParams();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [error, setError] = useState<unknown>(null);
  const [reporting, setReporting] = useState(false);
  const [reason, setReason] = useState('');
  const agent = useQuery({ queryKey: qk.agents.one(id), queryFn: () => api<AgentDetail>(`agents/${id}`) });
  const refresh = () => queryClient.invalidateQueries({ queryKey: qk.agents.all });

  const start = async (question?: string) => {
    setError(null);
    try {
      const c = await api<ConversationAgent>(`agents/${id}/conversations`, { method: 'POST', body: {} });
      // A suggested question waits in the new conversation's composer, as a draft would.
      if (question) storage.set(`skein.draft.${c.conversation_id}`, question);
      navigate(`/chat/${c.conversation_id}`);
    } catch (e) {
      setError(e);
    }
  };
  const mark = async (kind: 'like' | 'favourite', on: boolean) => {
    setError(null);
    try {
      await api<MarkState>(`agents/${id}/${kind}`, { method: on ? 'PUT' : 'DELETE' });
      refresh();
    } catch (e) {
      setError(e);
    }
  };
  const duplicate = async () => {
    try {
      const copy = await api<AgentDetail>(`agents/${id}/duplicate`, { method: 'POST', body: {} });
      refresh();
      navigate(`/agents/${copy.id}/edit`);
    } catch (e) {
      setError(e);
    }
  };
  const report = async () => {
    try {
      await api(`agents/${id}/report`, { method: 'POST', body: { reason } });
      setReporting(false);
      setReason('');
      toast(t('agents.reported'));
    } catch (e) {
      setError(e);
    }
  };

  if (agent.error) return <div className="mx-auto max-w-3xl p-4"><ErrorText error={agent.error} /></div>;
  const a = agent.data;
  if (!a) return <div className="p-8 text-center text-muted-fg">{t('common.loading')}</div>;
  const spec = a.published ?? a.draft;
  return (
    <div className="mx-auto max-w-3xl space-y-4 p-4">
      <div className="flex items-start gap-4">
        <AgentAvatar avatar={a.avatar} name={a.name} url={a.avatar_url} size="lg" />
        <div className="min-w-0 flex-1">
          <h1 className="break-words text-xl font-semibold" data-testid="agent-name">{a.name}</h1>
          <div className="mt-1 flex flex-wrap items-center gap-2 text-xs text-muted-fg">
            {a.current_version ? <Badge tone="primary">v{a.current_version}</Badge> : <Badge>{t('agents.unpublished')}</Badge>}
            <Badge>{t(`agents.visibility.${a.visibility}`)}</Badge>
            {a.featured && <Badge tone="primary">{t('agents.featured')}</Badge>}
            {!a.listed && <Badge tone="danger">{t('agents.unlisted')}</Badge>}
            <span>{t('agents.counts', { likes: a.likes, chats: a.conversations })}</span>
          </div>
        </div>
      </div>
      <p className="whitespace-pre-wrap text-sm">{a.description}</p>
      {a.tags.length > 0 && (
        <div className="flex flex-wrap gap-1">
          {a.tags.map((tag) => <Badge key={tag}>{tag}</Badge>)}
        </div>
      )}
      <div className="flex flex-wrap gap-2">
        <Button onClick={() => start()} disabled={!a.current_version} data-testid="agent-start">
          {t('agents.startChat')}
        </Button>
        <Button variant="secondary" onClick={() => mark('like', !a.liked)} aria-pressed={a.liked} disabled={!a.current_version}>
          <HeartIcon fill={a.liked ? 'currentColor' : 'none'} className={a.liked ? 'text-danger' : undefined} /> {t('agents.like')} · {a.likes}
        </Button>
        <Button variant="secondary" onClick={() => mark('favourite', !a.favourited)} aria-pressed={a.favourited} disabled={!a.current_version}>
          <StarIcon fill={a.favourited ? 'currentColor' : 'none'} className={a.favourited ? 'text-amber-500' : undefined} /> {t('agents.favourite')}
        </Button>
        <Button variant="ghost" onClick={duplicate}>{t('agents.duplicate')}</Button>
        {a.is_owner ? (
          <Link to={`/agents/${a.id}/edit`}>
            <Button variant="ghost">{t('common.edit')}</Button>
          </Link>
        ) : (
          <Button variant="ghost" onClick={() => setReporting(true)}>{t('agents.report')}</Button>
        )}
      </div>
      <ErrorText error={error} />
      {spec && (spec.opening_message || spec.suggested_questions.length > 0) && (
        <Card className="space-y-3">
          {spec.opening_message && <p className="whitespace-pre-wrap text-sm">{spec.opening_message}</p>}
          <div className="flex flex-wrap gap-2">
            {spec.suggested_questions.map((q) => (
              <Button key={q} variant="secondary" size="sm" className="h-auto whitespace-normal py-1 text-left" onClick={() => start(q)} disabled={!a.current_version}>
                {q}
              </Button>
            ))}
          </div>
        </Card>
      )}
      <Dialog open={reporting} onOpenChange={setReporting} title={t('agents.report')}>
        <Field label={t('agents.reportReason')}>
          <Textarea value={reason} onChange={(e) => setReason(e.target.value)} maxLength={1000} rows={4} />
        </Field>
        <div className="mt-3 flex justify-end gap-2">
          <Button variant="secondary" onClick={() => setReporting(false)}>{t('common.cancel')}</Button>
          <Button onClick={report} disabled={!reason.trim()}>{t('agents.report')}</Button>
        </div>
      </Dialog>
    </div>
  );
}
