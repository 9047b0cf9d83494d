import { useEffect, useState } from 'react';
import { useSearchParams } from 'react-router-dom';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { list, when } from '../../lib/format';
import type { Channel } from '../../lib/types';
import { useT, useValueName } from '../../i18n';
import { Badge, Button, DataTable, ErrorText, Field, Input, Select, Textarea } from '../../components/ui';
import { Dialog } from '../../components/ui/dialog';
import { qk } from '../../lib/queryKeys';
import { ChannelStatsPanel } from './ChannelStatsPanel';
import { ChannelProbes } from './ChannelProbes';
import { ChannelsFileNotice } from './ChannelsFileNotice';
import { RoutingPanel } from './RoutingPanel';
import { eachLimited } from './requestLog';

/** How many channel tests run at once in "test all": enough to finish quickly, few enough not
 * to look like a burst to any one upstream. */
export const TEST_ALL_CONCURRENCY = 3;

const blank = { type: 'openai', name: '', base_url: 'https://api.openai.com', keys: '', models: '', mapping: '', groups: '', priority: '0', weight: '1', cost: '1000', lowBalance: '' };

/** Kinds whose vendor reports the account's balance (the relay reads it). */
export const BALANCE_KINDS = ['deepseek', 'moonshot', 'siliconflow'];

/** The upstream kinds the relay has adapters for, with their default base URLs; a default that
 * is only a pattern (Azure's, one per resource) is shown as a hint, never filled in. */
export const KINDS: Array<{ kind: string; url: string; fill: boolean }> = [
  { kind: 'openai', url: 'https://api.openai.com', fill: true },
  { kind: 'azure', url: 'https://RESOURCE.openai.azure.com', fill: false },
  { kind: 'anthropic', url: 'https://api.anthropic.com', fill: true },
  { kind: 'gemini', url: 'https://generativelanguage.googleapis.com', fill: true },
  { kind: 'deepseek', url: 'https://api.deepseek.com', fill: true },
  { kind: 'dashscope', url: 'https://dashscope.aliyuncs.com/compatible-mode/v1', fill: true },
  { kind: 'zhipu', url: 'https://open.bigmodel.cn/api/paas/v4', fill: true },
  { kind: 'moonshot', url: 'https://api.moonshot.cn/v1', fill: true },
  { kind: 'siliconflow', url: 'https://api.siliconflow.cn/v1', fill: true },
  { kind: 'volcengine', url: 'https://ark.cn-beijing.volces.com/api/v3', fill: true },
  { kind: 'minimax', url: 'https://api.minimaxi.com/v1', fill: true },
  { kind: 'hunyuan', url: 'https://api.hunyuan.cloud.tencent.com/v1', fill: true },
  { kind: 'qianfan', url: 'https://qianfan.baidubce.com/v2', fill: true },
  { kind: 'spark', url: 'https://spark-api-open.xf-yun.com/v1', fill: true },
  { kind: 'ollama', url: 'http://localhost:11434', fill: true },
  { kind: 'dashscope_native', url: 'https://dashscope.aliyuncs.com/api/v1', fill: true },
];

/** The base URL after the kind changes from `from` to `to`: the new kind's default replaces an
 * empty field or the old kind's untouched default; an address the admin typed stays. */
export function baseUrlForKind(from: string, to: string, current: string): string {
  const before = KINDS.find((k) => k.kind === from);
  const after = KINDS.find((k) => k.kind === to);
  const untouched = current.trim() === '' || (before?.fill && current === before.url);
  if (!untouched) return current;
  return after?.fill ? after.url : '';
}

/** `a=b, c=d` as a map (model name → upstream model or Azure deployment). */
function parseMapping(text: string): Record<string, string> {
  return Object.fromEntries(
    list(text)
      .map((pair) => pair.split('=').map((x) => x.trim()))
      .filter((kv) => kv.length === 2 && kv[0] && kv[1]),
  );
}

/** Whether the channel's last test failed (it may still be enabled and its breaker closed). */
export const testFailed = (c: Channel) => !!c.last_test_at && !!c.last_test_result && c.last_test_result !== 'ok';

function circuitTone(c: string) {
  return c === 'closed' ? 'ok' : c === 'open' ? 'danger' : 'neutral';
}

