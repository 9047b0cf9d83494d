import type { FormEvent } from 'react';
import { useEffect, useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { num } from '../../lib/format';
import type { Plugin, PluginSettings } from '../../lib/types';
import { useT } from '../../i18n';
import { Badge, Button, Card, DataTable, ErrorText, Field, Input, Select, PasswordInput } from '../../components/ui';
import { qk } from '../../lib/queryKeys';
import { RegisterPlugin } from '../plugins/RegisterPlugin';

/** The search providers, with whether each needs a key, an address, an engine id. */
export const providers = [
  { id: 'searxng', label: 'SearXNG', key: false, url: true, cx: false },
  { id: 'tavily', label: 'Tavily', key: true, url: false, cx: false },
  { id: 'serper', label: 'Serper', key: true, url: false, cx: false },
  { id: 'bing', label: 'Bing Web Search', key: true, url: false, cx: false },
  { id: 'google', label: 'Google Programmable Search', key: true, url: false, cx: true },
  { id: 'bocha', label: '博查 Bocha', key: true, url: false, cx: false },
] as const;

type ProviderId = (typeof providers)[number]['id'] | '';

interface SettingsForm {
  provider: ProviderId;
  baseUrl: string;
  apiKey: string;
  engineId: string;
  count: string;
  imageModel: string;
  samplingModel: string;
  allowPrivate: boolean;
  allowPrivateUsers: boolean;
  timeout: string;
  /** The code interpreter; absent leaves it as stored. */
  code?: CodeForm;
}

/** The code interpreter's switch and limits as typed (numbers as text). */
export interface CodeForm {
  enabled: boolean;
  cpu_secs: string;
  wall_secs: string;
  memory_mb: string;
  max_processes: string;
  output_bytes: string;
  disk_mb: string;
  max_files: string;
}

const codeLimits = [
  ['cpu_secs', 'plugins.codeCpu'],
  ['wall_secs', 'plugins.codeWall'],
  ['memory_mb', 'plugins.codeMemory'],
  ['max_processes', 'plugins.codeProcesses'],
  ['output_bytes', 'plugins.codeOutput'],
  ['disk_mb', 'plugins.codeDisk'],
  ['max_files', 'plugins.codeFiles'],
] as const;

/** The `code` part of the settings body: the limits as numbers (the server checks ranges). */
export function codeBody(c: CodeForm) {
  const limits: Record<string, number> = {};
  for (const [key] of codeLimits) {
    const n = Number(c[key]);
    if (c[key].trim() && Number.isFinite(n)) limits[key] = n;
  }
  return { enabled: c.enabled, limits };
}

/** The request body for `PUT admin/plugins/settings`; an empty key keeps the stored one. */
export function settingsBody(f: SettingsForm) {
  return {
    search: f.provider
      ? {
          provider: f.provider,
          base_url: f.baseUrl.trim() || null,
          api_key: f.apiKey || null,
          engine_id: f.engineId.trim() || null,
          count: Number(f.count) || 5,
        }
      : null,
    image_model: f.imageModel.trim() || null,
    sampling_model: f.samplingModel.trim() || null,
    allow_private_addresses: f.allowPrivate,
    allow_private_addresses_for_user_plugins: f.allowPrivate && f.allowPrivateUsers,
    tool_timeout_secs: f.timeout.trim() ? Number(f.timeout) : null,
    ...(f.code ? { code: codeBody(f.code) } : {}),
  };
}

function BuiltIns() {
  const t = useT();
  const queryClient = useQueryClient();
  const settings = useQuery({ queryKey: qk.plugins.settings, queryFn: () => api<PluginSettings>('admin/plugins/settings') });
  const [form, setForm] = useState<SettingsForm>({ provider: '', baseUrl: '', apiKey: '', engineId: '', count: '5', imageModel: '', samplingModel: '', allowPrivate: false, allowPrivateUsers: false, timeout: '' });
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  useEffect(() => {
    const s = settings.data;
    if (!s) return;
    setForm({
      provider: (s.search?.provider ?? '') as ProviderId,
      baseUrl: s.search?.base_url ?? '',
      apiKey: '',
      engineId: s.search?.engine_id ?? '',
      count: String(s.search?.count ?? 5),
      imageModel: s.image_model ?? '',
      samplingModel: s.sampling_model ?? '',
      allowPrivate: s.allow_private_addresses,
      allowPrivateUsers: s.allow_private_addresses_for_user_plugins,
      timeout: s.tool_timeout_secs ? String(s.tool_timeout_secs) : '',
      code: {
        enabled: s.code.enabled,
        cpu_secs: String(s.code.limits.cpu_secs),
        wall_secs: String(s.code.limits.wall_secs),
        memory_mb: String(s.code.limits.memory_mb),
        max_processes: String(s.code.limits.max_processes),
        output_bytes: String(s.code.limits.output_bytes),
        disk_mb: String(s.code.limits.disk_mb),
        max_files: String(s.code.limits.max_files),
      },
    });
  }, [settings.data]);
  const set = (patch: Partial<SettingsForm>) => {
    setSaved(false);
    setForm((f) => ({ ...f, ...patch }));
  };
  const provider = providers.find((p) => p.id === form.provider);
  const save = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      await api('admin/plugins/settings', { method: 'PUT', body: settingsBody(form) });
      await queryClient.invalidateQueries({ queryKey: qk.plugins.all });
      setSaved(true);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <Card className="p-4">
      <h2 className="mb-3 font-semibold">{t('plugins.builtIns')}</h2>
      <form className="space-y-3" onSubmit={save} data-testid="plugin-settings">
        {/* Nothing can be typed or saved until the settings load: what was typed would be
            replaced by them, and a save before them would reset every setting to the defaults. */}
        <fieldset className="space-y-3" disabled={!settings.data} aria-busy={!settings.data}>
          <div className="grid gap-3 sm:grid-cols-2">
            <Field label={t('plugins.searchProvider')}>
              <Select className="w-full" value={form.provider} onChange={(e) => set({ provider: e.target.value as ProviderId })}>
                <option value="">{t('plugins.searchOff')}</option>
                {providers.map((p) => (
                  <option key={p.id} value={p.id}>
                    {p.label}
                  </option>
                ))}
              </Select>
            </Field>
            {provider && (
              <Field label={t('plugins.searchCount')}>
                <Input type="number" min={1} max={20} value={form.count} onChange={(e) => set({ count: e.target.value })} />
              </Field>
            )}
            {provider && (
              <Field label={t('plugins.searchUrl')} hint={provider.url ? undefined : t('plugins.searchUrlHint')}>
                <Input type="url" value={form.baseUrl} onChange={(e) => set({ baseUrl: e.target.value })} required={provider.url} placeholder="https://" />
              </Field>
            )}
            {provider?.key && (
              <Field label={t('plugins.searchKey')} hint={settings.data?.search?.key_set ? t('plugins.secretSet') : undefined}>
                <PasswordInput autoComplete="off" value={form.apiKey} onChange={(e) => set({ apiKey: e.target.value })} />
              </Field>
            )}
            {provider?.cx && (
              <Field label={t('plugins.engineId')}>
                <Input value={form.engineId} onChange={(e) => set({ engineId: e.target.value })} required />
              </Field>
            )}
            <Field label={t('plugins.imageModel')} hint={t('plugins.imageModelHint')}>
              <Input value={form.imageModel} onChange={(e) => set({ imageModel: e.target.value })} placeholder="gpt-image-1" />
            </Field>
            <Field label={t('plugins.samplingModel')} hint={t('plugins.samplingModelHint')}>
              <Input value={form.samplingModel} onChange={(e) => set({ samplingModel: e.target.value })} placeholder="gpt-4o-mini" />
            </Field>
            <Field label={t('plugins.timeout')}>
              <Input type="number" min={1} max={300} value={form.timeout} onChange={(e) => set({ timeout: e.target.value })} placeholder="60" />
            </Field>
          </div>
          <label className="flex items-start gap-2 text-sm">
            <input type="checkbox" className="mt-1" checked={form.allowPrivate} onChange={(e) => set({ allowPrivate: e.target.checked })} />
            <span>
              {t('plugins.allowPrivate')}
              <span className="block text-xs text-muted-fg">{t('plugins.allowPrivateHint')}</span>
            </span>
          </label>
          {form.allowPrivate && (
            <label className="ml-6 flex items-start gap-2 text-sm">
              <input type="checkbox" className="mt-1" checked={form.allowPrivateUsers} onChange={(e) => set({ allowPrivateUsers: e.target.checked })} />
              <span>
                {t('plugins.allowPrivateUsers')}
                <span className="block text-xs text-muted-fg">{t('plugins.allowPrivateUsersHint')}</span>
              </span>
            </label>
          )}
          {form.code && settings.data && (
            <fieldset className="space-y-3 rounded-md border border-border p-3" data-testid="code-settings">
              <legend className="px-1 text-sm font-medium">{t('plugins.codeTitle')}</legend>
              <p className="text-xs text-muted-fg">{t('plugins.codeHint')}</p>
              {!settings.data.code.available && (
                <p className="text-sm text-danger" data-testid="code-unavailable">
                  {t('plugins.codeUnavailable', { reason: settings.data.code.unavailable_reason ?? '' })}
                </p>
              )}
              {settings.data.code.available && settings.data.code.javascript && <p className="text-xs text-muted-fg">{t('plugins.codeJs')}</p>}
              <label className="flex items-center gap-2 text-sm">
                <input
                  type="checkbox"
                  checked={form.code.enabled}
                  disabled={!settings.data.code.available && !form.code.enabled}
                  onChange={(e) => form.code && set({ code: { ...form.code, enabled: e.target.checked } })}
                />
                {t('plugins.codeEnable')}
              </label>
              <div className="grid gap-3 sm:grid-cols-2">
                {codeLimits.map(([key, label]) => (
                  <Field key={key} label={t(label)}>
                    <Input
                      type="number"
                      min={0}
                      value={form.code?.[key] ?? ''}
                      onChange={(e) => form.code && set({ code: { ...form.code, [key]: e.target.value } })}
                    />
                  </Field>
                ))}
              </div>
            </fieldset>
          )}
          <div className="flex items-center gap-2">
            <Button type="submit">{t('common.save')}</Button>
            {saved && <span className="text-sm text-ok">{t('common.saved')}</span>}
          </div>
        </fieldset>
        <ErrorText error={error ?? settings.error} />
      </form>
    </Card>
  );
}

