import { useEffect, useState } from 'react';
import { Link, useParams } from 'react-router-dom';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { qk } from '../../lib/queryKeys';
import { when } from '../../lib/format';
import { useStore } from '../../lib/store';
import { langStore } from '../../lib/settings';
import { useT } from '../../i18n';
import { Badge, Button, Card, ErrorText, Field, Input, PageHeader, Select, Textarea, cx } from '../../components/ui';
import { Dialog } from '../../components/ui/dialog';
import { toast } from '../../components/ui/toast';
import { AvatarField } from './AvatarField';
import { Bindings } from './Bindings';
import { PreviewChat } from './PreviewChat';
import { useChatModels } from '../chat/ChatPage';
import { categoryName, diffStats, draftPatch, numberOrNull, parseLines, parseTags, showValue } from './logic';
import type { AgentDetail, AgentSpec, AgentVersion, Category, Comparison, Visibility } from './types';

/** The prompt diff and the changed settings between two versions. */
function CompareView({ id, from, to }: { id: string; from: number; to: number }) {
  const t = useT();
  const diff = useQuery({ queryKey: qk.agents.compare(id, from, to), queryFn: () => api<Comparison>(`agents/${id}/compare?from=${from}&to=${to}`) });
  if (diff.error) return <ErrorText error={diff.error} />;
  if (!diff.data) return <p className="text-muted-fg">{t('common.loading')}</p>;
  const stats = diffStats(diff.data.prompt);
  const settings = diff.data.fields.filter((f) => f.field !== 'system_prompt');
  return (
    <div className="space-y-3" data-testid="agent-diff">
      <h3 className="text-sm font-medium">{t('agents.settingsChanged')}</h3>
      {settings.length === 0 ? (
        <p className="text-sm text-muted-fg">{t('agents.noSettingsChanged')}</p>
      ) : (
        <table className="w-full table-fixed text-sm">
          <tbody>
            {settings.map((f) => (
              <tr key={f.field} className="border-b border-border align-top">
                <td className="w-1/4 py-1 pr-2 font-mono text-xs">{f.field}</td>
                <td className="break-words py-1 pr-2 text-danger line-through">{showValue(f.from)}</td>
                <td className="break-words py-1 text-ok">{showValue(f.to)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h3 className="text-sm font-medium">
        {t('agents.prompt')} <span className="text-ok">+{stats.added}</span> <span className="text-danger">−{stats.removed}</span>
      </h3>
      <pre className="max-h-80 overflow-auto rounded-md border border-border bg-bg p-2 text-xs">
        {diff.data.prompt.map((l, i) => (
          <div key={i} className={cx('whitespace-pre-wrap break-words', l.op === 'added' && 'bg-ok/15 text-ok', l.op === 'removed' && 'bg-danger/15 text-danger')}>
            {l.op === 'added' ? '+ ' : l.op === 'removed' ? '− ' : '  '}
            {l.text}
          </div>
        ))}
      </pre>
    </div>
  );
}

/** The editor: the draft's fields, save, publish with a changelog; the version history with
 * rollback and a diff of any version against the one before it (or the draft). */
export default function EditorPage() {
  const t = useT();
  const lang = useStore(langStore);
  const { id = '' } = useParams();
  const queryClient = useQueryClient();
  const agent = useQuery({ queryKey: qk.agents.one(id), queryFn: () => api<AgentDetail>(`agents/${id}`) });
  const versions = useQuery({ queryKey: qk.agents.versions(id), queryFn: () => api<AgentVersion[]>(`agents/${id}/versions`) });
  const categories = useQuery({ queryKey: qk.agents.categories, queryFn: () => api<Category[]>('market/categories') });
  const models = useChatModels();
  const [spec, setSpec] = useState<AgentSpec | null>(null);
  const [visibility, setVisibility] = useState<Visibility>('private');
  const [tags, setTags] = useState('');
  const [questions, setQuestions] = useState('');
  const [changelog, setChangelog] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [compare, setCompare] = useState<{ from: number; to: number } | null>(null);

  useEffect(() => {
    if (agent.data?.draft && spec === null) {
      setSpec(agent.data.draft);
      setVisibility(agent.data.visibility);
      setTags(agent.data.draft.tags.join(', '));
      setQuestions(agent.data.draft.suggested_questions.join('\n'));
    }
  }, [agent.data, spec]);

  if (agent.error) return <div className="mx-auto max-w-3xl p-4"><ErrorText error={agent.error} /></div>;
  if (!spec || !agent.data) return <div className="p-8 text-center text-muted-fg">{t('common.loading')}</div>;
  const set = <K extends keyof AgentSpec>(key: K, value: AgentSpec[K]) => setSpec({ ...spec, [key]: value });
  const current = (): AgentSpec => ({ ...spec, tags: parseTags(tags), suggested_questions: parseLines(questions) });
  const refresh = () => queryClient.invalidateQueries({ queryKey: qk.agents.all });

  const save = async () => {
    setError(null);
    try {
      await api(`agents/${id}`, { method: 'PATCH', body: draftPatch(current(), visibility) });
      toast(t('common.saved'));
      refresh();
      return true;
    } catch (e) {
      setError(e);
      return false;
    }
  };
  const publish = async () => {
    if (!(await save())) return;
    try {
      const v = await api<AgentVersion>(`agents/${id}/publish`, { method: 'POST', body: { changelog } });
      setChangelog('');
      toast(t('agents.published', { version: v.version }));
      refresh();
    } catch (e) {
      setError(e);
    }
  };
  const rollback = async (version: number) => {
    try {
      const v = await api<AgentVersion>(`agents/${id}/versions/${version}/rollback`, { method: 'POST', body: {} });
      setSpec(v.spec);
      setTags(v.spec.tags.join(', '));
      setQuestions(v.spec.suggested_questions.join('\n'));
      toast(t('agents.published', { version: v.version }));
      refresh();
    } catch (e) {
      setError(e);
    }
  };

  return (
    <div className="mx-auto max-w-6xl p-4">
      <PageHeader title={t('agents.editTitle', { name: agent.data.name })}>
        <Link to={`/agents/${id}`}>
          <Button variant="secondary">{t('agents.viewPage')}</Button>
        </Link>
      </PageHeader>
      <div className="grid gap-4 lg:grid-cols-[1fr_26rem]">
        <Card className="space-y-3">
          <div className="grid gap-3 sm:grid-cols-[14rem_1fr]">
            {/* Not a <Field>: its <label> would send every click to the upload button. */}
            <div className="space-y-1">
              <span className="block text-sm font-medium">{t('agents.avatar')}</span>
              <AvatarField
                value={spec.avatar}
                name={spec.name}
                savedUrl={agent.data.avatar === spec.avatar ? agent.data.avatar_url : null}
                onChange={(avatar) => set('avatar', avatar)}
              />
              <span className="block text-xs text-muted-fg">{t('agents.avatarHint')}</span>
            </div>
            <Field label={t('common.name')}>
              <Input value={spec.name} onChange={(e) => set('name', e.target.value)} maxLength={64} data-testid="agent-edit-name" />
            </Field>
          </div>
          <Field label={t('agents.description')}>
            <Textarea value={spec.description} onChange={(e) => set('description', e.target.value)} maxLength={1000} rows={2} />
          </Field>
          <div className="grid gap-3 sm:grid-cols-3">
            <Field label={t('agents.tags')} hint={t('agents.tagsHint')}>
              <Input value={tags} onChange={(e) => setTags(e.target.value)} />
            </Field>
            <Field label={t('agents.category')}>
              <Select className="block w-full" value={spec.category ?? ''} onChange={(e) => set('category', e.target.value || null)}>
                <option value="">—</option>
                {(categories.data ?? []).map((c) => (
                  <option key={c.id} value={c.id}>{categoryName(c, lang)}</option>
                ))}
              </Select>
            </Field>
            <Field label={t('agents.visibilityLabel')}>
              <Select className="block w-full" value={visibility} onChange={(e) => setVisibility(e.target.value as Visibility)}>
                {(['private', 'link', 'public'] as const).map((v) => (
                  <option key={v} value={v}>{t(`agents.visibility.${v}`)}</option>
                ))}
              </Select>
            </Field>
          </div>
          <Field label={t('agents.prompt')} hint={t('agents.promptHint', { n: spec.system_prompt.length })}>
            <Textarea value={spec.system_prompt} onChange={(e) => set('system_prompt', e.target.value)} rows={8} maxLength={20000} data-testid="agent-edit-prompt" className="font-mono text-xs" />
          </Field>
          <div className="grid gap-3 sm:grid-cols-4">
            <Field label={t('common.model')}>
              <Input value={spec.model ?? ''} onChange={(e) => set('model', e.target.value || null)} maxLength={128} list="agent-models" data-testid="agent-edit-model" />
              <datalist id="agent-models">
                {(models.data?.models ?? []).map((m) => (
                  <option key={m.id} value={m.id} />
                ))}
              </datalist>
            </Field>
            <Field label="temperature">
              <Input type="number" step="0.1" min={0} max={2} value={spec.temperature ?? ''} onChange={(e) => set('temperature', numberOrNull(e.target.value))} />
            </Field>
            <Field label="top_p">
              <Input type="number" step="0.05" min={0} max={1} value={spec.top_p ?? ''} onChange={(e) => set('top_p', numberOrNull(e.target.value))} />
            </Field>
            <Field label="max_tokens">
              <Input type="number" min={1} max={200000} value={spec.max_tokens ?? ''} onChange={(e) => set('max_tokens', numberOrNull(e.target.value))} />
            </Field>
          </div>
          <label className="flex items-center gap-2 text-sm">
            <input type="checkbox" checked={spec.allow_model_override} onChange={(e) => set('allow_model_override', e.target.checked)} />
            {t('agents.allowOverride')}
          </label>
          <Field label={t('agents.opening')}>
            <Textarea value={spec.opening_message} onChange={(e) => set('opening_message', e.target.value)} rows={2} maxLength={2000} />
          </Field>
          <Field label={t('agents.questions')} hint={t('agents.questionsHint')}>
            <Textarea value={questions} onChange={(e) => setQuestions(e.target.value)} rows={3} />
          </Field>
          <Bindings
            knowledge={spec.knowledge_base_ids}
            plugins={spec.plugin_ids}
            onKnowledge={(ids) => set('knowledge_base_ids', ids)}
            onPlugins={(ids) => set('plugin_ids', ids)}
          />
          <ErrorText error={error} />
          <div className="flex flex-wrap items-end gap-2">
            <Button variant="secondary" onClick={save}>{t('agents.saveDraft')}</Button>
            <Input className="min-w-0 flex-1 basis-40" value={changelog} onChange={(e) => setChangelog(e.target.value)} placeholder={t('agents.changelog')} maxLength={2000} aria-label={t('agents.changelog')} />
            <Button onClick={publish} data-testid="agent-publish">{t('agents.publish')}</Button>
          </div>
        </Card>
        <div className="space-y-4 self-start">
        <PreviewChat agentId={id} save={save} />
        <Card className="space-y-2">
          <h2 className="font-medium">{t('agents.history')}</h2>
          <ErrorText error={versions.error} />
          {versions.data?.length === 0 && <p className="text-sm text-muted-fg">{t('agents.noVersions')}</p>}
          <ul className="space-y-2" data-testid="agent-versions">
            {versions.data?.map((v) => (
              <li key={v.version} className="rounded-md border border-border p-2 text-sm">
                <div className="flex items-center gap-2">
                  <Badge tone={v.version === agent.data?.current_version ? 'primary' : 'neutral'}>v{v.version}</Badge>
                  <span className="text-xs text-muted-fg">{when(v.created_at)}</span>
                </div>
                <p className="mt-1 break-words">
                  {v.changelog || '—'}
                  {v.source_version && <span className="text-muted-fg"> ({t('agents.rolledBackFrom', { version: v.source_version })})</span>}
                </p>
                <div className="mt-1 flex flex-wrap gap-1">
                  {v.version > 1 && (
                    <Button size="sm" variant="ghost" onClick={() => setCompare({ from: v.version - 1, to: v.version })}>
                      {t('agents.diffPrevious')}
                    </Button>
                  )}
                  <Button size="sm" variant="ghost" onClick={() => setCompare({ from: v.version, to: 0 })}>{t('agents.diffDraft')}</Button>
                  {v.version !== agent.data?.current_version && (
                    <Button size="sm" variant="ghost" onClick={() => rollback(v.version)}>{t('agents.rollback')}</Button>
                  )}
                </div>
              </li>
            ))}
          </ul>
        </Card>
        </div>
      </div>
      <Dialog
        open={compare !== null}
        onOpenChange={(o) => !o && setCompare(null)}
        title={compare ? t('agents.compareTitle', { from: `v${compare.from}`, to: compare.to ? `v${compare.to}` : t('agents.draft') }) : ''}
        wide
      >
        {compare && <CompareView id={id} from={compare.from} to={compare.to} />}
      </Dialog>
    </div>
  );
}
