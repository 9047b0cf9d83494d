import type { FormEvent } from 'react';
import { useState } from 'react';
import { api } from '../../lib/api';
import type { Plugin } from '../../lib/types';
import { useT } from '../../i18n';
import { Button, ErrorText, Field, Input, Select, Textarea, PasswordInput } from '../../components/ui';

/**
 * What the form sends: checked here first so a pasted JSON document's error shows at once. A
 * document that does not open with `{` is YAML and goes as its text (the server reads it).
 */
export function registration(form: RegisterForm): { body: Record<string, unknown> } | { error: 'json' | 'url' | 'name' } {
  if (!form.name.trim()) return { error: 'name' };
  const auth: Record<string, string> = { kind: form.authKind };
  if (form.authName.trim()) auth.name = form.authName.trim();
  if (form.secret) auth.secret = form.secret;
  const body: Record<string, unknown> = { name: form.name.trim(), description: form.description.trim(), kind: form.kind, category: form.category.trim() || undefined, auth };
  if (form.kind === 'openapi') {
    const text = form.document.trim();
    if (text.startsWith('{')) {
      try {
        body.openapi = JSON.parse(text);
      } catch {
        return { error: 'json' };
      }
    } else {
      body.openapi = form.document;
    }
    if (form.serverUrl.trim()) body.server_url = form.serverUrl.trim();
  } else {
    if (!/^https?:\/\//i.test(form.serverUrl.trim())) return { error: 'url' };
    body.server_url = form.serverUrl.trim();
  }
  return { body };
}

/** The fields of the form. */
export interface RegisterForm {
  kind: 'openapi' | 'mcp';
  name: string;
  description: string;
  category: string;
  document: string;
  serverUrl: string;
  authKind: 'none' | 'api_key_header' | 'api_key_query' | 'bearer';
  authName: string;
  secret: string;
}

const empty: RegisterForm = { kind: 'openapi', name: '', description: '', category: '', document: '', serverUrl: '', authKind: 'none', authName: '', secret: '' };

/**
 * Registers an OpenAPI or MCP plugin: for everyone (`admin/plugins`, admins) or for the user
 * alone (`plugins`). The key is sent once and never shown again.
 */
export function RegisterPlugin({ endpoint, onDone }: { endpoint: 'plugins' | 'admin/plugins'; onDone: (p: Plugin) => void }) {
  const t = useT();
  const [form, setForm] = useState<RegisterForm>(empty);
  const [error, setError] = useState<unknown>(null);
  const [invalid, setInvalid] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const set = (patch: Partial<RegisterForm>) => setForm((f) => ({ ...f, ...patch }));
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const checked = registration(form);
    if ('error' in checked) {
      setInvalid(checked.error === 'json' ? t('plugins.badJson') : checked.error === 'url' ? t('plugins.badUrl') : t('plugins.needName'));
      return;
    }
    setBusy(true);
    setInvalid(null);
    setError(null);
    try {
      const created = await api<Plugin>(endpoint, { method: 'POST', body: checked.body });
      setForm(empty);
      onDone(created);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="space-y-3" onSubmit={submit} data-testid="register-plugin">
      <div className="grid gap-3 sm:grid-cols-2">
        <Field label={t('plugins.kind')}>
          <Select className="w-full" value={form.kind} onChange={(e) => set({ kind: e.target.value as RegisterForm['kind'] })}>
            <option value="openapi">OpenAPI</option>
            <option value="mcp">MCP (Streamable HTTP, SSE)</option>
          </Select>
        </Field>
        <Field label={t('common.name')}>
          <Input value={form.name} onChange={(e) => set({ name: e.target.value })} required maxLength={80} />
        </Field>
        <Field label={t('plugins.description')}>
          <Input value={form.description} onChange={(e) => set({ description: e.target.value })} maxLength={2000} />
        </Field>
        <Field label={t('plugins.category')}>
          <Input value={form.category} onChange={(e) => set({ category: e.target.value })} maxLength={40} placeholder="tools" />
        </Field>
      </div>
      {form.kind === 'openapi' && (
        <Field label={t('plugins.document')} hint={t('plugins.documentHint')}>
          <Textarea rows={8} className="font-mono text-xs" value={form.document} onChange={(e) => set({ document: e.target.value })} required />
        </Field>
      )}
      <Field label={form.kind === 'mcp' ? t('plugins.mcpUrl') : t('plugins.serverUrl')} hint={form.kind === 'openapi' ? t('plugins.serverUrlHint') : undefined}>
        <Input type="url" value={form.serverUrl} onChange={(e) => set({ serverUrl: e.target.value })} required={form.kind === 'mcp'} placeholder="https://" />
      </Field>
      <div className="grid gap-3 sm:grid-cols-3">
        <Field label={t('plugins.auth')}>
          <Select className="w-full" value={form.authKind} onChange={(e) => set({ authKind: e.target.value as RegisterForm['authKind'] })}>
            <option value="none">{t('plugins.authNone')}</option>
            <option value="bearer">{t('plugins.authBearer')}</option>
            <option value="api_key_header">{t('plugins.authHeader')}</option>
            <option value="api_key_query">{t('plugins.authQuery')}</option>
          </Select>
        </Field>
        {form.authKind.startsWith('api_key') && (
          <Field label={t('plugins.authName')}>
            <Input value={form.authName} onChange={(e) => set({ authName: e.target.value })} placeholder="X-Api-Key" required />
          </Field>
        )}
        {form.authKind !== 'none' && (
          <Field label={t('plugins.secret')} hint={t('plugins.secretHint')}>
            <PasswordInput autoComplete="off" value={form.secret} onChange={(e) => set({ secret: e.target.value })} />
          </Field>
        )}
      </div>
      {invalid && (
        <div role="alert" className="rounded-md border border-danger/40 bg-danger/10 px-3 py-2 text-sm text-danger">
          {invalid}
        </div>
      )}
      <ErrorText error={error} />
      <Button type="submit" disabled={busy}>
        {busy ? t('common.loading') : t('plugins.register')}
      </Button>
    </form>
  );
}