/** The PATCH body of a plugin's price and approval, from the editor's fields. */
export function pluginPatchBody(price: string, approval: boolean) {
  return { price_per_call: Math.max(0, Math.trunc(Number(price) || 0)), requires_approval: approval };
}

/** Edits one plugin's price per call and whether its calls need the user's approval. */
function PluginEditor({ plugin, onDone }: { plugin: Plugin; onDone: () => void }) {
  const t = useT();
  const [price, setPrice] = useState(String(plugin.price_per_call));
  const [approval, setApproval] = useState(plugin.requires_approval);
  const [error, setError] = useState<unknown>(null);
  const save = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      await api(`admin/plugins/${encodeURIComponent(plugin.id)}`, { method: 'PATCH', body: pluginPatchBody(price, approval) });
      onDone();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <Card className="p-4">
      <form onSubmit={save} className="space-y-3" data-testid="plugin-editor">
        <h2 className="font-semibold">
          {t('plugins.edit')} · {plugin.name}
        </h2>
        <Field label={t('plugins.price')}>
          <Input type="number" min={0} step={1} value={price} onChange={(e) => setPrice(e.target.value)} data-testid="plugin-price" />
        </Field>
        <label className="flex items-center gap-2 text-sm">
          <input type="checkbox" checked={approval} onChange={(e) => setApproval(e.target.checked)} data-testid="plugin-approval" />
          {t('plugins.requiresApproval')}
        </label>
        <ErrorText error={error} />
        <div className="flex gap-2">
          <Button type="submit">{t('common.save')}</Button>
          <Button type="button" variant="secondary" onClick={onDone}>
            {t('common.cancel')}
          </Button>
        </div>
      </form>
    </Card>
  );
}

