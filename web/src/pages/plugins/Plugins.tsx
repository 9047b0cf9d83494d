import type { FormEvent } from 'react';
import { useMemo, useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { num } from '../../lib/format';
import type { Plugin } from '../../lib/types';
import { useT } from '../../i18n';
import { Badge, Button, Card, ErrorText, Field, Input, PageHeader, Select, PasswordInput } from '../../components/ui';
import { Dialog } from '../../components/ui/dialog';
import { qk } from '../../lib/queryKeys';
import { RegisterPlugin } from './RegisterPlugin';
import { initialValues, schemaFields, settingsValue, type FieldProblem, type SettingField } from './settingsForm';

/** A plugin's badge text: its first letter (icons are names, never markup or remote images). */
export function pluginInitial(p: Pick<Plugin, 'name'>): string {
  return Array.from(p.name.trim())[0]?.toUpperCase() ?? '?';
}

/** The badge colour by kind. */
function kindTone(kind: string): string {
  if (kind === 'builtin') return 'bg-primary/20 text-primary';
  if (kind === 'mcp') return 'bg-ok/20 text-ok';
  return 'bg-muted text-fg';
}

/** The plugins matching `query` (name, description, tool names) and `category` ('' for all). */
export function filterPlugins(plugins: Plugin[], query: string, category: string): Plugin[] {
  const q = query.trim().toLowerCase();
  return plugins.filter(
    (p) =>
      (!category || p.category === category) &&
      (!q || p.name.toLowerCase().includes(q) || p.description.toLowerCase().includes(q) || p.tools.some((tool) => tool.name.toLowerCase().includes(q))),
  );
}

/** A plugin's settings (a form drawn from its settings schema) and secrets (each required
 * secret, written only: stored ones show as set). */
function Configure({ plugin, onClose }: { plugin: Plugin; onClose: () => void }) {
  const t = useT();
  const queryClient = useQueryClient();
  const names = plugin.required_secrets.length ? plugin.required_secrets : ['api_key'];
  const fields = useMemo(() => schemaFields(plugin.settings_schema), [plugin.settings_schema]);
  const [settings, setSettings] = useState<Record<string, string>>(() => initialValues(fields, plugin.settings));
  const [values, setValues] = useState<Record<string, string>>({});
  const [problem, setProblem] = useState<FieldProblem | null>(null);
  const [error, setError] = useState<unknown>(null);
  const save = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    const checked = settingsValue(fields, settings, plugin.settings);
    if ('problem' in checked) {
      setProblem(checked.problem);
      return;
    }
    setProblem(null);
    const secrets = Object.fromEntries(Object.entries(values).filter(([, v]) => v));
    try {
      await api(`plugins/${plugin.id}/preferences`, {
        method: 'PUT',
        body: {
          enabled: plugin.enabled,
          settings: fields.length ? checked.value : undefined,
          secrets: Object.keys(secrets).length ? secrets : undefined,
        },
      });
      await queryClient.invalidateQueries({ queryKey: qk.plugins.all });
      onClose();
    } catch (err) {
      setError(err);
    }
  };
  const problemText = (f: SettingField) =>
    problem?.field === f.name ? t(`plugins.settingProblem.${problem.reason}`, { limit: problem.limit ?? '' }) : undefined;
  return (
    <form className="space-y-3" onSubmit={save} noValidate>
      {fields.length > 0 && (
        <fieldset className="space-y-3" data-testid="plugin-settings">
          <legend className="text-sm font-medium">{t('plugins.settings')}</legend>
          {fields.map((f) => (
            <Field key={f.name} label={f.required ? `${f.title} *` : f.title} hint={problemText(f) ?? f.description}>
              {f.kind === 'boolean' ? (
                <input
                  type="checkbox"
                  name={`setting-${f.name}`}
                  aria-label={f.title}
                  className="h-4 w-4"
                  checked={settings[f.name] === 'true'}
                  onChange={(e) => setSettings((v) => ({ ...v, [f.name]: String(e.target.checked) }))}
                />
              ) : f.kind === 'enum' ? (
                <Select name={`setting-${f.name}`} value={settings[f.name] ?? ''} onChange={(e) => setSettings((v) => ({ ...v, [f.name]: e.target.value }))}>
                  {!f.required && <option value="">—</option>}
                  {(f.choices ?? []).map((c) => (
                    <option key={c} value={c}>
                      {c}
                    </option>
                  ))}
                </Select>
              ) : (
                <Input
                  name={`setting-${f.name}`}
                  type={f.kind === 'string' ? 'text' : 'number'}
                  aria-invalid={problem?.field === f.name || undefined}
                  value={settings[f.name] ?? ''}
                  onChange={(e) => setSettings((v) => ({ ...v, [f.name]: e.target.value }))}
                />
              )}
            </Field>
          ))}
        </fieldset>
      )}
      <p className="text-sm text-muted-fg">{t('plugins.secretsNote')}</p>
      {names.map((name) => (
        <Field key={name} label={name} hint={plugin.secrets_set.includes(name) ? t('plugins.secretSet') : undefined}>
          <PasswordInput autoComplete="off" value={values[name] ?? ''} onChange={(e) => setValues((v) => ({ ...v, [name]: e.target.value }))} />
        </Field>
      ))}
      <ErrorText error={error} />
      <div className="flex justify-end gap-2">
        <Button type="button" variant="secondary" onClick={onClose}>
          {t('common.cancel')}
        </Button>
        <Button type="submit">{t('common.save')}</Button>
      </div>
    </form>
  );
}