/** Upstream channels: create, edit, test, enable/disable, with the circuit breaker's state. */
export function Channels() {
  const t = useT();
  const v = useValueName();
  const queryClient = useQueryClient();
  const [editing, setEditing] = useState<Channel | 'new' | null>(null);
  const [form, setForm] = useState(blank);
  const [error, setError] = useState<unknown>(null);
  const [tests, setTests] = useState<Record<string, string>>({});
  const [probing, setProbing] = useState<Channel | null>(null);
  // One line of measurements: a channel's over all its models, or one model's on it.
  const healthText = (h: { latency_ms?: number | null; error_rate: number; ttft_ms?: number | null; stale: boolean }) =>
    `${h.latency_ms != null ? t('admin.healthValue', { ms: Math.round(h.latency_ms), errors: Math.round(h.error_rate * 100) }) : t('admin.healthNoLatency', { errors: Math.round(h.error_rate * 100) })}${h.ttft_ms != null ? ` · ${t('admin.healthTtft', { ms: Math.round(h.ttft_ms) })}` : ''}${h.stale ? ` · ${t('admin.healthStale')}` : ''}`;
  // The model each row's test asks (default: the channel's first).
  const [testModel, setTestModel] = useState<Record<string, string>>({});
  const [testingAll, setTestingAll] = useState<{ done: number; total: number } | null>(null);
  const [deleting, setDeleting] = useState<Channel | null>(null);
  const [fetched, setFetched] = useState<string[] | null>(null);
  const [fetching, setFetching] = useState(false);
  const channels = useQuery({ queryKey: qk.channels, queryFn: () => api<Channel[] | { items: Channel[] }>('channels') });
  const rows = Array.isArray(channels.data) ? channels.data : (channels.data?.items ?? []);
  // A channel's models change what chat offers and what the pricing page lists as unpriced.
  const refresh = () => {
    queryClient.invalidateQueries({ queryKey: qk.channels });
    queryClient.invalidateQueries({ queryKey: qk.unpriced });
    queryClient.invalidateQueries({ queryKey: qk.chatModels });
  };
  const set = (k: keyof typeof form) => (e: React.ChangeEvent<HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement>) => setForm({ ...form, [k]: e.target.value });
  // `?new=1` (the setup checklist's link) opens the new-channel form; the parameter is
  // dropped so closing the form and reloading does not open it again.
  const [params, setParams] = useSearchParams();
  const wantsNew = params.get('new') !== null;
  useEffect(() => {
    if (!wantsNew) return;
    setError(null);
    setForm(blank);
    setEditing('new');
    setParams({}, { replace: true });
  }, [wantsNew, setParams]);

  const open = (c: Channel | 'new') => {
    setError(null);
    setFetched(null);
    setForm(
      c === 'new'
        ? blank
        : {
            type: c.type,
            name: c.name,
            base_url: c.base_url,
            keys: '',
            models: c.models.join(', '),
            mapping: Object.entries(c.model_mapping ?? {}).map(([k, v]) => `${k}=${v}`).join(', '),
            groups: c.groups.join(', '),
            priority: String(c.priority),
            weight: String(c.weight),
            cost: String(c.cost_ratio_permille ?? 1000),
            lowBalance: c.low_balance_threshold != null ? String(c.low_balance_threshold) : '',
          },
    );
    setEditing(c);
  };

  const save = async (e: React.FormEvent) => {
    e.preventDefault();
    setError(null);
    const body: Record<string, unknown> = {
      type: form.type,
      name: form.name.trim(),
      base_url: form.base_url.trim() || undefined,
      models: list(form.models),
      model_mapping: parseMapping(form.mapping),
      priority: Number(form.priority) || 0,
      weight: Number(form.weight) || 1,
      cost_ratio_permille: Number(form.cost) || 1000,
      // An empty field is no threshold (0 turns a set one off).
      low_balance_threshold: form.lowBalance.trim() ? Number(form.lowBalance) : 0,
    };
    if (form.groups.trim()) body.groups = list(form.groups);
    // Stored keys are never sent back; an empty field keeps them.
    if (form.keys.trim()) body.keys = form.keys.split('\n').map((k) => k.trim()).filter(Boolean);
    try {
      if (editing === 'new') {
        if (!body.keys) body.keys = [];
        await api('channels', { body });
      } else if (editing) {
        await api(`channels/${editing.id}`, { method: 'PATCH', body });
      }
      setEditing(null);
      setForm(blank);
      refresh();
    } catch (err) {
      setError(err);
    }
  };

  const runTest = async (c: Channel) => {
    setTests((s) => ({ ...s, [c.id]: '…' }));
    const model = testModel[c.id];
    try {
      const r = await api<{ ok: boolean; latency_ms: number; message: string }>(`channels/${c.id}/test${model ? `?model=${encodeURIComponent(model)}` : ''}`, { method: 'POST' });
      setTests((s) => ({ ...s, [c.id]: r.ok ? t('admin.testOk', { ms: r.latency_ms }) : t('admin.testFailed', { message: r.message }) }));
    } catch (err) {
      setTests((s) => ({ ...s, [c.id]: t('admin.testFailed', { message: (err as Error).message }) }));
    }
  };
  const test = async (c: Channel) => {
    await runTest(c);
    refresh();
  };
  // Every channel, a few at a time; each row shows its result as soon as it is known.
  const testAll = async () => {
    const targets = rows.filter((c) => c.models.length > 0);
    setTestingAll({ done: 0, total: targets.length });
    await eachLimited(targets, TEST_ALL_CONCURRENCY, async (c) => {
      await runTest(c);
      setTestingAll((p) => (p ? { ...p, done: p.done + 1 } : p));
    });
    setTestingAll(null);
    refresh();
  };
  const refreshBalance = async (c: Channel) => {
    setError(null);
    await api(`channels/${c.id}/balance`, { method: 'POST' }).catch(setError);
    refresh();
  };
  const remove = async (c: Channel) => {
    try {
      await api(`channels/${c.id}`, { method: 'DELETE' });
      setDeleting(null);
      refresh();
    } catch (err) {
      setError(err);
      setDeleting(null);
    }
  };
  // The upstream's own model list: a saved channel's stored key, or the key typed in the form.
  const fetchModels = async () => {
    setError(null);
    setFetching(true);
    try {
      const keys = form.keys.split('\n').map((k) => k.trim()).filter(Boolean);
      const r =
        editing && editing !== 'new' && keys.length === 0 && form.type === editing.type && form.base_url.trim() === editing.base_url
          ? await api<{ models: string[] }>(`channels/${editing.id}/models`)
          : await api<{ models: string[] }>('channels/fetch-models', { body: { type: form.type, base_url: form.base_url.trim() || undefined, keys } });
      setFetched(r.models);
    } catch (err) {
      setError(err);
    } finally {
      setFetching(false);
    }
  };
  const chosen = list(form.models);
  const toggleModel = (m: string) =>
    setForm({ ...form, models: (chosen.includes(m) ? chosen.filter((x) => x !== m) : [...chosen, m]).join(', ') });

  return (
    <div className="space-y-3">
      <ChannelsFileNotice />
      <div className="flex flex-wrap items-center justify-end gap-2">
        {testingAll && <span className="text-sm text-muted-fg" role="status">{t('admin.testingAll', { done: testingAll.done, total: testingAll.total })}</span>}
        <Button variant="secondary" onClick={testAll} disabled={!!testingAll || rows.length === 0}>{t('admin.testAll')}</Button>
        <Button onClick={() => open('new')}>+ {t('admin.newChannel')}</Button>
      </div>
      <ErrorText error={channels.error ?? (editing ? null : error)} />
      <DataTable
        rows={rows}
        rowKey={(c) => c.id}
        columns={[
          { header: t('common.name'), cell: (c) => <span><span className="font-medium">{c.name}</span> <span className="text-xs text-muted-fg">{c.type}</span></span> },
          { header: t('admin.baseUrl'), cell: (c) => <span className="break-all text-xs">{c.base_url}</span> },
          { header: t('common.model'), cell: (c) => <span className="text-xs">{c.models.join(', ')}</span> },
          {
            header: t('common.status'),
            // Enabled is not the same as working: a failed last test shows next to it, so a
            // broken channel never reads as all green.
            cell: (c) => (
              <span className="flex flex-wrap gap-1" title={c.status_reason ?? ''}>
                <Badge tone={c.status !== 'enabled' ? 'danger' : testFailed(c) ? 'neutral' : 'ok'}>{v(c.status)}</Badge>
                {testFailed(c) && <span data-testid="channel-test-failed"><Badge tone="danger">{t('admin.lastTestFailed')}</Badge></span>}
              </span>
            ),
          },
          {
            header: t('admin.circuit'),
            // The breaker and the last failure at once: a channel failing right now is visible
            // without opening the request log.
            cell: (c) => (
              <span className="block space-y-0.5" data-testid="channel-circuit">
                <Badge tone={circuitTone(c.circuit)}>{v(c.circuit)}</Badge>
                {c.circuit_since && <span className="block text-xs text-muted-fg">{t('admin.circuitSince', { when: when(c.circuit_since) })}</span>}
                {c.last_error && (
                  <span className="block max-w-xs break-words text-xs text-danger" title={c.last_error}>
                    {t('admin.lastError', { error: c.last_error, when: when(c.last_error_at) })}
                  </span>
                )}
              </span>
            ),
          },
          {
            header: t('admin.health'),
            // What this instance measured: the latency and error rate the routing strategies use.
            cell: (c) => (
              <span className="text-xs" data-testid="channel-health">
                {c.health ? healthText(c.health) : t('admin.healthNone')}
                {/* Per model once more than one was asked of the channel: each routes by its own. */}
                {c.health && (c.health.models?.length ?? 0) > 1 && (
                  <span className="mt-0.5 block text-muted-fg" data-testid="channel-model-health">
                    {c.health.models.map((m) => (
                      <span key={m.model} className="block">
                        {`${m.model}: ${healthText(m)}`}
                      </span>
                    ))}
                  </span>
                )}
              </span>
            ),
          },
          {
            header: t('admin.balance'),
            cell: (c) => (
              <span className="flex flex-wrap items-center gap-1 text-xs" data-testid="channel-balance">
                {c.balance != null ? (
                  <span title={c.balance_at ? when(c.balance_at) : ''}>{`${c.balance.toFixed(2)} ${c.balance_currency ?? ''}`}</span>
                ) : (
                  '—'
                )}
                {c.balance_low && <Badge tone="danger">{t('admin.balanceLow')}</Badge>}
                {BALANCE_KINDS.includes(c.type) && (
                  <Button variant="secondary" size="sm" onClick={() => refreshBalance(c)}>{t('admin.balanceRefresh')}</Button>
                )}
              </span>
            ),
          },
          {
            header: t('admin.lastTest'),
            cell: (c) => (
              <span className="text-xs" data-testid="channel-test">
                {tests[c.id] ??
                  (c.last_test_at ? (
                    <span className={testFailed(c) ? 'text-danger' : undefined}>
                      {`${c.last_test_result === 'ok' ? t('admin.testOk', { ms: c.last_test_latency_ms ?? '?' }) : t('admin.testFailed', { message: c.last_test_result ?? '' })} · ${when(c.last_test_at)}`}
                    </span>
                  ) : (
                    '—'
                  ))}
              </span>
            ),
          },
          {
            header: t('common.actions'),
            cell: (c) => (
              <span className="flex flex-wrap justify-end gap-1">
                {c.models.length > 1 && (
                  <Select aria-label={t('admin.testModel')} className="h-8 max-w-[9rem] text-xs" value={testModel[c.id] ?? c.models[0]} onChange={(e) => setTestModel((m) => ({ ...m, [c.id]: e.target.value }))}>
                    {c.models.map((m) => (
                      <option key={m} value={m}>{m}</option>
                    ))}
                  </Select>
                )}
                <Button variant="secondary" size="sm" onClick={() => test(c)}>{t('admin.test')}</Button>
                <Button variant="secondary" size="sm" onClick={() => setProbing(c)}>{t('admin.probeModels')}</Button>
                <Button variant="secondary" size="sm" onClick={() => open(c)}>{t('common.edit')}</Button>
                <Button
                  variant="secondary"
                  size="sm"
                  onClick={async () => {
                    await api(`channels/${c.id}`, { method: 'PATCH', body: { status: c.status === 'enabled' ? 'disabled' : 'enabled' } }).catch(setError);
                    refresh();
                  }}
                >
                  {c.status === 'enabled' ? t('common.disable') : t('common.enable')}
                </Button>
                <Button variant="secondary" size="sm" onClick={() => setDeleting(c)}>{t('common.delete')}</Button>
              </span>
            ),
          },
        ]}
      />
      {probing && <ChannelProbes channel={probing} onClose={() => setProbing(null)} />}
      <Dialog open={editing !== null} onOpenChange={(o) => !o && setEditing(null)} title={editing === 'new' ? t('admin.newChannel') : t('admin.editChannel')} wide>
        <form className="space-y-3" onSubmit={save}>
          <div className="grid gap-3 sm:grid-cols-2">
            <Field label={t('admin.type')}>
              <Select
                className="w-full"
                name="type"
                value={form.type}
                onChange={(e) => setForm({ ...form, type: e.target.value, base_url: baseUrlForKind(form.type, e.target.value, form.base_url) })}
              >
                {KINDS.map(({ kind }) => (
                  <option key={kind} value={kind}>
                    {v(`kind_${kind}`)}
                  </option>
                ))}
              </Select>
            </Field>
            <Field label={t('common.name')}>
              <Input required name="channel-name" value={form.name} onChange={set('name')} />
            </Field>
          </div>
          <Field label={t('admin.baseUrl')}>
            <Input name="base-url" placeholder={KINDS.find((k) => k.kind === form.type)?.url} value={form.base_url} onChange={set('base_url')} />
          </Field>
          <Field label={t('admin.keysField')} hint={editing && editing !== 'new' ? t('admin.keysKeep', { n: editing.key_count }) : undefined}>
            <Textarea name="keys" rows={2} autoComplete="off" spellCheck={false} value={form.keys} onChange={set('keys')} />
          </Field>
          <Field label={t('admin.modelsField')}>
            <span className="flex gap-2">
              <Input name="models" required value={form.models} onChange={set('models')} />
              <Button variant="secondary" onClick={fetchModels} disabled={fetching}>{fetching ? t('common.loading') : t('admin.fetchModels')}</Button>
            </span>
          </Field>
          {fetched && (
            <div className="space-y-1" data-testid="fetched-models">
              <div className="flex items-center justify-between gap-2 text-xs text-muted-fg">
                <span>{t('admin.fetchedModels', { n: fetched.length })}</span>
                <button type="button" className="text-primary underline" onClick={() => setForm({ ...form, models: [...new Set([...chosen, ...fetched])].join(', ') })}>
                  {t('admin.addAllModels')}
                </button>
              </div>
              <div className="flex max-h-40 flex-wrap gap-1 overflow-y-auto">
                {fetched.map((m) => (
                  <button
                    key={m}
                    type="button"
                    aria-pressed={chosen.includes(m)}
                    onClick={() => toggleModel(m)}
                    className={chosen.includes(m) ? 'rounded-full border border-primary bg-primary/10 px-2 py-1 text-xs text-primary' : 'rounded-full border border-border px-2 py-1 text-xs'}
                  >
                    {m}
                  </button>
                ))}
              </div>
            </div>
          )}
          <Field label={t('admin.mapping')}>
            <Input name="mapping" placeholder="gpt-4o=my-deployment" value={form.mapping} onChange={set('mapping')} />
          </Field>
          <div className="grid grid-cols-3 gap-3">
            <Field label={t('admin.groups')}>
              <Input value={form.groups} onChange={set('groups')} placeholder="default" />
            </Field>
            <Field label={t('admin.priority')}>
              <Input type="number" value={form.priority} onChange={set('priority')} />
            </Field>
            <Field label={t('admin.weight')}>
              <Input type="number" min="1" value={form.weight} onChange={set('weight')} />
            </Field>
          </div>
          <div className="grid gap-3 sm:grid-cols-2">
            <Field label={t('admin.costRatio')}>
              <Input name="cost-ratio" type="number" min="1" value={form.cost} onChange={set('cost')} />
            </Field>
            <Field label={t('admin.lowBalance')} hint={t('admin.lowBalanceHint')}>
              <Input name="low-balance" type="number" min="0" step="any" value={form.lowBalance} onChange={set('lowBalance')} />
            </Field>
          </div>
          <ErrorText error={error} />
          <div className="flex justify-end gap-2">
            <Button variant="secondary" onClick={() => setEditing(null)}>{t('common.cancel')}</Button>
            <Button type="submit">{t('common.save')}</Button>
          </div>
        </form>
      </Dialog>
      <Dialog open={deleting !== null} onOpenChange={(o) => !o && setDeleting(null)} title={t('admin.deleteChannelTitle')}>
        {deleting && (
          <div className="space-y-3">
            <p className="text-sm">{t('admin.deleteChannelConfirm', { name: deleting.name })}</p>
            <div className="flex justify-end gap-2">
              <Button variant="secondary" onClick={() => setDeleting(null)}>{t('common.cancel')}</Button>
              <Button variant="danger" onClick={() => remove(deleting)}>{t('common.delete')}</Button>
            </div>
          </div>
        )}
      </Dialog>
      <RoutingPanel />
      <ChannelStatsPanel />
    </div>
  );
}
