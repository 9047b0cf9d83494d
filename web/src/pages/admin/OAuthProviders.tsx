import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { useT, type MessageKey } from '../../i18n';
import { Badge, Button, CopyButton, DataTable, ErrorText, Field, Input, Select, PasswordInput } from '../../components/ui';
import { Dialog } from '../../components/ui/dialog';
import type { AdminProvider } from '../../lib/types';
import { qk } from '../../lib/queryKeys';

const kinds: Array<[AdminProvider['kind'], MessageKey]> = [
  ['oidc', 'oauth.kindOidc'],
  ['google', 'oauth.kindGoogle'],
  ['microsoft', 'oauth.kindMicrosoft'],
  ['github', 'oauth.kindGithub'],
  ['wechat', 'oauth.kindWechat'],
];
const empty = { slug: '', kind: 'oidc' as AdminProvider['kind'], name: '', client_id: '', client_secret: '', issuer: '', tenant: '', link_by_email: false };

/** The body of `POST /admin/oauth/providers` for the form: empty optional fields are left out. */
export function providerBody(form: typeof empty) {
  const opt = (v: string) => (v.trim() ? v.trim() : undefined);
  return {
    slug: form.slug.trim(),
    kind: form.kind,
    name: opt(form.name),
    client_id: form.client_id.trim(),
    client_secret: form.client_secret,
    issuer: form.kind === 'oidc' || form.kind === 'google' ? opt(form.issuer) : undefined,
    tenant: form.kind === 'microsoft' ? opt(form.tenant) : undefined,
    link_by_email: form.link_by_email,
  };
}

/** Sign-in providers: those of the configuration file (read-only) and those added here. */
export function OAuthProviders() {
  const t = useT();
  const queryClient = useQueryClient();
  const list = useQuery({ queryKey: qk.oauthProviders, queryFn: () => api<{ items: AdminProvider[] }>('admin/oauth/providers') });
  const refresh = () => queryClient.invalidateQueries({ queryKey: qk.oauthProviders });
  const [creating, setCreating] = useState(false);
  const [form, setForm] = useState(empty);
  const [error, setError] = useState<unknown>(null);
  const set = (k: keyof typeof empty) => (e: React.ChangeEvent<HTMLInputElement | HTMLSelectElement>) => setForm({ ...form, [k]: e.target.value });
  return (
    <div className="space-y-3" data-testid="admin-oauth">
      <div className="flex flex-wrap items-center justify-between gap-2">
        <p className="max-w-2xl text-sm text-muted-fg">{t('oauth.adminHint')}</p>
        <Button onClick={() => { setError(null); setForm(empty); setCreating(true); }}>+ {t('oauth.addProvider')}</Button>
      </div>
      <ErrorText error={list.error ?? (creating ? null : error)} />
      <DataTable
        rows={list.data?.items ?? []}
        rowKey={(p) => p.slug}
        empty={t('oauth.noProviders')}
        columns={[
          { header: t('common.name'), cell: (p) => <div><div className="font-medium">{p.name}</div><code className="text-xs text-muted-fg">{p.slug} · {p.kind}</code></div> },
          { header: t('oauth.clientId'), cell: (p) => <code className="break-all text-xs">{p.client_id}</code> },
          {
            header: t('oauth.redirectUri'),
            cell: (p) => (
              <div className="flex items-center gap-1">
                <code className="break-all text-xs">{p.redirect_uri}</code>
                <CopyButton text={p.redirect_uri} />
              </div>
            ),
          },
          {
            header: t('common.status'),
            cell: (p) => (
              <div className="flex flex-wrap gap-1">
                <Badge tone={p.enabled ? 'ok' : 'neutral'}>{p.enabled ? t('oauth.on') : t('oauth.off')}</Badge>
                {p.source === 'config' && <Badge>{t('oauth.fromConfig')}</Badge>}
                {p.link_by_email && <Badge tone="primary">{t('oauth.linkByEmail')}</Badge>}
              </div>
            ),
          },
          {
            header: t('common.actions'),
            cell: (p) =>
              p.source === 'admin' && (
                <div className="flex gap-1">
                  <Button
                    size="sm"
                    variant="secondary"
                    onClick={async () => {
                      setError(null);
                      await api(`admin/oauth/providers/${encodeURIComponent(p.slug)}`, { method: 'PATCH', body: { enabled: !p.enabled } }).catch(setError);
                      refresh();
                    }}
                  >
                    {p.enabled ? t('common.disable') : t('common.enable')}
                  </Button>
                  <Button
                    size="sm"
                    variant="danger"
                    onClick={async () => {
                      if (!window.confirm(t('oauth.confirmDelete', { name: p.name }))) return;
                      setError(null);
                      await api(`admin/oauth/providers/${encodeURIComponent(p.slug)}`, { method: 'DELETE' }).catch(setError);
                      refresh();
                    }}
                  >
                    {t('common.delete')}
                  </Button>
                </div>
              ),
          },
        ]}
      />
      <Dialog open={creating} onOpenChange={setCreating} title={t('oauth.addProvider')}>
        <form
          className="space-y-3"
          onSubmit={async (e) => {
            e.preventDefault();
            setError(null);
            try {
              await api('admin/oauth/providers', { body: providerBody(form) });
              setCreating(false);
              refresh();
            } catch (err) {
              setError(err);
            }
          }}
        >
          <div className="grid grid-cols-1 gap-3 sm:grid-cols-2">
            <Field label={t('oauth.kind')}>
              <Select value={form.kind} onChange={set('kind')}>
                {kinds.map(([k, label]) => (
                  <option key={k} value={k}>{t(label)}</option>
                ))}
              </Select>
            </Field>
            <Field label={t('oauth.slug')} hint={t('oauth.slugHint')}>
              <Input required pattern="[a-z0-9-]{1,32}" value={form.slug} onChange={set('slug')} />
            </Field>
          </div>
          <Field label={`${t('common.name')} (${t('common.optional')})`}>
            <Input value={form.name} onChange={set('name')} />
          </Field>
          <Field label={form.kind === 'wechat' ? 'AppID' : t('oauth.clientId')}>
            <Input required value={form.client_id} onChange={set('client_id')} />
          </Field>
          <Field label={form.kind === 'wechat' ? 'AppSecret' : t('oauth.clientSecret')} hint={t('oauth.secretHint')}>
            <PasswordInput required autoComplete="off" value={form.client_secret} onChange={set('client_secret')} />
          </Field>
          {form.kind === 'oidc' && (
            <Field label={t('oauth.issuer')}>
              <Input required type="url" placeholder="https://id.example.com" value={form.issuer} onChange={set('issuer')} />
            </Field>
          )}
          {form.kind === 'microsoft' && (
            <Field label={`${t('oauth.tenant')} (${t('common.optional')})`}>
              <Input placeholder="common" value={form.tenant} onChange={set('tenant')} />
            </Field>
          )}
          {form.kind !== 'wechat' && (
            <label className="flex items-start gap-2 text-sm">
              <input type="checkbox" className="mt-1" checked={form.link_by_email} onChange={(e) => setForm({ ...form, link_by_email: e.target.checked })} />
              <span>{t('oauth.linkByEmailHint')}</span>
            </label>
          )}
          <ErrorText error={error} />
          <div className="flex justify-end gap-2">
            <Button variant="secondary" onClick={() => setCreating(false)}>{t('common.cancel')}</Button>
            <Button type="submit">{t('common.create')}</Button>
          </div>
        </form>
      </Dialog>
    </div>
  );
}