/** The built-ins' names and descriptions in the UI language (the server stores English). */
function useBuiltInText() {
  const t = useT();
  return (p: Plugin) =>
    p.id === 'builtin-web-search'
      ? { name: t('tools.webSearch'), description: t('plugins.webSearchAbout') }
      : p.id === 'builtin-image'
        ? { name: t('tools.generateImage'), description: t('plugins.imageAbout') }
        : p.id === 'builtin-code'
          ? { name: t('tools.runCode'), description: t('plugins.codeAbout') }
          : { name: p.name, description: p.description };
}

function PluginCard({ plugin, onConfigure }: { plugin: Plugin; onConfigure: () => void }) {
  const t = useT();
  const text = useBuiltInText()(plugin);
  const queryClient = useQueryClient();
  const [error, setError] = useState<unknown>(null);
  const toggle = async () => {
    setError(null);
    try {
      await api(`plugins/${plugin.id}/preferences`, { method: 'PUT', body: { enabled: !plugin.enabled } });
      await queryClient.invalidateQueries({ queryKey: qk.plugins.all });
    } catch (err) {
      setError(err);
    }
  };
  const remove = async () => {
    try {
      await api(`plugins/${plugin.id}`, { method: 'DELETE' });
      await queryClient.invalidateQueries({ queryKey: qk.plugins.all });
    } catch (err) {
      setError(err);
    }
  };
  return (
    <Card className="flex flex-col gap-2 p-4" data-testid="plugin-card">
      <div className="flex items-start gap-3">
        <span className={`flex h-10 w-10 shrink-0 items-center justify-center rounded-lg text-lg font-semibold ${kindTone(plugin.kind)}`} aria-hidden>
          {pluginInitial(plugin)}
        </span>
        <div className="min-w-0 flex-1">
          <div className="flex flex-wrap items-center gap-1">
            <h2 className="truncate font-semibold">{text.name}</h2>
            {plugin.scope === 'private' && <Badge tone="primary">{t('plugins.private')}</Badge>}
            {plugin.enabled && <Badge tone="ok">{t('plugins.enabled')}</Badge>}
          </div>
          <p className="text-sm text-muted-fg">{text.description}</p>
        </div>
      </div>
      {plugin.tools.length > 0 && (
        <div className="flex flex-wrap gap-1">
          {plugin.tools.map((tool) => (
            <code key={tool.name} className="rounded bg-muted px-1.5 py-0.5 text-xs" title={tool.description}>
              {tool.name}
            </code>
          ))}
        </div>
      )}
      {!plugin.available && <p className="text-xs text-muted-fg">{t('plugins.notSetUp')}</p>}
      <ErrorText error={error} />
      <div className="mt-auto flex flex-wrap items-center gap-2 pt-1">
        <Button size="sm" variant={plugin.enabled ? 'secondary' : 'primary'} onClick={toggle} disabled={!plugin.available && !plugin.enabled}>
          {plugin.enabled ? t('common.disable') : t('common.enable')}
        </Button>
        {plugin.kind !== 'builtin' && (
          <Button size="sm" variant="ghost" onClick={onConfigure}>
            {t('plugins.configure')}
          </Button>
        )}
        {plugin.scope === 'private' && (
          <Button size="sm" variant="ghost" onClick={remove}>
            {t('common.delete')}
          </Button>
        )}
        {plugin.price_per_call > 0 && <Badge>{t('tools.price', { price: num(plugin.price_per_call) })}</Badge>}
        {plugin.requires_approval && <Badge tone="primary">{t('plugins.requiresApproval')}</Badge>}
        <span className="ml-auto text-xs text-muted-fg">{t('plugins.calls', { n: num(plugin.your_calls), total: num(plugin.calls) })}</span>
      </div>
    </Card>
  );
}