/** Admin → Plugins: the built-ins' setup, publishing OpenAPI and MCP plugins, every plugin. */
export function AdminPlugins() {
  const t = useT();
  const queryClient = useQueryClient();
  const all = useQuery({ queryKey: qk.plugins.admin, queryFn: () => api<{ items: Plugin[] }>('admin/plugins') });
  const [error, setError] = useState<unknown>(null);
  const [editing, setEditing] = useState<Plugin | null>(null);
  const remove = async (p: Plugin) => {
    setError(null);
    try {
      await api(`admin/plugins/${p.id}`, { method: 'DELETE' });
      await queryClient.invalidateQueries({ queryKey: qk.plugins.all });
    } catch (err) {
      setError(err);
    }
  };
  return (
    <div className="space-y-4">
      <BuiltIns />
      <Card className="p-4">
        <h2 className="mb-1 font-semibold">{t('plugins.publish')}</h2>
        <p className="mb-3 text-sm text-muted-fg">{t('plugins.publishNote')}</p>
        <RegisterPlugin endpoint="admin/plugins" onDone={() => void queryClient.invalidateQueries({ queryKey: qk.plugins.all })} />
      </Card>
      <ErrorText error={error ?? all.error} />
      <DataTable
        rows={all.data?.items ?? []}
        rowKey={(p) => p.id}
        columns={[
          { header: t('common.name'), cell: (p) => <span className="font-medium">{p.name}</span> },
          { header: t('plugins.kind'), cell: (p) => <Badge>{p.kind}</Badge> },
          { header: t('plugins.scope'), cell: (p) => (p.scope === 'private' ? t('plugins.private') : t('plugins.public')) },
          { header: t('plugins.tools'), cell: (p) => <span className="text-xs">{p.tools.map((x) => x.name).join(', ') || '—'}</span> },
          { header: t('plugins.callsHeader'), cell: (p) => num(p.calls), className: 'text-right' },
          {
            header: t('plugins.price'),
            cell: (p) => (
              <span className="text-xs">
                {num(p.price_per_call)}
                {p.requires_approval && <> <Badge tone="primary">{t('tools.approve')}</Badge></>}
              </span>
            ),
            className: 'text-right',
          },
          {
            header: t('common.actions'),
            cell: (p) => (
              <div className="flex gap-1">
                <Button size="sm" variant="secondary" onClick={() => setEditing(p)} data-testid={`edit-${p.id}`}>
                  {t('plugins.edit')}
                </Button>
                {p.kind !== 'builtin' && (
                  <Button size="sm" variant="danger" onClick={() => remove(p)}>
                    {t('common.delete')}
                  </Button>
                )}
              </div>
            ),
          },
        ]}
      />
      {editing && (
        <PluginEditor
          key={editing.id}
          plugin={editing}
          onDone={() => {
            setEditing(null);
            void queryClient.invalidateQueries({ queryKey: qk.plugins.all });
          }}
        />
      )}
    </div>
  );
}