/** The plugin market: browse, search, enable, configure; add a private plugin. */
export default function Plugins() {
  const t = useT();
  const queryClient = useQueryClient();
  const [query, setQuery] = useState('');
  const [category, setCategory] = useState('');
  const [configuring, setConfiguring] = useState<Plugin | null>(null);
  const [adding, setAdding] = useState(false);
  const plugins = useQuery({ queryKey: qk.plugins.list, queryFn: () => api<{ items: Plugin[] }>('plugins') });
  const items = useMemo(() => plugins.data?.items ?? [], [plugins.data]);
  const categories = useMemo(() => [...new Set(items.map((p) => p.category))].sort(), [items]);
  const shown = filterPlugins(items, query, category);
  return (
    <div className="mx-auto max-w-6xl p-4">
      <PageHeader title={t('plugins.title')}>
        <Button onClick={() => setAdding(true)}>+ {t('plugins.addOwn')}</Button>
      </PageHeader>
      <p className="mb-3 text-sm text-muted-fg">{t('plugins.intro')}</p>
      <div className="mb-4 flex flex-wrap gap-2">
        <Input className="max-w-xs" type="search" placeholder={t('common.search')} aria-label={t('common.search')} value={query} onChange={(e) => setQuery(e.target.value)} />
        <Select className="w-auto" value={category} onChange={(e) => setCategory(e.target.value)} aria-label={t('plugins.category')}>
          <option value="">{t('common.all')}</option>
          {categories.map((c) => (
            <option key={c} value={c}>
              {c}
            </option>
          ))}
        </Select>
      </div>
      <ErrorText error={plugins.error} />
      {plugins.isLoading ? (
        <p className="text-muted-fg">{t('common.loading')}</p>
      ) : shown.length === 0 ? (
        <p className="text-muted-fg">{t('common.none')}</p>
      ) : (
        <div className="grid gap-3 sm:grid-cols-2 lg:grid-cols-3">
          {shown.map((p) => (
            <PluginCard key={p.id} plugin={p} onConfigure={() => setConfiguring(p)} />
          ))}
        </div>
      )}
      <Dialog open={configuring !== null} onOpenChange={(o) => !o && setConfiguring(null)} title={configuring ? t('plugins.configureName', { name: configuring.name }) : ''}>
        {configuring && <Configure plugin={configuring} onClose={() => setConfiguring(null)} />}
      </Dialog>
      <Dialog open={adding} onOpenChange={setAdding} title={t('plugins.addOwn')} wide>
        <p className="mb-3 text-sm text-muted-fg">{t('plugins.addOwnNote')}</p>
        <RegisterPlugin
          endpoint="plugins"
          onDone={() => {
            setAdding(false);
            void queryClient.invalidateQueries({ queryKey: qk.plugins.all });
          }}
        />
      </Dialog>
    </div>
  );
}
